"""A terminal view of a manager and an optimizer (``arbiter-core monitor``).

:func:`render_dashboard` builds one frame with `rich <https://rich.readthedocs.io>`_
(the ``monitor`` extra) from the public read API of an
:class:`~arbiter_core.AdaptiveResourceManager` and a
:class:`~arbiter_core.RuntimeOptimizer`: the agents (load, health,
ejection), the queue and the tenants, the limits, the capacity verdict, the
bottlenecks and the recommendations.  :func:`dashboard_state` is the same
frame as plain data (what ``monitor --json`` prints).  A service that embeds
the manager can show the view with ``rich.live.Live(render_dashboard(...))``.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["dashboard_state", "render_dashboard"]

#: agents shown in the table (busiest first); the state has them all
MAX_AGENTS = 40


def dashboard_state(manager: Any = None, optimizer: Any = None,
                    analysis: Any = None) -> dict[str, Any]:
    """One frame's figures as plain data.

    Parameters
    ----------
    manager : AdaptiveResourceManager, optional
        Its agents, queue, tenants, limits and last capacity analysis.
    optimizer : RuntimeOptimizer, optional
        Analysed now (unless ``analysis`` is given) for the health score,
        bottlenecks and recommendations.
    analysis : OptimizationAnalysis, optional
        An analysis already made (the optimizer is then not asked again).

    Returns
    -------
    dict
        ``agents`` (one dict per agent, busiest first), ``queue``,
        ``tenants``, ``limits``, ``capacity``, ``health_score``,
        ``bottlenecks`` and ``recommendations``; the manager's keys are
        missing without a manager, the optimizer's without an optimizer.
    """
    state: dict[str, Any] = {}
    if manager is not None:
        now = manager.clock.now()
        agents = []
        for p in manager.monitor.get_all_agent_resources():
            ejected = p.ejected_until is not None and p.ejected_until > now
            agents.append({
                "agent": p.agent_id, "tasks": p.current_task_count,
                "max_tasks": p.max_task_capacity,
                "load": p.current_task_count / p.max_task_capacity,
                "cpu": p.cpu_usage, "memory": p.memory_usage,
                "health": str(p.health_status),
                "ejected_for_s": (p.ejected_until - now) if ejected else None,
                "ejections": p.ejection_count, "completed": p.tasks_completed,
                "failed": p.tasks_failed})
        agents.sort(key=lambda a: (-a["load"], a["agent"]))
        state["agents"] = agents
        stats = manager.get_allocation_statistics()
        state["queue"] = {"queued": stats.queued, "active": stats.active,
                          "allocated": stats.allocated, "rejected": stats.rejected,
                          "timed_out": stats.timed_out, "failed": stats.failed}
        cfg = manager.config
        tenants = {}
        for t in manager.tenants():
            ts = manager.get_tenant_statistics(t)
            pol = cfg.tenants.get(t)
            tenants[t] = {"queued": ts.queued, "active": ts.active, "allocated": ts.allocated,
                          "rejected": ts.rejected, "timed_out": ts.timed_out,
                          "weight": None if pol is None else pol.weight,
                          "max_active": None if pol is None else pol.max_active,
                          "max_queued": None if pol is None else pol.max_queued,
                          "rate_per_s": None if pol is None else pol.rate_per_s}
        state["tenants"] = tenants
        state["limits"] = {"max_queue": cfg.max_queue, "rate_limit": stats.rate_limit,
                           "rate_limit_per_s": stats.rate_limit_per_s}
        cap = manager.last_capacity_analysis
        state["capacity"] = None if cap is None else {
            "action": str(cap.action), "online_agents": cap.current_agents,
            "total_agents": cap.total_agents, "desired_agents": cap.desired_agents,
            "rationale": cap.rationale}
    if optimizer is not None or analysis is not None:
        a = analysis if analysis is not None else optimizer.analyze()
        state["health_score"] = a.health_score
        state["bottlenecks"] = [{"component": b.component, "metric_type": str(b.metric_type),
                                 "severity": str(b.severity),
                                 "current_value": b.current_value, "threshold": b.threshold}
                                for b in a.bottlenecks]
        state["recommendations"] = [f"[{r.priority}] {r.component}: {r.title}"
                                    for r in a.recommendations]
    return state


def _num(x: Any, digits: int = 0, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}f}{unit}"


def _bar(frac: float, width: int = 10) -> str:
    full = min(width, max(0, round(frac * width)))
    return "█" * full + "·" * (width - full)


_HEALTH_STYLE = {"healthy": "green", "degraded": "yellow", "unhealthy": "red",
                 "offline": "bold red"}


def render_dashboard(state: dict[str, Any], title: str = "arbiter-core monitor") -> Any:
    """One frame of the view (a ``rich`` renderable) from :func:`dashboard_state`.

    Needs ``rich`` (the ``monitor`` extra).
    """
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    if "health_score" in state:
        score = state["health_score"]
        style = "green" if score >= 90 else "yellow" if score >= 60 else "red"
        head = Text.assemble(("health ", "bold"), (f"{score:.0f}", f"bold {style}"),
                             "  (100 minus 20/10/5/2 per critical/high/medium/low bottleneck)")
        bns = Table(title="bottlenecks", title_justify="left", expand=False)
        for col in ("component", "metric", "severity", "value", "threshold"):
            bns.add_column(col, justify="right" if col in ("value", "threshold") else "left")
        for b in state["bottlenecks"]:
            bns.add_row(b["component"], b["metric_type"], b["severity"],
                        _num(b["current_value"], 1), _num(b["threshold"], 1))
        if not state["bottlenecks"]:
            bns.add_row("none", "", "", "", "")
        recs = Text("\n".join(f"-> {r}" for r in state["recommendations"]) or "no recommendation")
        parts.append(Panel(Group(head, bns, recs), title="health and bottlenecks"))
    if "agents" in state:
        agents = Table(title=f"agents ({len(state['agents'])}, busiest first)",
                       title_justify="left")
        for col, just in (("agent", "left"), ("load", "left"), ("tasks", "right"),
                          ("cpu %", "right"), ("mem %", "right"), ("health", "left"),
                          ("ejected", "left"), ("done", "right"), ("failed", "right")):
            agents.add_column(col, justify=just)  # type: ignore[arg-type]
        for a in state["agents"][:MAX_AGENTS]:
            health = a["health"]
            ejected = ("-" if a["ejected_for_s"] is None
                       else f"{a['ejected_for_s']:.0f} s more ({a['ejections']}x)")
            agents.add_row(a["agent"], _bar(a["load"]), f"{a['tasks']}/{a['max_tasks']}",
                           _num(a["cpu"]), _num(a["memory"]),
                           Text(health, style=_HEALTH_STYLE.get(health, "")),
                           Text(ejected, style="red" if a["ejected_for_s"] is not None else ""),
                           str(a["completed"]), str(a["failed"]))
        more = len(state["agents"]) - MAX_AGENTS
        parts.append(agents if more <= 0 else Group(agents, Text(f"({more} more agents)")))
        q = state["queue"]
        lim = state["limits"]
        queue = Text.assemble(
            ("queue ", "bold"), f"{q['queued']} waiting, {q['active']} running; ",
            f"allocated {q['allocated']}, rejected {q['rejected']}, timed out "
            f"{q['timed_out']}, failed {q['failed']}\n",
            ("limits ", "bold"), f"queue bound {lim['max_queue']}, rate limit "
            + (f"{lim['rate_limit']:.0f} requests per window "
               f"({_num(lim['rate_limit_per_s'], 1)}/s)" if lim["rate_limit"] is not None
               else "off"))
        cap = state["capacity"]
        if cap is not None:
            queue.append_text(Text.assemble(
                "\n", ("capacity ", "bold"),
                f"{cap['action']}: {cap['online_agents']} of {cap['total_agents']} agents "
                f"online, desired {cap['desired_agents']} -- {cap['rationale']}"))
        parts.append(Panel(queue, title="queue, limits and capacity"))
        if state["tenants"]:
            ten = Table(title="tenants", title_justify="left")
            for col in ("tenant", "waiting", "running", "allocated", "rejected", "timed out",
                        "weight", "max active", "max queued", "rate/s"):
                ten.add_column(col, justify="left" if col == "tenant" else "right")
            for name, t in state["tenants"].items():
                ten.add_row(name, str(t["queued"]), str(t["active"]), str(t["allocated"]),
                            str(t["rejected"]), str(t["timed_out"]), _num(t["weight"], 1),
                            _num(t["max_active"]), _num(t["max_queued"]),
                            _num(t["rate_per_s"], 1))
            parts.append(ten)
    return Panel(Group(*parts), title=title, title_align="left")
