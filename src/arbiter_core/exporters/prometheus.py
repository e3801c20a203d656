"""Prometheus exporter: a collector over a RuntimeOptimizer and/or managers.

Requires the ``prometheus`` extra (``prometheus_client``).  The collector
reads the components' public snapshots at scrape time, so it adds nothing to
their hot paths, and it never changes their state (a capacity analysis is
exported once the manager has made one; the scrape does not run one).

Series follow Prometheus' conventions: running counts are counters
(``_total``), reasons and outcomes are labels, units are base units
(seconds, ratios 0-1), and no value is a timestamp of the process' monotonic
clock.

Manager series (every one gets a ``group`` label when ``manager`` is a
mapping of names to managers, e.g. ``strategy.managers()`` of the LiteLLM
integration):

* counters: ``arbiter_allocation_requests_total`` (submitted),
  ``arbiter_allocations_total{outcome}`` (finished requests by outcome:
  ``released``, ``rejected``, ``timed_out``, ``failed``),
  ``arbiter_allocations_granted_total`` (got a slot: active + released),
  ``arbiter_allocation_failures_total{reason}`` (rejected, timed out and
  failed requests by reason; at most 64 reasons, then "other"),
  ``arbiter_unknown_releases_total``, ``arbiter_fallback_allocations_total``,
  ``arbiter_slow_decisions_total``, ``arbiter_listener_errors_total``,
  ``arbiter_failovers_total``, ``arbiter_pool_tasks_completed_total``,
  ``arbiter_pool_tasks_failed_total``;
* queue and pool gauges: ``arbiter_allocations_active``,
  ``arbiter_queue_length``, ``arbiter_allocation_wait_seconds{percentile}``
  (50/95/99 of the last 10,000 grants), ``arbiter_rate_limit_per_second``
  (when limited), ``arbiter_pool_agents{health}`` (``healthy``,
  ``degraded``, ``unhealthy``, ``offline``), ``arbiter_pool_ejected_agents``,
  ``arbiter_pool_task_slots``, ``arbiter_pool_available_task_slots``,
  ``arbiter_pool_tasks_in_progress``;
* for autoscalers (HPA external metrics, KEDA's Prometheus scaler), from the
  manager's last capacity analysis: ``arbiter_capacity_desired_agents``,
  ``arbiter_capacity_current_agents``, ``arbiter_capacity_utilization_ratio``
  (smoothed; queued demand counts, so it can exceed 1),
  ``arbiter_capacity_target_utilization_ratio``,
  ``arbiter_capacity_scaling_action{action}`` (1 for the recommended one);
* per agent, label ``agent``: gauges ``arbiter_agent_active_tasks``,
  ``arbiter_agent_max_tasks``, ``arbiter_agent_health{health}`` (1 for the
  agent's health), ``arbiter_agent_ejected``,
  ``arbiter_agent_latency_ewma_seconds`` (once known),
  ``arbiter_agent_concurrency``, and once an engine reports them
  ``arbiter_agent_requests_waiting``, ``arbiter_agent_requests_running``,
  ``arbiter_agent_kv_cache_usage_percent``; counters
  ``arbiter_agent_tasks_completed_total``, ``arbiter_agent_tasks_failed_total``;
  and ``arbiter_agent_series_dropped`` (agents left out by the cap).

* per tenant, label ``tenant``: counters
  ``arbiter_tenant_allocation_requests_total``,
  ``arbiter_tenant_allocations_total{outcome}``, gauges
  ``arbiter_tenant_allocations_active``, ``arbiter_tenant_queue_length``;
  and ``arbiter_tenant_series_dropped``.  At most ``max_tenant_series``
  tenants (default 100) get series, the busiest first (active + queued, then
  name); the manager itself folds idle tenants into "other" past its
  ``max_tenants``.

Per-agent cardinality is bounded: at most ``max_agent_series`` agents per
manager (default 100) get series -- the busiest first (active tasks, then
id) -- and ``arbiter_agent_series_dropped`` says how many were left out.
Set it to 0 to export no per-agent series.

Optimizer series: ``arbiter_health_score`` (0-100),
``arbiter_bottlenecks_active{severity}``,
``arbiter_bottleneck{component,metric_type,severity}`` (the latest value of
each active bottleneck's metric), ``arbiter_optimizer_running``,
``arbiter_optimizer_degraded``, ``arbiter_optimizer_overhead_ratio``,
``arbiter_optimizer_interval_seconds`` and the counters
``arbiter_optimizer_metrics_collected_total``,
``arbiter_optimizer_analyses_total``,
``arbiter_optimizer_recommendations_total``,
``arbiter_optimizer_collector_failures_total``.

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

from collections.abc import Iterator, Mapping
from typing import Any

try:
    from prometheus_client import start_http_server
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "arbiter_core.exporters.prometheus needs prometheus_client: "
        "pip install 'arbiter-runtime[prometheus]'"
    ) from exc

from ..types import HealthStatus, ScalingAction

__all__ = ["ArbiterCollector", "serve"]

_SEVERITIES = ("low", "medium", "high", "critical")
_OUTCOMES = ("released", "rejected", "timed_out", "failed")
_HEALTH = tuple(h.value for h in HealthStatus)
_ACTIONS = tuple(a.value for a in ScalingAction)


def _as_managers(manager: Any) -> tuple[list[tuple[str | None, Any]], bool]:
    if manager is None:
        return [], False
    if isinstance(manager, Mapping):
        return [(str(k), v) for k, v in manager.items()], True
    return [(None, manager)], False


class _Families:
    """Metric families for one scrape, with the ``group`` label when grouped."""

    def __init__(self, ns: str, grouped: bool) -> None:
        self.ns = ns
        self.grouped = grouped
        self.fams: dict[str, Metric] = {}

    def _fam(self, kind: type, name: str, doc: str, labels: tuple[str, ...]) -> Any:
        fam = self.fams.get(name)
        if fam is None:
            lab = (["group"] if self.grouped else []) + list(labels)
            fam = self.fams[name] = kind(f"{self.ns}_{name}", doc, labels=lab)
        return fam

    def gauge(self, name: str, doc: str, group: str | None, value: float,
              **labels: str) -> None:
        fam = self._fam(GaugeMetricFamily, name, doc, tuple(labels))
        fam.add_metric(self._values(group, labels), float(value))

    def counter(self, name: str, doc: str, group: str | None, value: float,
                **labels: str) -> None:
        fam = self._fam(CounterMetricFamily, name, doc, tuple(labels))
        fam.add_metric(self._values(group, labels), float(value))

    def declare_gauge(self, name: str, doc: str, *labels: str) -> None:
        self._fam(GaugeMetricFamily, name, doc, labels)

    def declare_counter(self, name: str, doc: str, *labels: str) -> None:
        self._fam(CounterMetricFamily, name, doc, labels)

    def _values(self, group: str | None, labels: Mapping[str, str]) -> list[str]:
        vals = [str(v) for v in labels.values()]
        return ([group or ""] + vals) if self.grouped else vals


class ArbiterCollector(Collector):
    """Expose an optimizer's and managers' state in Prometheus' conventions.

    Parameters
    ----------
    optimizer : RuntimeOptimizer, optional
        Health score, bottlenecks and optimizer status.
    manager : AdaptiveResourceManager or mapping of str to it, optional
        Allocation counters, queue, pool, capacity and per-agent series; a
        mapping (``{"gpt-4o": manager, ...}``) adds a ``group`` label.
    namespace : str
        Prefix of every metric name (default ``arbiter``).
    max_agent_series : int
        Per-agent series cap per manager (default 100; the busiest agents
        first); 0 exports none.

    Raises
    ------
    ValueError
        Neither an optimizer nor a manager, or a negative cap.
    """

    def __init__(self, optimizer: Any = None, manager: Any = None,
                 namespace: str = "arbiter", max_agent_series: int = 100,
                 max_tenant_series: int = 100) -> None:
        if optimizer is None and manager is None:
            raise ValueError("ArbiterCollector needs an optimizer, a manager, or both")
        for name, cap in (("max_agent_series", max_agent_series),
                          ("max_tenant_series", max_tenant_series)):
            if not isinstance(cap, int) or isinstance(cap, bool) or cap < 0:
                raise ValueError(f"{name} must be an int >= 0, got {cap!r}")
        self.optimizer = optimizer
        self.manager = manager
        self.ns = namespace
        self.max_agent_series = max_agent_series
        self.max_tenant_series = max_tenant_series

    def collect(self) -> Iterator[Metric]:
        if self.optimizer is not None:
            yield from self._optimizer_metrics()
        managers, grouped = _as_managers(self.manager)
        if managers:
            f = _Families(self.ns, grouped)
            for group, mgr in managers:
                self._manager_metrics(f, group, mgr)
            yield from f.fams.values()

    # -- manager ------------------------------------------------------------------

    def _manager_metrics(self, f: _Families, g: str | None, mgr: Any) -> None:
        st = mgr.get_allocation_statistics()
        f.counter("allocation_requests", "Allocation requests submitted", g, st.total_requests)
        for outcome in _OUTCOMES:
            f.counter("allocations", "Finished allocation requests by outcome", g,
                      getattr(st, outcome), outcome=outcome)
        f.counter("allocations_granted", "Allocation requests that got a slot", g,
                  st.allocated)
        f.declare_counter("allocation_failures",
                          "Rejected, timed-out and failed requests by reason", "reason")
        for reason, n in sorted(st.by_reason.items()):
            f.counter("allocation_failures",
                      "Rejected, timed-out and failed requests by reason", g, n, reason=reason)
        f.gauge("allocations_active", "Task slots held now", g, st.active)
        f.gauge("queue_length", "Requests waiting in the queue", g, st.queued)
        f.declare_gauge("allocation_wait_seconds",
                        "Wait from submission to a slot (last 10,000 grants)", "percentile")
        for pct, v in (("50", st.wait_p50_s), ("95", st.wait_p95_s), ("99", st.wait_p99_s)):
            if v is not None:
                f.gauge("allocation_wait_seconds",
                        "Wait from submission to a slot (last 10,000 grants)", g, v,
                        percentile=pct)
        f.counter("unknown_releases", "Releases of unknown request ids", g,
                  st.unknown_releases)
        f.counter("fallback_allocations", "Allocations by the round-robin fallback", g,
                  st.fallback_allocations)
        f.counter("slow_decisions", "Allocation decisions slower than the limit", g,
                  st.slow_decisions)
        f.counter("listener_errors", "Listener calls that raised", g, st.listener_errors)
        f.declare_gauge("rate_limit_per_second", "Current admission rate")
        if st.rate_limit_per_s is not None:
            f.gauge("rate_limit_per_second", "Current admission rate", g, st.rate_limit_per_s)
        health = mgr.get_health_status()
        f.counter("failovers", "Failovers (manual, stale, ejection, removal)", g,
                  health.failover_events)

        p = mgr.get_pool_statistics()
        by_health = {"healthy": p.healthy_agents, "degraded": p.degraded_agents,
                     "unhealthy": p.unhealthy_agents, "offline": p.offline_agents}
        for h, n in by_health.items():
            f.gauge("pool_agents", "Agents by health", g, n, health=h)
        f.gauge("pool_ejected_agents", "Agents ejected for repeated failures", g,
                p.ejected_agents)
        f.gauge("pool_task_slots", "Task slots of all agents", g, p.total_task_slots)
        f.gauge("pool_available_task_slots", "Free task slots", g, p.available_task_slots)
        f.gauge("pool_tasks_in_progress", "Tasks running on agents", g, p.tasks_in_progress)
        f.counter("pool_tasks_completed", "Tasks completed by the current agents", g,
                  p.tasks_completed)
        f.counter("pool_tasks_failed", "Tasks failed on the current agents", g, p.tasks_failed)

        a = getattr(mgr, "last_capacity_analysis", None)
        for name, doc in (("capacity_desired_agents", "HPA-style desired agent count"),
                          ("capacity_current_agents", "Agents online at the last analysis"),
                          ("capacity_utilization_ratio",
                           "Smoothed utilization (queued demand counts; can exceed 1)"),
                          ("capacity_target_utilization_ratio", "Target utilization")):
            f.declare_gauge(name, doc)
        f.declare_gauge("capacity_scaling_action", "1 for the recommended action", "action")
        if a is not None:
            f.gauge("capacity_desired_agents", "HPA-style desired agent count", g,
                    a.desired_agents)
            f.gauge("capacity_current_agents", "Agents online at the last analysis", g,
                    a.current_agents)
            f.gauge("capacity_utilization_ratio",
                    "Smoothed utilization (queued demand counts; can exceed 1)", g,
                    a.smoothed_utilization_percent / 100.0)
            f.gauge("capacity_target_utilization_ratio", "Target utilization", g,
                    a.target_utilization_percent / 100.0)
            for act in _ACTIONS:
                f.gauge("capacity_scaling_action", "1 for the recommended action", g,
                        1.0 if a.scaling_recommendation.value == act else 0.0, action=act)

        self._agent_metrics(f, g, mgr)
        self._tenant_metrics(f, g, mgr)

    def _tenant_metrics(self, f: _Families, g: str | None, mgr: Any) -> None:
        if not callable(getattr(mgr, "tenants", None)):
            return
        stats = []
        for t in mgr.tenants():
            try:
                stats.append((t, mgr.get_tenant_statistics(t)))
            except KeyError:        # folded away between the two calls
                continue
        stats.sort(key=lambda ts: (-(ts[1].active + ts[1].queued), ts[0]))
        kept = stats[:self.max_tenant_series]
        f.gauge("tenant_series_dropped", "Tenants left out of the per-tenant series (cap)",
                g, len(stats) - len(kept))
        for t, st in kept:
            f.counter("tenant_allocation_requests", "Allocation requests submitted, by tenant",
                      g, st.total_requests, tenant=t)
            for outcome in _OUTCOMES:
                f.counter("tenant_allocations", "Finished requests by tenant and outcome", g,
                          getattr(st, outcome), tenant=t, outcome=outcome)
            f.gauge("tenant_allocations_active", "Task slots held now, by tenant", g,
                    st.active, tenant=t)
            f.gauge("tenant_queue_length", "Requests waiting, by tenant", g, st.queued,
                    tenant=t)

    def _agent_metrics(self, f: _Families, g: str | None, mgr: Any) -> None:
        docs = {
            "agent_active_tasks": "Tasks running on the agent",
            "agent_max_tasks": "Task slots of the agent",
            "agent_ejected": "1 while the agent is ejected",
            "agent_latency_ewma_seconds": "Peak-EWMA task duration of the agent",
            "agent_requests_waiting": "Requests waiting in the agent's engine (last report)",
            "agent_requests_running": "Requests running in the agent's engine (last report)",
            "agent_kv_cache_usage_percent": "KV-cache use of the agent's engine (last report)",
            "agent_concurrency": "Tasks the agent serves at full speed (load estimate)",
        }
        for name, doc in docs.items():
            f.declare_gauge(name, doc, "agent")
        f.declare_gauge("agent_health", "1 for the agent's health", "agent", "health")
        f.declare_counter("agent_tasks_completed", "Tasks completed by the agent", "agent")
        f.declare_counter("agent_tasks_failed", "Tasks failed on the agent", "agent")
        profiles = mgr.monitor.get_all_agent_resources()
        cap = self.max_agent_series
        if len(profiles) > cap:
            profiles = sorted(profiles, key=lambda p: (-p.current_task_count, p.agent_id))[:cap]
        dropped = len(mgr.monitor) - len(profiles)
        f.gauge("agent_series_dropped", "Agents left out of per-agent series by the cap",
                g, max(0, dropped))
        now = mgr.clock.now()
        for p in profiles:
            aid = p.agent_id
            f.gauge("agent_active_tasks", docs["agent_active_tasks"], g,
                    p.current_task_count, agent=aid)
            f.gauge("agent_max_tasks", docs["agent_max_tasks"], g, p.max_task_capacity,
                    agent=aid)
            for h in _HEALTH:
                f.gauge("agent_health", "1 for the agent's health", g,
                        1.0 if p.health_status.value == h else 0.0, agent=aid, health=h)
            ejected = p.ejected_until is not None and p.ejected_until > now
            f.gauge("agent_ejected", docs["agent_ejected"], g, 1.0 if ejected else 0.0,
                    agent=aid)
            if p.avg_task_completion_s is not None:
                f.gauge("agent_latency_ewma_seconds", docs["agent_latency_ewma_seconds"], g,
                        p.avg_task_completion_s, agent=aid)
            f.gauge("agent_concurrency", docs["agent_concurrency"], g, p.concurrency, agent=aid)
            for name, value in (("agent_requests_waiting", p.requests_waiting),
                                ("agent_requests_running", p.requests_running),
                                ("agent_kv_cache_usage_percent", p.kv_cache_usage)):
                if value is not None:       # engine figures: once reported
                    f.gauge(name, docs[name], g, value, agent=aid)
            f.counter("agent_tasks_completed", "Tasks completed by the agent", g,
                      p.tasks_completed, agent=aid)
            f.counter("agent_tasks_failed", "Tasks failed on the agent", g, p.tasks_failed,
                      agent=aid)

    # -- optimizer ----------------------------------------------------------------

    def _optimizer_metrics(self) -> Iterator[Metric]:
        ns = self.ns
        opt = self.optimizer
        last = opt.last_analysis
        score = GaugeMetricFamily(f"{ns}_health_score",
                                  "Health score 0-100 from distinct active bottlenecks")
        score.add_metric([], float(last.health_score) if last is not None else 100.0)
        yield score
        active = opt.get_active_bottlenecks()
        by_sev = GaugeMetricFamily(f"{ns}_bottlenecks_active",
                                   "Active bottlenecks by severity", labels=["severity"])
        counts = dict.fromkeys(_SEVERITIES, 0)
        each = GaugeMetricFamily(f"{ns}_bottleneck",
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
        h = opt.get_health_status()
        for name, doc, value in (
                ("optimizer_running", "1 while the optimizer's maintenance runs", h.is_running),
                ("optimizer_degraded", "1 when the last analysis or a collector failed",
                 h.degraded),
                ("optimizer_overhead_ratio", "Smoothed cost of cycles per interval",
                 h.overhead_pct / 100.0),
                ("optimizer_interval_seconds", "Analysis interval in use",
                 h.effective_interval_s)):
            gm = GaugeMetricFamily(f"{ns}_{name}", doc)
            gm.add_metric([], float(value))
            yield gm
        for name, doc, value in (
                ("optimizer_metrics_collected", "Samples recorded", h.metrics_collected),
                ("optimizer_analyses", "Analyses run", h.analyses_run),
                ("optimizer_recommendations", "Distinct recommendations",
                 h.recommendations_generated),
                ("optimizer_collector_failures", "Collector calls that raised",
                 h.collector_failures)):
            cm = CounterMetricFamily(f"{ns}_{name}", doc)
            cm.add_metric([], float(value))
            yield cm


def serve(port: int, optimizer: Any = None, manager: Any = None, bind: str = "127.0.0.1",
          registry: CollectorRegistry | None = None) -> Any:
    """Register an :class:`ArbiterCollector` and serve ``/metrics`` on ``bind:port``.

    Binds to loopback unless told otherwise.  Returns what
    ``prometheus_client.start_http_server`` returns (the server and its thread).
    """
    reg = REGISTRY if registry is None else registry
    reg.register(ArbiterCollector(optimizer=optimizer, manager=manager))
    return start_http_server(port, addr=bind, registry=reg)
