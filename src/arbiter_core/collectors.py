"""Host and process collectors (psutil) for :meth:`RuntimeOptimizer.add_collector`.

A collector is a callable returning ``(metric_type, value, source)`` samples.
The ones here read this machine and this process through psutil; each call
costs on the order of 100 µs, so at the default 10 s interval the overhead is
far below 0.01 % of a core.  They are plain objects with no thread of their
own: the optimizer calls them on its cycle.

Examples
--------
>>> from arbiter_core import ManualClock, RuntimeOptimizer
>>> from arbiter_core.collectors import default_collectors
>>> opt = RuntimeOptimizer(clock=ManualClock(), collectors=default_collectors())
>>> opt.collect() >= 2
True
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import psutil

from .clock import Clock, default_clock
from .types import MetricType

__all__ = [
    "HostCpuCollector",
    "HostMemoryCollector",
    "NetworkCollector",
    "ProcessCollector",
    "default_collectors",
]

Sample = tuple[MetricType, float, str]


class HostCpuCollector:
    """System-wide CPU utilisation in percent since this collector's previous call.

    Each collector keeps its own baseline of ``psutil.cpu_times()`` (primed
    when it is made), so several collectors, or other code calling
    ``psutil.cpu_percent()``, do not shorten each other's intervals (psutil's
    ``cpu_percent(interval=None)`` keeps one process-wide baseline).  Busy time
    is psutil's: everything but idle and iowait, guest time counted once.  A
    call with no CPU time elapsed since the previous one reports 0.0, as
    psutil does.
    """

    def __init__(self, source: str = "host") -> None:
        self.source = source
        self._last = _cpu_busy_total()

    def __call__(self) -> list[Sample]:
        now = _cpu_busy_total()
        (busy0, total0), self._last = self._last, now
        elapsed = now[1] - total0
        pct = 0.0 if elapsed <= 0.0 else 100.0 * (now[0] - busy0) / elapsed
        return [(MetricType.CPU, min(100.0, max(0.0, pct)), self.source)]


def _cpu_busy_total() -> tuple[float, float]:
    """(busy, total) CPU seconds of the host, as psutil's cpu_percent counts them."""
    t = psutil.cpu_times()
    # guest time is already part of user/nice on Linux
    total = sum(t) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
    idle = t.idle + getattr(t, "iowait", 0.0)
    return total - idle, total


class HostMemoryCollector:
    """System-wide memory in use, percent of total."""

    def __init__(self, source: str = "host") -> None:
        self.source = source

    def __call__(self) -> list[Sample]:
        return [(MetricType.MEMORY, float(psutil.virtual_memory().percent), self.source)]


class ProcessCollector:
    """This process's CPU (percent of one core) and memory (percent of RAM).

    Parameters
    ----------
    source : str
    pid : int, optional
        Another process to watch; default this one.
    """

    def __init__(self, source: str = "process", pid: int | None = None) -> None:
        self.source = source
        self._proc = psutil.Process(pid)
        self._proc.cpu_percent(interval=None)  # prime: the first reading is 0 by definition

    def __call__(self) -> list[Sample]:
        with self._proc.oneshot():
            cpu = float(self._proc.cpu_percent(interval=None))
            mem = float(self._proc.memory_percent())
        return [(MetricType.CPU, cpu, self.source), (MetricType.MEMORY, mem, self.source)]


class NetworkCollector:
    """Network utilisation in percent of link capacity, from byte counters.

    Parameters
    ----------
    source : str
    link_speed_mbps : float, optional
        Capacity to measure against.  By default the sum of the speeds psutil
        reports for the non-loopback interfaces that are up; when that is
        unknown (0, common in containers) the collector reports nothing
        rather than a made-up percentage.
    clock : Clock, optional
        Times the interval between calls.
    counters : callable, optional
        Returns total bytes sent + received; by default over the
        non-loopback interfaces (tests inject one).

    Notes
    -----
    The first call only records the counters (a rate needs two readings).
    """

    def __init__(self, source: str = "host", link_speed_mbps: float | None = None, *,
                 clock: Clock | None = None,
                 counters: Callable[[], float] | None = None) -> None:
        if link_speed_mbps is not None:
            if isinstance(link_speed_mbps, bool) or not isinstance(link_speed_mbps, numbers.Real):
                raise TypeError(f"link_speed_mbps must be a number, "
                                f"got {type(link_speed_mbps).__name__}")
            if not (math.isfinite(link_speed_mbps) and link_speed_mbps > 0):
                raise ValueError(
                    f"link_speed_mbps must be finite and > 0, got {link_speed_mbps!r}")
        self.source = source
        self.clock: Clock = default_clock() if clock is None else clock
        self._speed = link_speed_mbps if link_speed_mbps is not None else _link_speed_mbps()
        self._counters = counters if counters is not None else _total_bytes
        self._last: tuple[float, float] | None = None

    def __call__(self) -> list[Sample]:
        now, total = self.clock.now(), float(self._counters())
        last, self._last = self._last, (now, total)
        if last is None or not self._speed or now <= last[0] or total < last[1]:
            return []
        bits_per_s = (total - last[1]) * 8.0 / (now - last[0])
        pct = 100.0 * bits_per_s / (self._speed * 1e6)
        return [(MetricType.NETWORK, pct, self.source)]


def _total_bytes() -> float:
    """Bytes sent + received on the non-loopback interfaces (the ones whose
    speed :func:`_link_speed_mbps` adds up); loopback traffic uses no link."""
    per_nic = psutil.net_io_counters(pernic=True)
    return float(sum(c.bytes_sent + c.bytes_recv for name, c in per_nic.items()
                     if not name.startswith("lo")))


def _link_speed_mbps() -> float:
    try:
        stats = psutil.net_if_stats()
    except (OSError, RuntimeError):
        return 0.0
    return float(sum(s.speed for name, s in stats.items()
                     if s.isup and s.speed > 0 and not name.startswith("lo")))


def default_collectors(source: str = "host") -> list[Callable[[], list[Sample]]]:
    """Host CPU, host memory, this process, and network when the link speed is known."""
    return [HostCpuCollector(source), HostMemoryCollector(source), ProcessCollector(),
            NetworkCollector(source)]
