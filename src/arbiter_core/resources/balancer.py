"""LoadBalancer: the selection strategies over a ResourceMonitor's table.

Each selection is one call into the Cython kernel (:meth:`AgentTable.decide`),
which scans or samples the agent arrays, applies the eligibility and health
rules and, for :meth:`LoadBalancer.select_and_reserve`, takes the task slot
in the same atomic step.  This module only maps names and builds the
decision record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .._listeners import Listeners
from .._select import STRATEGY_CODES
from ..types import LoadBalancingStrategy, TaskPriority, coerce_enum
from .monitor import ResourceMonitor
from .records import LoadBalancingDecision, ResourceRequirements

__all__ = ["LoadBalancer", "NoAgentAvailableError", "request_needs"]

_HIGH = int(TaskPriority.HIGH)
_MEDIUM = int(TaskPriority.MEDIUM)


class NoAgentAvailableError(RuntimeError):
    """No registered agent can take the request now.

    Attributes
    ----------
    registered : int
        Agents in the pool.
    reasons : dict
        How many agents are ``offline``, ``ejected`` or ``full``.
    """

    def __init__(self, message: str, registered: int = 0,
                 reasons: Mapping[str, int] | None = None) -> None:
        super().__init__(message)
        self.registered = registered
        self.reasons = dict(reasons or {})


def coerce_strategy(strategy: object) -> LoadBalancingStrategy:
    """``strategy`` as a :class:`LoadBalancingStrategy` (its string value is accepted)."""
    return coerce_enum(LoadBalancingStrategy, strategy, "strategy")


def request_needs(request: object) -> tuple[bool, float, float, float, int]:
    """``(high, cpu, memory_mb, network_mbps, priority)`` of a request.

    ``request`` may be ``None``, a :class:`TaskPriority` (or int 0-100), or any
    object with ``priority`` and ``required_resources`` attributes (an
    :class:`~arbiter_core.AllocationRequest`); ``required_resources`` may be a
    :class:`ResourceRequirements`, a mapping with those keys, or ``None``.
    """
    if request is None:
        return False, 0.0, 0.0, 0.0, int(TaskPriority.MEDIUM)
    if isinstance(request, int) and not isinstance(request, bool):
        if not 0 <= request <= 100:
            raise ValueError(f"priority must be within [0, 100], got {request}")
        return request >= _HIGH, 0.0, 0.0, 0.0, int(request)
    priority = getattr(request, "priority", TaskPriority.MEDIUM)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"request.priority must be a TaskPriority or int, "
                        f"got {type(priority).__name__}")
    if not 0 <= priority <= 100:
        raise ValueError(f"request.priority must be within [0, 100], got {priority}")
    res = getattr(request, "required_resources", None)
    if res is None:
        return priority >= _HIGH, 0.0, 0.0, 0.0, int(priority)
    if isinstance(res, Mapping):
        res = ResourceRequirements(**res)
    if not isinstance(res, ResourceRequirements):
        raise TypeError(f"request.required_resources must be a ResourceRequirements, "
                        f"a mapping or None, got {type(res).__name__}")
    return (priority >= _HIGH, res.cpu_percent, res.memory_mb, res.network_mbps,
            int(priority))


class LoadBalancer:
    """Choose agents for tasks with one of the strategies (seven presets and ``scored``).

    Parameters
    ----------
    monitor : ResourceMonitor
        The pool; selection reads and reserves on its table.
    strategy : LoadBalancingStrategy or str
        Default LEAST_LOADED.
    seed : int, optional
        Seeds the table's PRNG (random choices and tie-breaks) for
        reproducible runs.  Balancers on one monitor share its PRNG and its
        round-robin cursor.

    Notes
    -----
    Eligible: not OFFLINE, not ejected, a free task slot, and the request's
    resources fit.  Requests of priority >= HIGH go only to HEALTHY agents
    while one with a free slot exists.  :meth:`select_agent` only chooses;
    :meth:`select_and_reserve` also takes the slot atomically, so an
    allocation counts against the agent at once and no strategy herds.

    Examples
    --------
    >>> from arbiter_core import ManualClock, ResourceMonitor
    >>> mon = ResourceMonitor(clock=ManualClock())
    >>> for a in ("a1", "a2"):
    ...     _ = mon.register_agent(a, max_tasks=10)
    >>> mon.record_usage("a1", cpu=20.0); mon.update_task_count("a1", 2)
    <HealthStatus.HEALTHY: 'healthy'>
    >>> mon.record_usage("a2", cpu=40.0); mon.update_task_count("a2", 5)
    <HealthStatus.HEALTHY: 'healthy'>
    >>> d = LoadBalancer(mon).select_agent()
    >>> d.selected_agent_id, d.rationale
    ('a1', 'Least loaded agent (30.0% load)')
    """

    def __init__(
        self,
        monitor: ResourceMonitor,
        strategy: LoadBalancingStrategy | str = LoadBalancingStrategy.LEAST_LOADED,
        seed: int | None = None,
    ) -> None:
        if not isinstance(monitor, ResourceMonitor):
            raise TypeError(f"monitor must be a ResourceMonitor, got {type(monitor).__name__}")
        self._monitor = monitor
        self._table = monitor.table
        self._clock = monitor.clock
        self._strategy_listeners = Listeners("strategy listener")
        self.set_strategy(strategy)
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
            self._table.seed(seed)

    @property
    def monitor(self) -> ResourceMonitor:
        return self._monitor

    @property
    def strategy(self) -> LoadBalancingStrategy:
        return self._current[0]

    @property
    def strategy_code(self) -> int:
        """The strategy's code for the table's kernels (``STRATEGY_CODES``)."""
        return self._current[1]

    def set_strategy(self, strategy: LoadBalancingStrategy | str) -> None:
        """Switch strategy at runtime (thread-safe: one attribute store);
        subscribers of :meth:`on_strategy_change` follow at once."""
        s = coerce_strategy(strategy)
        # one attribute holds both, so a concurrent switch is never half-seen
        self._current = current = (s, STRATEGY_CODES[s.value])
        self._strategy_listeners.emit(*current)

    def on_strategy_change(
        self, callback: Callable[[LoadBalancingStrategy, int], None]
    ) -> Callable[[], None]:
        """Call ``callback(strategy, code)`` after every :meth:`set_strategy`
        (the allocator keeps the code in C this way).  Returns a function
        that unsubscribes."""
        return self._strategy_listeners.subscribe(callback)

    def get_strategy(self) -> LoadBalancingStrategy:
        return self._current[0]

    def _decide(self, request: object, reserve: bool) -> LoadBalancingDecision:
        if request is None:
            high, cpu, mem, net, priority = False, 0.0, 0.0, 0.0, _MEDIUM
        else:
            high, cpu, mem, net, priority = request_needs(request)
        strategy, code = self._current
        now = self._clock.now()
        # the kernel builds the record itself (no intermediate tuples), and
        # times its own decision
        d: LoadBalancingDecision | None = self._table.decision(
            LoadBalancingDecision, strategy, code, high, cpu, mem, net, now, reserve, priority)
        if d is None:
            raise self.no_agent_error(now)
        return d

    def select_agent(self, request: Any = None) -> LoadBalancingDecision:
        """Choose an agent for ``request`` without reserving anything.

        Raises
        ------
        NoAgentAvailableError
            No agent is eligible.
        """
        return self._decide(request, False)

    def select_and_reserve(self, request: Any = None) -> LoadBalancingDecision:
        """Choose an agent and take one of its task slots (and the request's
        resources) in one atomic step; undo with :meth:`release`.

        Raises
        ------
        NoAgentAvailableError
            No agent is eligible (nothing is reserved).
        """
        return self._decide(request, True)

    def release(self, agent_id: str, request: Any = None) -> None:
        """Give back a slot taken by :meth:`select_and_reserve` for ``request``."""
        _, cpu, mem, net, _ = request_needs(request)
        with self._monitor.lock:
            self._table.release(self._table.slot(agent_id), cpu, mem, net)

    def no_agent_error(self, now: float | None = None) -> NoAgentAvailableError:
        """The error to raise when no agent is eligible, with the reasons."""
        if now is None:
            now = self._clock.now()
        n = len(self._table)
        if n == 0:
            return NoAgentAvailableError("no agents registered", 0, {})
        reasons = self._table.ineligibility(now)
        detail = ", ".join(f"{v} {k}" for k, v in reasons.items() if v) or (
            "none has room for the requested resources or health")
        return NoAgentAvailableError(
            f"no agent available: {n} registered, none eligible ({detail})", n, reasons)

    def get_load_distribution(self) -> dict[str, int]:
        """Selections made per registered agent since the last reset.

        Bounded to the agents currently registered (a removed agent's count
        goes with it).
        """
        return {str(k): v for k, v in self._table.selections().items()}

    def reset_load_distribution(self) -> None:
        self._table.reset_selections()

    def __repr__(self) -> str:
        return f"LoadBalancer(strategy={self._current[0].value}, agents={len(self._table)})"
