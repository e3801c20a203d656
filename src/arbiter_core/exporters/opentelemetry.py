"""OpenTelemetry metrics: observable instruments over an optimizer and/or managers.

Requires the ``otel`` extra (``opentelemetry-api``; an SDK or an exporter of
your choice does the rest).  The instruments are observed when the SDK's
reader collects, from the components' public snapshots, so nothing is added
to their hot paths.

Instruments (manager ones carry a ``group`` attribute when ``manager`` is a
mapping of names to managers):

* observable counters: ``arbiter.allocation.requests``,
  ``arbiter.allocations`` (attribute ``outcome``: released, rejected,
  timed_out, failed), ``arbiter.allocation.failures`` (attribute ``reason``);
* observable up-down counters: ``arbiter.allocations.active``,
  ``arbiter.queue.length``, ``arbiter.pool.agents`` (attribute ``health``);
* observable gauges: ``arbiter.capacity.desired_agents``,
  ``arbiter.capacity.utilization`` (unit 1, smoothed; can exceed 1),
  ``arbiter.agent.active_tasks``, ``arbiter.agent.ejected`` and, once an
  engine reports them, ``arbiter.agent.requests.waiting``,
  ``arbiter.agent.requests.running``, ``arbiter.agent.kv_cache.usage``
  (attribute ``agent``), and from the optimizer ``arbiter.health.score`` (0-100) and
  ``arbiter.bottlenecks.active`` (attribute ``severity``).

Per-agent instruments cover at most ``max_agent_series`` agents per manager
(default 100), the busiest first.

Examples
--------
>>> from opentelemetry.sdk.metrics import MeterProvider
>>> from opentelemetry.sdk.metrics.export import InMemoryMetricReader
>>> from arbiter_core import RuntimeOptimizer
>>> reader = InMemoryMetricReader()
>>> handle = instrument(optimizer=RuntimeOptimizer(),
...                     meter_provider=MeterProvider(metric_readers=[reader]))
>>> data = reader.get_metrics_data()
>>> handle.close()
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

try:
    from opentelemetry import metrics as otel_metrics
    from opentelemetry.metrics import CallbackOptions, Observation
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "arbiter_core.exporters.opentelemetry needs opentelemetry-api: "
        "pip install 'arbiter-runtime[otel]'"
    ) from exc

from ..types import HealthStatus

__all__ = ["Instrumentation", "instrument"]

_OUTCOMES = ("released", "rejected", "timed_out", "failed")
_SEVERITIES = ("low", "medium", "high", "critical")
_HEALTH = tuple(h.value for h in HealthStatus)


class Instrumentation:
    """What :func:`instrument` registered; :meth:`close` stops reporting.

    OpenTelemetry cannot unregister an observable instrument, so a closed
    instrumentation keeps its instruments but they observe nothing.
    """

    def __init__(self, instruments: list[Any]) -> None:
        self.instruments = instruments
        self.closed = False

    def close(self) -> None:
        """Observe nothing from now on (idempotent)."""
        self.closed = True

    def __repr__(self) -> str:
        return f"Instrumentation(instruments={len(self.instruments)}, closed={self.closed})"


def instrument(manager: Any = None, optimizer: Any = None, meter_provider: Any = None, *,
               max_agent_series: int = 100) -> Instrumentation:
    """Register observable instruments for ``manager`` and/or ``optimizer``.

    Parameters
    ----------
    manager : AdaptiveResourceManager or mapping of str to it, optional
        A mapping (e.g. ``strategy.managers()`` of the LiteLLM integration)
        adds a ``group`` attribute.
    optimizer : RuntimeOptimizer, optional
    meter_provider : MeterProvider, optional
        Default: the global one (``opentelemetry.metrics.get_meter_provider()``).
    max_agent_series : int
        Per-agent cap per manager (the busiest first); 0 observes none.

    Returns
    -------
    Instrumentation

    Raises
    ------
    ValueError
        Neither a manager nor an optimizer, or a negative cap.
    """
    if manager is None and optimizer is None:
        raise ValueError("instrument needs a manager, an optimizer, or both")
    if not isinstance(max_agent_series, int) or isinstance(max_agent_series, bool) \
            or max_agent_series < 0:
        raise ValueError(f"max_agent_series must be an int >= 0, got {max_agent_series!r}")
    provider = otel_metrics.get_meter_provider() if meter_provider is None else meter_provider
    from .. import __version__
    meter = provider.get_meter("arbiter_core", __version__)
    handle = Instrumentation([])
    inst = handle.instruments

    def guarded(fn: Callable[[], Iterator[Observation]]
                ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            if handle.closed:
                return []
            return list(fn())
        return callback

    if manager is not None:
        grouped = isinstance(manager, Mapping)
        managers = [(str(k), v) for k, v in manager.items()] if grouped else [(None, manager)]

        def attrs(group: str | None, **kw: str) -> dict[str, str]:
            return {"group": group or "", **kw} if grouped else dict(kw)

        def each(fn: Callable[[str | None, Any], Iterator[Observation]]
                 ) -> Callable[[], Iterator[Observation]]:
            def run() -> Iterator[Observation]:
                for g, m in managers:
                    yield from fn(g, m)
            return run

        def requests(g: str | None, m: Any) -> Iterator[Observation]:
            yield Observation(m.get_allocation_statistics().total_requests, attrs(g))

        def outcomes(g: str | None, m: Any) -> Iterator[Observation]:
            st = m.get_allocation_statistics()
            for o in _OUTCOMES:
                yield Observation(getattr(st, o), attrs(g, outcome=o))

        def failures(g: str | None, m: Any) -> Iterator[Observation]:
            for reason, n in sorted(m.get_allocation_statistics().by_reason.items()):
                yield Observation(n, attrs(g, reason=reason))

        def active(g: str | None, m: Any) -> Iterator[Observation]:
            yield Observation(m.allocator.active_count, attrs(g))

        def queued(g: str | None, m: Any) -> Iterator[Observation]:
            yield Observation(m.allocator.queued_count, attrs(g))

        def pool(g: str | None, m: Any) -> Iterator[Observation]:
            p = m.get_pool_statistics()
            for h, n in (("healthy", p.healthy_agents), ("degraded", p.degraded_agents),
                         ("unhealthy", p.unhealthy_agents), ("offline", p.offline_agents)):
                yield Observation(n, attrs(g, health=h))

        def desired(g: str | None, m: Any) -> Iterator[Observation]:
            a = m.last_capacity_analysis
            if a is not None:
                yield Observation(a.desired_agents, attrs(g))

        def utilization(g: str | None, m: Any) -> Iterator[Observation]:
            a = m.last_capacity_analysis
            if a is not None:
                yield Observation(a.smoothed_utilization_percent / 100.0, attrs(g))

        def agents(m: Any) -> list[Any]:
            profiles = m.monitor.get_all_agent_resources()
            if len(profiles) > max_agent_series:
                profiles = sorted(profiles, key=lambda p: (-p.current_task_count,
                                                           p.agent_id))[:max_agent_series]
            return list(profiles)

        def agent_tasks(g: str | None, m: Any) -> Iterator[Observation]:
            for p in agents(m):
                yield Observation(p.current_task_count, attrs(g, agent=p.agent_id))

        def engine(field: str) -> Callable[[str | None, Any], Iterator[Observation]]:
            # an engine's reported figure, for the agents that reported it
            def observe(g: str | None, m: Any) -> Iterator[Observation]:
                for p in agents(m):
                    v = getattr(p, field)
                    if v is not None:
                        yield Observation(v, attrs(g, agent=p.agent_id))
            return observe

        def agent_ejected(g: str | None, m: Any) -> Iterator[Observation]:
            now = m.clock.now()
            for p in agents(m):
                ej = p.ejected_until is not None and p.ejected_until > now
                yield Observation(1 if ej else 0, attrs(g, agent=p.agent_id))

        inst += [
            meter.create_observable_counter(
                "arbiter.allocation.requests", [guarded(each(requests))], unit="{request}",
                description="Allocation requests submitted"),
            meter.create_observable_counter(
                "arbiter.allocations", [guarded(each(outcomes))], unit="{request}",
                description="Finished allocation requests by outcome"),
            meter.create_observable_counter(
                "arbiter.allocation.failures", [guarded(each(failures))], unit="{request}",
                description="Rejected, timed-out and failed requests by reason"),
            meter.create_observable_up_down_counter(
                "arbiter.allocations.active", [guarded(each(active))], unit="{slot}",
                description="Task slots held now"),
            meter.create_observable_up_down_counter(
                "arbiter.queue.length", [guarded(each(queued))], unit="{request}",
                description="Requests waiting in the queue"),
            meter.create_observable_up_down_counter(
                "arbiter.pool.agents", [guarded(each(pool))], unit="{agent}",
                description="Agents by health"),
            meter.create_observable_gauge(
                "arbiter.capacity.desired_agents", [guarded(each(desired))], unit="{agent}",
                description="HPA-style desired agent count (last capacity analysis)"),
            meter.create_observable_gauge(
                "arbiter.capacity.utilization", [guarded(each(utilization))], unit="1",
                description="Smoothed utilization; queued demand counts, so it can exceed 1"),
            meter.create_observable_gauge(
                "arbiter.agent.active_tasks", [guarded(each(agent_tasks))], unit="{task}",
                description="Tasks running on each agent"),
            meter.create_observable_gauge(
                "arbiter.agent.ejected", [guarded(each(agent_ejected))], unit="1",
                description="1 while the agent is ejected"),
            meter.create_observable_gauge(
                "arbiter.agent.requests.waiting", [guarded(each(engine("requests_waiting")))],
                unit="{request}", description="Requests waiting in the agent's engine"),
            meter.create_observable_gauge(
                "arbiter.agent.requests.running", [guarded(each(engine("requests_running")))],
                unit="{request}", description="Requests running in the agent's engine"),
            meter.create_observable_gauge(
                "arbiter.agent.kv_cache.usage", [guarded(each(engine("kv_cache_usage")))],
                unit="%", description="KV-cache use of the agent's engine"),
        ]

    if optimizer is not None:
        opt = optimizer

        def score() -> Iterator[Observation]:
            last = opt.last_analysis
            yield Observation(float(last.health_score) if last is not None else 100.0)

        def bottlenecks() -> Iterator[Observation]:
            counts = dict.fromkeys(_SEVERITIES, 0)
            for b in opt.get_active_bottlenecks():
                counts[str(b.severity)] = counts.get(str(b.severity), 0) + 1
            for sev, n in counts.items():
                yield Observation(n, {"severity": sev})

        inst += [
            meter.create_observable_gauge(
                "arbiter.health.score", [guarded(score)], unit="1",
                description="Health score 0-100 from distinct active bottlenecks"),
            meter.create_observable_gauge(
                "arbiter.bottlenecks.active", [guarded(bottlenecks)], unit="{bottleneck}",
                description="Active bottlenecks by severity"),
        ]
    return handle
