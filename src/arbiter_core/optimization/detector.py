"""BottleneckDetector: one bottleneck per (component, metric type), with a lifecycle.

The detector works on *observations*: what one analysis learned about one
series from samples it had never examined before (how many, how many beyond
the threshold, the latest and the worst of them).  The
:class:`~arbiter_core.optimization.RuntimeOptimizer` computes observations for
all series at once with the ring's grouped kernel, which examines each stored
sample once; :meth:`BottleneckDetector.detect_bottlenecks` computes them from
a batch of metrics for standalone use.

Differences from the TypeScript prototype this package reimplements, which
kept one entry per exceeding sample, counted a re-read sample again, and
handed out live objects:

- one bottleneck per (component, metric type), never one entry per sample;
- persistence counts distinct analyses that saw new samples beyond the
  threshold, so re-reading an old sample adds nothing;
- severity never drops during an episode and the impact text follows it;
- bottlenecks resolve by themselves (hysteresis, or unseen for a window) and
  move to a bounded history;
- results are frozen snapshots.
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

from .._validate import check_int, check_non_negative, check_positive, check_time_bound
from ..clock import Clock, default_clock
from ..types import BottleneckSeverity, MetricType, PerformanceMetric
from .monitor import coerce_metric_type
from .results import Bottleneck, BottleneckEvent, BottleneckEventKind

__all__ = [
    "DEFAULT_THRESHOLDS",
    "BottleneckDetector",
    "Observation",
    "compute_severity",
    "deviation",
    "higher_is_bad",
    "impact_text",
]

logger = logging.getLogger("arbiter_core.optimization")

#: Default thresholds (the TypeScript prototype's); units as ``METRIC_UNITS``.
DEFAULT_THRESHOLDS: Mapping[MetricType, float] = MappingProxyType({
    MetricType.CPU: 80.0,
    MetricType.MEMORY: 85.0,
    MetricType.NETWORK: 75.0,
    MetricType.LATENCY: 1000.0,
    MetricType.THROUGHPUT: 100.0,
    MetricType.ERROR_RATE: 5.0,
    MetricType.CACHE_HIT_RATE: 70.0,
})

_LOWER_IS_BAD = frozenset({MetricType.THROUGHPUT, MetricType.CACHE_HIT_RATE})

_RANK = {
    BottleneckSeverity.LOW: 0,
    BottleneckSeverity.MEDIUM: 1,
    BottleneckSeverity.HIGH: 2,
    BottleneckSeverity.CRITICAL: 3,
}

_IMPACT = {
    MetricType.CPU: "High CPU usage may cause slow response times and task delays",
    MetricType.MEMORY: "High memory usage may cause system instability and crashes",
    MetricType.NETWORK: "Network congestion may cause communication delays",
    MetricType.LATENCY: "High latency degrades user experience and system responsiveness",
    MetricType.THROUGHPUT: "Low throughput limits system capacity and request handling",
    MetricType.ERROR_RATE: "High error rate indicates reliability issues",
    MetricType.CACHE_HIT_RATE: "Low cache hit rate increases backend load and latency",
}

T = TypeVar("T")
BottleneckListener = Callable[[BottleneckEvent], object]
#: Thresholds keyed by MetricType or by its string value.
ThresholdMap = Mapping[MetricType, float] | Mapping[str, float]


def higher_is_bad(metric_type: MetricType) -> bool:
    """True unless lower values are the bad ones (throughput, cache hit rate)."""
    return metric_type not in _LOWER_IS_BAD


def deviation(value: float, threshold: float) -> float:
    """Relative deviation ``|value - threshold| / threshold`` (inf for threshold 0)."""
    if threshold == 0.0:
        return 0.0 if value == 0.0 else math.inf
    return abs(value - threshold) / threshold


def compute_severity(
    value: float,
    threshold: float,
    exceeding_analyses: int = 1,
    persistence: tuple[int, int, int] = (3, 5, 10),
) -> BottleneckSeverity:
    """Severity from deviation and persistence.

    Deviation cut-offs: >= 0.5 CRITICAL, >= 0.3 HIGH, >= 0.15 MEDIUM, else
    LOW.  Persistence raises the level: ``exceeding_analyses`` at least
    ``persistence[0]``/``[1]``/``[2]`` gives at least MEDIUM/HIGH/CRITICAL
    (by default 3/5/10 distinct analyses; a re-read sample never counts twice).

    Examples
    --------
    >>> [compute_severity(v, 80.0).value for v in (82, 92, 104, 120)]
    ['low', 'medium', 'high', 'critical']
    >>> compute_severity(82.0, 80.0, exceeding_analyses=5).value
    'high'
    """
    d = deviation(value, threshold)
    medium, high, critical = persistence
    if d >= 0.5 or exceeding_analyses >= critical:
        return BottleneckSeverity.CRITICAL
    if d >= 0.3 or exceeding_analyses >= high:
        return BottleneckSeverity.HIGH
    if d >= 0.15 or exceeding_analyses >= medium:
        return BottleneckSeverity.MEDIUM
    return BottleneckSeverity.LOW


def impact_text(metric_type: MetricType, component: str, severity: BottleneckSeverity) -> str:
    """One sentence on what the bottleneck costs, with "URGENT: " for HIGH and CRITICAL."""
    prefix = "URGENT: " if _RANK[severity] >= 2 else ""
    sentence = _IMPACT.get(metric_type, "Performance degradation detected")
    return f"{prefix}{sentence} in {component}"


@dataclass(frozen=True, slots=True)
class Observation:
    """What one analysis learned about one series from its *new* samples.

    Attributes
    ----------
    component : str
    metric_type : MetricType
    new_count : int
        Samples never examined before.
    exceed_count : int
        Of those, how many are strictly beyond the threshold.
    first_exceed_ts, last_exceed_ts, last_exceed_value, worst_value : float
        Of the new samples beyond the threshold (NaN when there are none).
    last_new_ts, last_new_value : float
        The newest new sample (NaN when there is none).
    """

    component: str
    metric_type: MetricType
    new_count: int
    exceed_count: int
    first_exceed_ts: float
    last_exceed_ts: float
    last_exceed_value: float
    worst_value: float
    last_new_ts: float
    last_new_value: float


class _Episode:
    """Mutable state of one active bottleneck (never handed out)."""

    __slots__ = ("_snap", "clear_streak", "component", "current_value", "detected_at",
                 "exceeding_analyses", "id", "last_observed_at", "metric_type",
                 "occurrences", "severity", "threshold", "worst_value")

    def __init__(self, component: str, metric_type: MetricType, threshold: float,
                 ob: Observation) -> None:
        self.id = str(uuid.uuid4())
        self.component = component
        self.metric_type = metric_type
        self.threshold = threshold
        self.detected_at = ob.first_exceed_ts
        self.last_observed_at = ob.last_exceed_ts
        self.current_value = ob.last_exceed_value
        self.worst_value = ob.worst_value
        self.occurrences = 0
        self.exceeding_analyses = 0
        self.clear_streak = 0
        self.severity = BottleneckSeverity.LOW
        self._snap: Bottleneck | None = None

    def changed(self) -> None:
        """Forget the cached snapshot (call after every mutation)."""
        self._snap = None

    def snapshot(self) -> Bottleneck:
        """The active state as a frozen record; cached until the next change.

        Reusing the record while nothing changed lets callers (and the
        optimizer's recommendation cache) tell "unchanged" by identity.
        """
        if self._snap is None:
            self._snap = self.record()
        return self._snap

    def record(self, resolved_at: float | None = None,
               resolution: str | None = None) -> Bottleneck:
        return Bottleneck(
            id=self.id,
            component=self.component,
            metric_type=self.metric_type,
            severity=self.severity,
            current_value=self.current_value,
            worst_value=self.worst_value,
            threshold=self.threshold,
            deviation=deviation(self.worst_value, self.threshold),
            impact=impact_text(self.metric_type, self.component, self.severity),
            detected_at=self.detected_at,
            last_observed_at=self.last_observed_at,
            occurrence_count=self.occurrences,
            exceeding_analyses=self.exceeding_analyses,
            resolved_at=resolved_at,
            resolution=resolution,
        )


class BottleneckDetector:
    """Finds bottlenecks and follows each through detected → active → resolved.

    Parameters
    ----------
    thresholds : mapping of MetricType (or its str value) to float, optional
        Merged over :data:`DEFAULT_THRESHOLDS`.  Each must be finite and >= 0.
        Comparisons are strict: a value equal to its threshold is fine.
        Throughput and cache hit rate are bad when *below* the threshold.
    hysteresis_pct : float
        A bottleneck recovers only when values are back on the good side by
        this percentage of the threshold (default 5).
    resolve_after : int
        Consecutive analyses with new samples, none beyond the threshold and
        the latest clear of the hysteresis band, needed to resolve (default 3).
    window_s : float
        A bottleneck with no sample beyond its threshold for this long is
        resolved as "unseen" (default 300, the optimizer's window).
    history_size : int
        Resolved bottlenecks kept (the oldest are dropped); default 100.
    persistence : tuple of 3 ints
        Distinct exceeding analyses that raise severity to at least
        MEDIUM/HIGH/CRITICAL (default 3, 5, 10).
    clock : Clock, optional
        Used by :meth:`detect_bottlenecks` for the "unseen" rule.

    Notes
    -----
    Memory: one record per active (component, metric type), so at most the
    number of distinct series fed in, plus ``history_size`` resolved ones.

    Examples
    --------
    >>> from arbiter_core import ManualClock, MetricType, PerformanceMetric
    >>> det = BottleneckDetector(clock=ManualClock(start=10.0))
    >>> found = det.detect_bottlenecks([
    ...     PerformanceMetric(MetricType.CPU, 92.0, 10.0, "api"),
    ...     PerformanceMetric(MetricType.CPU, 95.0, 10.0, "api"),
    ...     PerformanceMetric(MetricType.CPU, 50.0, 10.0, "db")])
    >>> [(b.component, b.severity.value, b.occurrence_count) for b in found]
    [('api', 'medium', 2)]
    """

    def __init__(
        self,
        thresholds: ThresholdMap | None = None,
        *,
        hysteresis_pct: float = 5.0,
        resolve_after: int = 3,
        window_s: float = 300.0,
        history_size: int = 100,
        persistence: tuple[int, int, int] = (3, 5, 10),
        clock: Clock | None = None,
    ) -> None:
        self._thresholds: dict[MetricType, float] = dict(DEFAULT_THRESHOLDS)
        self._thresholds.update(self._parse_thresholds(thresholds))
        self.hysteresis_pct = _check_pct(hysteresis_pct, "hysteresis_pct")
        self.resolve_after = check_int(resolve_after, "resolve_after", 1)
        self.window_s = check_positive(window_s, "window_s")
        self.persistence = _check_persistence(persistence)
        self.clock: Clock = default_clock() if clock is None else clock
        self._history: deque[Bottleneck] = deque(
            maxlen=check_int(history_size, "history_size", 1))
        self._active: dict[tuple[str, MetricType], _Episode] = {}
        self._listeners: list[BottleneckListener] = []
        self._lock = threading.RLock()
        self._thresholds_version = 0

    # -- settings (validated on every assignment) ----------------------------

    @property
    def hysteresis_pct(self) -> float:
        """Recovery margin in percent of the threshold, in [0, 100)."""
        return self._hysteresis_pct

    @hysteresis_pct.setter
    def hysteresis_pct(self, value: float) -> None:
        self._hysteresis_pct = _check_pct(value, "hysteresis_pct")

    @property
    def resolve_after(self) -> int:
        """Clear analyses in a row that resolve a bottleneck (>= 1)."""
        return self._resolve_after

    @resolve_after.setter
    def resolve_after(self, value: int) -> None:
        self._resolve_after = check_int(value, "resolve_after", 1)

    @property
    def window_s(self) -> float:
        """Seconds without a sample beyond the threshold that resolve as "unseen" (> 0)."""
        return self._window_s

    @window_s.setter
    def window_s(self, value: float) -> None:
        self._window_s = check_positive(value, "window_s")

    # -- thresholds ----------------------------------------------------------

    @staticmethod
    def _parse_thresholds(
        thresholds: ThresholdMap | None,
    ) -> dict[MetricType, float]:
        if thresholds is None:
            return {}
        if not isinstance(thresholds, Mapping):
            raise TypeError(f"thresholds must be a mapping, got {type(thresholds).__name__}")
        parsed: dict[MetricType, float] = {}
        for mt, value in thresholds.items():
            t = coerce_metric_type(mt, "thresholds key")
            parsed[t] = check_non_negative(value, f"thresholds[{t.value!r}]")
        return parsed

    @property
    def thresholds(self) -> Mapping[MetricType, float]:
        """A read-only copy of the thresholds in effect."""
        return MappingProxyType(dict(self._thresholds))

    def threshold_for(self, metric_type: MetricType | str) -> float:
        return self._thresholds[coerce_metric_type(metric_type)]

    def update_thresholds(self, thresholds: ThresholdMap) -> None:
        """Merge ``thresholds`` over the current ones (all validated first)."""
        parsed = self._parse_thresholds(thresholds)
        with self._lock:
            self._thresholds.update(parsed)
            self._thresholds_version += 1

    @property
    def thresholds_version(self) -> int:
        """Increases on every :meth:`update_thresholds` (lets users cache derived data)."""
        return self._thresholds_version

    def is_beyond(self, metric_type: MetricType | str, value: float) -> bool:
        """True when ``value`` is strictly on the bad side of the threshold."""
        mt = coerce_metric_type(metric_type)
        t = self._thresholds[mt]
        return value > t if higher_is_bad(mt) else value < t

    def _recovered(self, mt: MetricType, value: float) -> bool:
        t = self._thresholds[mt]
        band = t * self.hysteresis_pct / 100.0
        return value <= t - band if higher_is_bad(mt) else value >= t + band

    # -- listeners -----------------------------------------------------------

    def on_bottleneck(self, callback: BottleneckListener) -> Callable[[], None]:
        """Call ``callback(event)`` on every detection, escalation and resolution.

        Returns a function that unsubscribes.  A callback that raises is
        logged and does not stop the others.
        """
        return subscribe(self._listeners, callback, self._lock, "callback")

    def notify(self, events: list[BottleneckEvent]) -> None:
        """Deliver ``events`` to the listeners (outside any lock)."""
        if not events:
            return
        with self._lock:
            listeners = list(self._listeners)
        for event in events:
            for cb in listeners:
                try:
                    cb(event)
                except Exception:
                    logger.exception("bottleneck listener %r failed on %s", cb, event.kind)

    # -- detection -----------------------------------------------------------

    def process(self, observations: Iterable[Observation], now: float, *,
                notify: bool = True) -> list[BottleneckEvent]:
        """Apply one analysis: update, escalate, create and resolve bottlenecks.

        Parameters
        ----------
        observations : iterable of Observation
            At most one per series; every sample they summarise must be new
            (never part of an earlier observation).
        now : float
            The analysis time; bottlenecks with nothing beyond the threshold
            since ``now - window_s`` resolve as "unseen" (unless this very
            call observed samples beyond it).

        notify : bool
            Deliver the events to the listeners before returning (a caller
            holding its own lock passes False and calls :meth:`notify` later).

        Returns
        -------
        list of BottleneckEvent
        """
        events: list[BottleneckEvent] = []
        with self._lock:
            seen = set()
            for ob in observations:
                self._observe(ob, now, events)
                if ob.exceed_count > 0:
                    seen.add((ob.component, ob.metric_type))
            horizon = now - self.window_s
            for key, ep in list(self._active.items()):
                # "unseen" is about later analyses: one that just saw samples
                # beyond the threshold (even old ones) does not resolve it
                if ep.last_observed_at < horizon and key not in seen:
                    self._resolve(key, ep, now, "unseen", events)
        if notify:
            self.notify(events)
        return events

    def _observe(self, ob: Observation, now: float, events: list[BottleneckEvent]) -> None:
        mt = ob.metric_type
        key = (ob.component, mt)
        ep = self._active.get(key)
        if ob.exceed_count > 0:
            up = higher_is_bad(mt)
            if ep is None:
                ep = _Episode(ob.component, mt, self._thresholds[mt], ob)
                self._active[key] = ep
                old = None
            else:
                old = ep.severity
                if (ob.worst_value > ep.worst_value) if up else (ob.worst_value < ep.worst_value):
                    ep.worst_value = ob.worst_value
                if ob.last_exceed_ts >= ep.last_observed_at:
                    ep.last_observed_at = ob.last_exceed_ts
                    ep.current_value = ob.last_exceed_value
            ep.changed()
            ep.threshold = self._thresholds[mt]
            ep.occurrences += ob.exceed_count
            ep.exceeding_analyses += 1
            ep.clear_streak = 0
            level = compute_severity(ep.worst_value, ep.threshold, ep.exceeding_analyses,
                                     self.persistence)
            if old is None or _RANK[level] > _RANK[ep.severity]:
                ep.severity = level
            if old is None:
                logger.info("bottleneck detected: %s %s %s (value %g, threshold %g)",
                               ep.severity.value, mt.value, ob.component,
                               ep.current_value, ep.threshold)
                events.append(BottleneckEvent(BottleneckEventKind.DETECTED, ep.snapshot(), now))
            elif ep.severity is not old:
                logger.info("bottleneck escalated: %s %s from %s to %s", mt.value,
                               ob.component, old.value, ep.severity.value)
                events.append(BottleneckEvent(BottleneckEventKind.ESCALATED, ep.snapshot(),
                                              now, old))
        elif ep is not None and ob.new_count > 0:
            if self._recovered(mt, ob.last_new_value):
                ep.clear_streak += 1
                if ep.clear_streak >= self.resolve_after:
                    self._resolve(key, ep, now, "recovered", events)
            else:
                # inside the hysteresis band: not bad, not yet recovered
                ep.clear_streak = 0

    def _resolve(self, key: tuple[str, MetricType], ep: _Episode, now: float, how: str,
                 events: list[BottleneckEvent]) -> None:
        del self._active[key]
        snap = ep.record(resolved_at=now, resolution=how)
        self._history.append(snap)
        logger.info("bottleneck resolved (%s): %s %s after %d analyses", how,
                    ep.metric_type.value, ep.component, ep.exceeding_analyses)
        events.append(BottleneckEvent(BottleneckEventKind.RESOLVED, snap, now))

    def detect_bottlenecks(self, metrics: Iterable[PerformanceMetric]) -> list[Bottleneck]:
        """Run one analysis over a batch of metrics (each treated as new).

        Parameters
        ----------
        metrics : iterable of PerformanceMetric
            For example a :class:`~arbiter_core.optimization.MetricBatch`.
            Timestamps must be on the detector's clock.  Pass each sample once:
            persistence counts this call as one analysis.

        Returns
        -------
        list of Bottleneck
            One per (component, metric type) beyond its threshold in this
            batch, in first-seen order.
        """
        groups: dict[tuple[str, MetricType], list[tuple[float, float]]] = {}
        for m in metrics:
            if not isinstance(m, PerformanceMetric):
                raise TypeError(f"metrics must hold PerformanceMetric, got {type(m).__name__}")
            v, ts = float(m.value), float(m.timestamp)
            if not (math.isfinite(v) and math.isfinite(ts)):
                raise ValueError(f"metric value and timestamp must be finite, got {m!r}")
            mt = coerce_metric_type(m.type, "metric type")
            groups.setdefault((m.source, mt), []).append((ts, v))
        with self._lock:
            obs = [self._observation(src, mt, samples) for (src, mt), samples in groups.items()]
            events = self.process(obs, self.clock.now(), notify=False)
            found = [self._active[(ob.component, ob.metric_type)].snapshot()
                     for ob in obs if ob.exceed_count and (ob.component, ob.metric_type)
                     in self._active]
        # listeners run outside the lock: one that waits on another thread
        # using this detector must not deadlock
        self.notify(events)
        return found

    def _observation(self, component: str, mt: MetricType,
                     samples: list[tuple[float, float]]) -> Observation:
        up = higher_is_bad(mt)
        t = self._thresholds[mt]
        bad = [(ts, v) for ts, v in samples if (v > t if up else v < t)]
        nan = math.nan
        if bad:
            worst = max(v for _, v in bad) if up else min(v for _, v in bad)
            first_ts, last_ts = bad[0][0], bad[-1][0]
            last_v = bad[-1][1]
        else:
            worst = first_ts = last_ts = last_v = nan
        return Observation(component, mt, len(samples), len(bad), first_ts, last_ts, last_v,
                           worst, samples[-1][0], samples[-1][1])

    # -- queries -------------------------------------------------------------

    def get_active_bottlenecks(self) -> tuple[Bottleneck, ...]:
        """Snapshots of every active bottleneck, oldest detection first."""
        with self._lock:
            return tuple(ep.snapshot() for ep in self._active.values())

    @property
    def active_count(self) -> int:
        return len(self._active)

    def get_bottleneck_history(self, component: str | None = None) -> tuple[Bottleneck, ...]:
        """Resolved bottlenecks (of ``component``), oldest first; at most ``history_size``."""
        with self._lock:
            return tuple(b for b in self._history if component is None or b.component == component)

    def clear_resolved_bottlenecks(self, older_than: float) -> int:
        """Resolve every active bottleneck last seen before ``older_than``; returns how many."""
        check_time_bound(older_than, "older_than", allow_none=False)
        events: list[BottleneckEvent] = []
        with self._lock:
            for key, ep in list(self._active.items()):
                if ep.last_observed_at < older_than:
                    self._resolve(key, ep, self.clock.now(), "cleared", events)
        self.notify(events)
        return len(events)

    def set_history_size(self, history_size: int) -> None:
        """Change the resolved-history cap, keeping the newest entries."""
        size = check_int(history_size, "history_size", 1)
        with self._lock:
            self._history = deque(self._history, maxlen=size)

    def __repr__(self) -> str:
        return (f"BottleneckDetector(active={len(self._active)}, "
                f"history={len(self._history)})")


def subscribe(registry: list[T], item: T, lock: threading.RLock, name: str) -> Callable[[], None]:
    """Append a callable ``item`` to ``registry`` under ``lock``; return its remover.

    Raises TypeError naming ``name`` when ``item`` is not callable.
    """
    if not callable(item):
        raise TypeError(f"{name} must be callable, got {type(item).__name__}")
    with lock:
        registry.append(item)

    def remove() -> None:
        with lock:
            if item in registry:
                registry.remove(item)

    return remove


def _check_pct(x: object, name: str) -> float:
    """A percentage in [0, 100)."""
    v = check_non_negative(x, name)
    if v >= 100.0:
        raise ValueError(f"{name} must be < 100, got {x!r}")
    return v


def _check_persistence(p: object) -> tuple[int, int, int]:
    if not isinstance(p, tuple) or len(p) != 3:
        raise TypeError(f"persistence must be a tuple of 3 ints, got {p!r}")
    vals = tuple(check_int(x, "persistence", 1) for x in p)
    if not vals[0] <= vals[1] <= vals[2]:
        raise ValueError(f"persistence must be non-decreasing, got {p!r}")
    return (vals[0], vals[1], vals[2])

