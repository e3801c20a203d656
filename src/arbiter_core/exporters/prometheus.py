"""Prometheus exporter: a collector over a RuntimeOptimizer and/or a manager.

Requires the ``prometheus`` extra (``prometheus_client``).  The collector reads
the components' public snapshots at scrape time, so it adds nothing to their
hot paths.

Examples
--------
>>> from prometheus_client import CollectorRegistry, generate_latest
>>> from arbiter_core import RuntimeOptimizer
>>> registry = CollectorRegistry()
>>> registry.register(ArbiterCollector(optimizer=RuntimeOptimizer()))
>>> b"arbiter_health_score" in generate_latest(registry)
True
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Iterator, Mapping
from typing import Any

try:
    from prometheus_client import start_http_server
    from prometheus_client.core import GaugeMetricFamily, Metric
    from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "arbiter_core.exporters.prometheus needs prometheus_client: "
        "pip install 'arbiter-runtime[prometheus]'"
    ) from exc

__all__ = ["ArbiterCollector", "serve"]

_SEVERITIES = ("low", "medium", "high", "critical")


class ArbiterCollector(Collector):
    """Expose health, bottlenecks, pool and allocation statistics as gauges.

    Parameters
    ----------
    optimizer : RuntimeOptimizer, optional
        Gives ``arbiter_health_score``, ``arbiter_bottlenecks_active{severity}``,
        ``arbiter_bottleneck{component,metric_type,severity}`` (the current
        value of each active bottleneck) and ``arbiter_optimizer_*`` status.
    manager : AdaptiveResourceManager, optional
        Gives ``arbiter_pool_*`` (every numeric field of the pool statistics)
        and ``arbiter_allocations_*`` (every numeric allocation statistic, e.g.
        requests by state and the current rate limit).
    namespace : str
        Prefix of every metric name.
    """

    def __init__(self, optimizer: Any = None, manager: Any = None,
                 namespace: str = "arbiter") -> None:
        if optimizer is None and manager is None:
            raise ValueError("ArbiterCollector needs an optimizer, a manager, or both")
        self.optimizer = optimizer
        self.manager = manager
        self.ns = namespace

    def collect(self) -> Iterator[Metric]:
        if self.optimizer is not None:
            yield from self._optimizer_metrics()
        if self.manager is not None:
            yield from _numeric_gauges(f"{self.ns}_pool", "resource pool statistic",
                                       self.manager.get_pool_statistics())
            yield from _numeric_gauges(f"{self.ns}_allocations", "allocation statistic",
                                       self.manager.get_allocation_statistics())
            yield from _numeric_gauges(f"{self.ns}_manager", "manager health field",
                                       self.manager.get_health_status())

    def _optimizer_metrics(self) -> Iterator[Metric]:
        opt = self.optimizer
        last = opt.last_analysis
        score = GaugeMetricFamily(f"{self.ns}_health_score",
                                  "Health score 0-100 from distinct active bottlenecks")
        score.add_metric([], float(last.health_score) if last is not None else 100.0)
        yield score
        active = opt.get_active_bottlenecks()
        by_sev = GaugeMetricFamily(f"{self.ns}_bottlenecks_active",
                                   "Active bottlenecks by severity", labels=["severity"])
        counts = dict.fromkeys(_SEVERITIES, 0)
        each = GaugeMetricFamily(f"{self.ns}_bottleneck",
                                 "Latest value of each active bottleneck's metric",
                                 labels=["component", "metric_type", "severity"])
        for b in active:
            sev = str(b.severity)
            counts[sev] = counts.get(sev, 0) + 1
            each.add_metric([b.component, str(b.metric_type), sev], float(b.current_value))
        for sev, n in counts.items():
            by_sev.add_metric([sev], float(n))
        yield by_sev
        yield each
        yield from _numeric_gauges(f"{self.ns}_optimizer", "optimizer status field",
                                   opt.get_health_status())


def _numeric_gauges(prefix: str, what: str, record: Any) -> Iterator[Metric]:
    """One gauge per numeric (or boolean) field of a dataclass or mapping."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        items: Mapping[str, Any] = {f.name: getattr(record, f.name)
                                    for f in dataclasses.fields(record)}
    elif isinstance(record, Mapping):
        items = record
    else:
        return
    for name, value in items.items():
        if isinstance(value, enum.Enum):
            continue
        if isinstance(value, bool):
            value = float(value)
        if isinstance(value, (int, float)) and math.isfinite(value):
            g = GaugeMetricFamily(f"{prefix}_{name}", f"{what} {name}")
            g.add_metric([], float(value))
            yield g
        elif isinstance(value, Mapping):
            yield from _numeric_gauges(f"{prefix}_{name}", what, value)


def serve(port: int, optimizer: Any = None, manager: Any = None, bind: str = "127.0.0.1",
          registry: CollectorRegistry | None = None) -> Any:
    """Register an :class:`ArbiterCollector` and serve ``/metrics`` on ``bind:port``.

    Binds to loopback unless told otherwise.  Returns what
    ``prometheus_client.start_http_server`` returns (the server and its thread).
    """
    reg = REGISTRY if registry is None else registry
    reg.register(ArbiterCollector(optimizer=optimizer, manager=manager))
    return start_http_server(port, addr=bind, registry=reg)
