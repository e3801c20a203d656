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
        ``bottlenecks``, ``recommendations`` (titles) and
        ``recommendation_details``; the manager's keys are missing without a
        manager, the optimizer's without an optimizer or analysis.
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
        state["recommendations"] = [r.title for r in a.recommendations]
        state["recommendation_details"] = [
            {"priority": str(r.priority), "component": r.component, "title": r.title}
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


def _limits(t: dict[str, Any]) -> str:
    parts = [f"{t[k]:g} {label}" for k, label in (("max_active", "active"),
                                                   ("max_queued", "queued"),
                                                   ("rate_per_s", "/s")) if t[k] is not None]
    return ", ".join(parts).replace(" /s", "/s") or "-"


def render_dashboard(state: dict[str, Any], title: str = "arbiter-core monitor",
                     max_agents: int = MAX_AGENTS) -> Any:
    """One frame of the view (a ``rich`` renderable) from :func:`dashboard_state`.

    Laid out for 80 columns: the health score and the bottlenecks, the
    agents (at most ``max_agents``, busiest first), the queue, limits and
    capacity, the tenants.  Needs ``rich`` (the ``monitor`` extra).
    """
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    def table(title: str, *cols: tuple[str, str]) -> Table:
        t = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
                  padding=(0, 1), pad_edge=False)
        for name, just in cols:
            t.add_column(name, justify=just, no_wrap=True)  # type: ignore[arg-type]
        return t

    parts: list[Any] = [Text(title, style="bold reverse")]
    if "health_score" in state:
        score = state["health_score"]
        style = "green" if score >= 90 else "yellow" if score >= 60 else "red"
        parts.append(Text.assemble(
            ("health ", "bold"), (f"{score:.0f}", f"bold {style}"),
            " (100 minus 20/10/5/2 per critical/high/medium/low bottleneck)"))
        if state["bottlenecks"]:
            bns = table("bottlenecks", ("component", "left"), ("metric", "left"),
                        ("severity", "left"), ("value", "right"), ("threshold", "right"))
            for b in state["bottlenecks"]:
                bns.add_row(b["component"], b["metric_type"], b["severity"],
                            _num(b["current_value"], 1), _num(b["threshold"], 1))
            parts.append(bns)
        else:
            parts.append(Text("bottlenecks: none"))
        parts.extend(Text(f"-> [{r['priority']}] {r['component']}: {r['title']}")
                     for r in state["recommendation_details"])
    elif "agents" in state:
        parts.append(Text("health: no analysis yet"))
    if "agents" in state:
        agents = table(f"agents ({len(state['agents'])}, busiest first)", ("agent", "left"),
                       ("load", "left"), ("cpu%", "right"), ("mem%", "right"),
                       ("health", "left"), ("ejected", "left"), ("done/failed", "right"))
        for a in state["agents"][:max_agents]:
            health = a["health"]
            ejected = ("" if a["ejected_for_s"] is None
                       else f"{a['ejected_for_s']:.0f} s more")
            agents.add_row(a["agent"], f"{_bar(a['load'], 8)} {a['tasks']}/{a['max_tasks']}",
                           _num(a["cpu"]), _num(a["memory"]),
                           Text(health, style=_HEALTH_STYLE.get(health, "")),
                           Text(ejected, style="red"),
                           f"{a['completed']}/{a['failed']}")
        parts.append(agents)
        more = len(state["agents"]) - max_agents
        if more > 0:
            parts.append(Text(f"({more} more agents)"))
        q = state["queue"]
        lim = state["limits"]
        rate = ("off" if lim["rate_limit"] is None else
                f"{lim['rate_limit']:.0f} requests a window "
                f"({_num(lim['rate_limit_per_s'], 1)}/s)")
        parts.append(Text.assemble(
            ("queue ", "bold"), f"{q['queued']} waiting, {q['active']} running; allocated "
            f"{q['allocated']}, rejected {q['rejected']}, timed out {q['timed_out']}, "
            f"failed {q['failed']}"))
        parts.append(Text.assemble(("limits ", "bold"),
                                   f"queue bound {lim['max_queue']}, rate limit {rate}"))
        cap = state["capacity"]
        if cap is not None:
            parts.append(Text.assemble(
                ("capacity ", "bold"),
                f"{cap['action']}: {cap['online_agents']} of {cap['total_agents']} agents "
                f"online, desired {cap['desired_agents']}. {cap['rationale']}"))
        if state["tenants"]:
            ten = table("tenants", ("tenant", "left"), ("wait", "right"), ("run", "right"),
                        ("alloc", "right"), ("reject", "right"), ("t/o", "right"),
                        ("weight", "right"), ("limits", "left"))
            for name, t in state["tenants"].items():
                ten.add_row(name, str(t["queued"]), str(t["active"]), str(t["allocated"]),
                            str(t["rejected"]), str(t["timed_out"]), _num(t["weight"], 1),
                            _limits(t))
            parts.append(ten)
    return Group(*parts)
