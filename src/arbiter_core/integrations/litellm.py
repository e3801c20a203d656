"""A LiteLLM Router routing strategy backed by :class:`AdaptiveResourceManager`.

Requires the ``litellm`` extra (tested with the LiteLLM range pinned there).

LiteLLM enforces a deployment's ``max_parallel_requests`` by refusing the
call with a 429; its built-in strategies pick without knowing whether a slot
is free, so under a burst they fail calls that could simply have waited.
:class:`ArbiterRoutingStrategy` picks through one arbiter manager per model
group: a pick reserves a slot (counted at once, so nothing herds), waits in
arbiter's priority queue while every slot is taken, and raises LiteLLM's own
rate-limit error only when that wait times out.  Outcomes come back through a
LiteLLM ``CustomLogger``: deployment failures feed arbiter's outlier ejection,
durations its latency EWMA.

Every pick is released exactly once, by the first of:

* the deployment hooks (success / failure of the attempt, inline);
* the log events (streams, when the stream ends; sync ``Router.completion``);
* the next pick of the same request (a retry or fallback hop: the attempt
  before it was refused before the provider call, which fires no callback),
  or the next pick from the same asyncio task (that task's earlier call is
  over: cancelled calls, ``router.select()``);
* the end of the picking asyncio task (non-streaming calls);
* the collection of the request's data: a stream the caller stops reading
  (``break``, ``aclose()``, its task cancelled) fires no callback, but once the
  stream object is dropped LiteLLM drops the request's metadata with it, and
  the stamp the pick put there gives the slot back;
* the lease (``lease_s``, the last resort, e.g. for a stream still referenced
  somewhere and never read to its end).

The outcome of a call is charged to its deployment only by the first two;
the others give the slot back without charging anyone.  A running call
cannot move, so picks are ``AllocationRequest(movable=False)``: when a
deployment is ejected its in-flight calls are detached (their slots freed,
their outcomes charged to no one), and a retry is kept off the deployments
the request already failed on (``exclude=``).

Examples
--------
>>> from litellm import Router                                   # doctest: +SKIP
>>> from arbiter_core.integrations.litellm import ArbiterRoutingStrategy
>>> router = Router(model_list=[...])                              # doctest: +SKIP
>>> strategy = ArbiterRoutingStrategy("least_loaded").install(router)  # doctest: +SKIP
>>> await router.acompletion(model="gpt", messages=[...])          # doctest: +SKIP
>>> strategy.outstanding                                           # doctest: +SKIP
0
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import logging
import threading
import time
import uuid
import warnings
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any

try:
    import litellm
    from litellm.integrations.custom_logger import CustomLogger
    from litellm.types.router import CustomRoutingStrategyBase, RouterRateLimitError
    from litellm.utils import calculate_max_parallel_requests
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "arbiter_core.integrations.litellm needs litellm: the extra litellm "
        "(pip install '.[litellm]' in a checkout of arbiter-core)"
    ) from exc

from .._validate import check_int, check_positive
from ..clock import Clock, default_clock
from ..resources.allocation import AllocationRequest, AllocationResult, AllocationStatistics
from ..resources.balancer import coerce_strategy
from ..resources.ejection import EjectionConfig
from ..resources.manager import AdaptiveResourceManager, ResourceManagerConfig
from ..types import AllocationStatus, LoadBalancingStrategy, TaskPriority

__all__ = [
    "METADATA_KEY",
    "ArbiterRoutingStrategy",
    "RoutingStats",
    "default_is_deployment_failure",
]

log = logging.getLogger("arbiter_core.integrations.litellm")

#: the key a pick stamps into the request's metadata bucket (the hold's id)
METADATA_KEY = "arbiter_hold"
#: an optional priority (0-100) a caller may put in the request's metadata
PRIORITY_KEY = "arbiter_priority"

_ALLOCATED = AllocationStatus.ALLOCATED
_QUEUED = AllocationStatus.QUEUED
_FAILURE_STATUSES = frozenset({401, 403, 408, 429})


def default_is_deployment_failure(exc: BaseException | None) -> bool:
    """Whether a failed attempt is the deployment's fault.

    True for timeouts, connection errors, HTTP 401/403 (auth), 408, 429 and
    5xx, and for an unknown failure (``None``); False for the caller's
    mistakes (400, 404, 422, content policy ...).  Those still count as a
    completed call, not a failure, for the deployment's health.
    """
    if exc is None:
        return True
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError, litellm.Timeout,
                        litellm.APIConnectionError)):
        return True
    status = getattr(exc, "status_code", None)
    try:
        code = int(status) if status is not None else None
    except (TypeError, ValueError):
        code = None
    if code is None:
        return not isinstance(exc, (ValueError, TypeError))
    return code in _FAILURE_STATUSES or code >= 500


@dataclass(frozen=True, slots=True)
class RoutingStats:
    """Counters of an :class:`ArbiterRoutingStrategy` (a snapshot).

    ``picks = granted + refused``; every granted pick is ``outstanding`` or
    ended as ``succeeded``, ``failed`` (charged to the deployment) or
    ``withdrawn`` (given back uncharged, by reason: ``superseded``,
    ``task_done``, ``collected``, ``lease_expired``, ``uninstalled``,
    ``deployment_removed``).
    ``groups`` holds each model group's allocation statistics.
    """

    picks: int
    granted: int
    refused: int
    succeeded: int
    failed: int
    withdrawn: Mapping[str, int]
    outstanding: int
    groups: Mapping[str, AllocationStatistics]


_Prepared = tuple[str, AdaptiveResourceManager, AllocationRequest, str, Mapping[str, Any]]


class _Hold:
    """One granted pick until it is released."""

    __slots__ = ("agent", "deadline", "group", "loop", "manager", "started", "stream", "task",
                 "token")

    def __init__(self, token: str, group: str, manager: AdaptiveResourceManager, agent: str,
                 task: asyncio.Task[Any] | None, stream: bool, started: float,
                 deadline: float) -> None:
        self.token = token
        self.group = group
        self.manager = manager
        self.agent = agent
        self.task = task       # dropped when the task ends (it may hold the stream)
        self.loop = task.get_loop() if task is not None else None
        self.stream = stream
        self.started = started
        self.deadline = deadline


class _Stamp(str):
    """A hold's id as stamped into the request's metadata.

    A ``str`` (LiteLLM copies, logs and serialises it as one) that reports its
    own collection: LiteLLM keeps the request's metadata alive exactly as long
    as something of the call is (its logging object, a stream wrapper), so the
    stamp dying means nobody can read that call any more.  Copies are the
    stamp itself (``copy``/``deepcopy``); a pickled one is a plain ``str``.
    """

    _on_collected: Callable[[str], None]

    def __new__(cls, token: str, on_collected: Callable[[str], None]) -> _Stamp:
        self = super().__new__(cls, token)
        self._on_collected = on_collected
        return self

    def __copy__(self) -> _Stamp:
        return self

    def __deepcopy__(self, memo: Any) -> _Stamp:
        return self

    def __reduce__(self) -> tuple[type[str], tuple[str]]:
        return str, (str(self),)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):    # never raise from a finaliser
            self._on_collected(str(self))


def _bucket(request_kwargs: Any) -> tuple[str, Mapping[str, Any]]:
    """The request's metadata bucket (``litellm_metadata`` if present, else
    ``metadata``) and its contents."""
    if isinstance(request_kwargs, Mapping):
        lm = request_kwargs.get("litellm_metadata")
        if isinstance(lm, Mapping):
            return "litellm_metadata", lm
        md = request_kwargs.get("metadata")
        if isinstance(md, Mapping):
            return "metadata", md
    return "metadata", {}


def _token_in(data: Any) -> str | None:
    """Our hold id in a hook's ``request_data`` or a log event's ``kwargs``."""
    if not isinstance(data, Mapping):
        return None
    places: list[Any] = [data.get("litellm_metadata"), data.get("metadata")]
    lp = data.get("litellm_params")
    if isinstance(lp, Mapping):
        places += [lp.get("litellm_metadata"), lp.get("metadata")]
    for md in places:
        if isinstance(md, Mapping):
            tok = md.get(METADATA_KEY)
            if isinstance(tok, str):
                return tok
    return None


class _OutcomeLogger(CustomLogger):  # type: ignore[misc]
    """Feeds attempt outcomes back to the strategy (registered process-wide;
    it only ever touches its own strategy's holds)."""

    def __init__(self, strategy: ArbiterRoutingStrategy) -> None:
        super().__init__()
        # public and unique: LiteLLM de-duplicates loggers by their public fields
        self.arbiter_instance = uuid.uuid4().hex
        self._strategy = strategy

    # inline, per attempt (async routers)
    async def async_post_call_success_deployment_hook(
            self, request_data: Any, response: Any, call_type: Any) -> None:
        self._strategy._finish(_token_in(request_data), True)

    async def async_post_call_failure_deployment_hook(
            self, request_data: Any, exception: Any, call_type: Any,
            fallback_depth: int | None = None) -> None:
        self._strategy._on_failure(_token_in(request_data), exception)

    # after the fact: streams at their end, and anything the hooks missed
    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any,
                                      end_time: Any) -> None:
        self._strategy._finish(_token_in(kwargs), True)

    async def async_log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any,
                                      end_time: Any) -> None:
        exc = kwargs.get("exception") if isinstance(kwargs, Mapping) else None
        self._strategy._on_failure(_token_in(kwargs), exc)

    # sync Router.completion (on a LiteLLM logging thread)
    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any,
                          end_time: Any) -> None:
        self._strategy._finish(_token_in(kwargs), True)

    def log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any,
                          end_time: Any) -> None:
        exc = kwargs.get("exception") if isinstance(kwargs, Mapping) else None
        self._strategy._on_failure(_token_in(kwargs), exc)


class ArbiterRoutingStrategy(CustomRoutingStrategyBase):  # type: ignore[misc]
    """LiteLLM routing strategy: picks through one arbiter manager per model group.

    Parameters
    ----------
    strategy : str or LoadBalancingStrategy
        Arbiter's selection strategy ("least_loaded", "power_of_two",
        "peak_ewma", "weighted", "round_robin", "random", "priority_based").
    default_max_parallel_requests : int
        Slots of a deployment for which LiteLLM's own rule
        (``max_parallel_requests`` > ``rpm`` > ``tpm``/1000*6 > the router's
        ``default_max_parallel_requests``) gives no limit.
    queue_timeout_s : float
        How long a pick may wait for a free slot; then LiteLLM's
        ``RouterRateLimitError`` (429) is raised.
    ejection : EjectionConfig, optional
        Outlier ejection of failing deployments; default 3 consecutive
        failures, 30 s (doubling up to 300 s), at most half the group.  The
        only deployment of a group is never ejected.
    is_deployment_failure : callable, optional
        ``f(exception) -> bool``; default :func:`default_is_deployment_failure`.
    lease_s : float
        A pick not released after this long is given back (last resort).
    config : ResourceManagerConfig, optional
        Template for the per-group managers (queue size, aging, capacity
        planning, ...); ``strategy`` and ``ejection`` replace its fields.
    clock : Clock, optional
        The managers' clock (default monotonic; tests pass a ManualClock).
    respect_cooldowns : bool
        Keep picks off the deployments LiteLLM has in cooldown (its
        ``allowed_fails`` / ``cooldown_time``), as its own strategies do:
        LiteLLM does not retry a failure when it sees every deployment of the
        group cooling down.  When every deployment is cooling down the pick
        goes on load alone (LiteLLM's own strategies would refuse).  Default
        True; arbiter's ejection applies either way.

    Notes
    -----
    Memory: one manager per model group the router has, one hold per
    unreleased pick (bounded by the slots plus the queue), and lease heap
    entries for the picks of the last ``monitoring_interval_s`` (released
    ones are dropped at :meth:`tick`).  Thread-safe: sync picks and
    LiteLLM's logging threads may call in concurrently.

    LiteLLM keeps a custom strategy until its routing strategy changes
    (``router.apply`` with a new ``routing_strategy`` silently drops it);
    install again after such a change.  The outcome callbacks are registered
    process-wide until :meth:`uninstall`.

    Examples
    --------
    >>> s = ArbiterRoutingStrategy("power_of_two", queue_timeout_s=5.0)
    >>> s.outstanding
    0
    """

    def __init__(
        self,
        strategy: str | LoadBalancingStrategy = "least_loaded",
        *,
        default_max_parallel_requests: int = 100,
        queue_timeout_s: float = 30.0,
        ejection: EjectionConfig | None = None,
        is_deployment_failure: Callable[[BaseException | None], bool] | None = None,
        lease_s: float = 600.0,
        config: ResourceManagerConfig | None = None,
        clock: Clock | None = None,
        respect_cooldowns: bool = True,
    ) -> None:
        strat = coerce_strategy(strategy)
        if not isinstance(respect_cooldowns, bool):
            raise TypeError("respect_cooldowns must be a bool, "
                            f"got {type(respect_cooldowns).__name__}")
        self.respect_cooldowns = respect_cooldowns
        self.default_max_parallel_requests = check_int(
            default_max_parallel_requests, "default_max_parallel_requests", 1)
        self.queue_timeout_s = check_positive(queue_timeout_s, "queue_timeout_s")
        self.lease_s = check_positive(lease_s, "lease_s")
        if config is not None and not isinstance(config, ResourceManagerConfig):
            raise TypeError(f"config must be a ResourceManagerConfig, got {type(config).__name__}")
        if ejection is None:
            ejection = config.ejection if config is not None else EjectionConfig(
                consecutive_failures=3, base_ejection_s=30.0, max_ejection_s=300.0,
                max_ejection_percent=50.0)
        if not isinstance(ejection, EjectionConfig):
            raise TypeError(f"ejection must be an EjectionConfig, got {type(ejection).__name__}")
        if is_deployment_failure is not None and not callable(is_deployment_failure):
            raise TypeError("is_deployment_failure must be callable, "
                            f"got {type(is_deployment_failure).__name__}")
        self.is_deployment_failure = is_deployment_failure or default_is_deployment_failure
        self._config = dataclasses.replace(config or ResourceManagerConfig(),
                                           load_balancing_strategy=strat, ejection=ejection)
        self._clock: Clock = default_clock() if clock is None else clock
        self._lock = threading.RLock()
        self._router: Any = None
        self._logger = _OutcomeLogger(self)
        self._managers: dict[str, AdaptiveResourceManager] = {}
        self._deployments: dict[str, dict[str, Mapping[str, Any]]] = {}  # group -> id -> deployment
        self._synced: dict[str, int] = {}                    # group -> registry version
        self._held: dict[str, _Hold] = {}
        self._by_task: dict[asyncio.Task[Any], set[str]] = {}
        self._leases: list[tuple[float, str]] = []
        self._counts: Counter[str] = Counter()
        self._withdrawn: Counter[str] = Counter()
        self._collected: deque[str] = deque()     # stamps collected, holds not yet released
        self._waiting: dict[str, AdaptiveResourceManager] = {}   # picks not yet returned
        self._next_tick = -float("inf")

    # -- installation ---------------------------------------------------------

    def install(self, router: Any) -> ArbiterRoutingStrategy:
        """Route ``router``'s picks through this strategy; returns it.

        Uses ``router.register_plugin`` (older LiteLLM:
        ``set_custom_routing_strategy``) and registers the outcome callbacks.

        Raises
        ------
        RuntimeError
            Already installed on a router.
        """
        with self._lock:
            if self._router is not None:
                raise RuntimeError("this ArbiterRoutingStrategy is already installed on a router")
            self._router = router
        register = getattr(router, "register_plugin", None)
        if callable(register):
            register(self)
        else:  # pragma: no cover - LiteLLM before register_plugin
            router.set_custom_routing_strategy(self)
        litellm.logging_callback_manager.add_litellm_callback(self._logger)
        self._sync_all()
        return self

    def uninstall(self) -> None:
        """Give the router back its configured strategy, drop the callbacks,
        withdraw the picks still held and refuse the picks still waiting
        (idempotent).

        A waiting pick ends with LiteLLM's ``RouterRateLimitError`` (LiteLLM
        retries it, if ``num_retries`` allows, with the restored strategy).
        The object is left clean: no manager, hold or waiting pick; the
        counters of :meth:`stats` go on.  It can be installed again.
        """
        with self._lock:
            router, self._router = self._router, None
            waiting, self._waiting = self._waiting, {}
        if router is None:
            return
        for rid, mgr in waiting.items():      # their picks see the withdrawal and refuse
            try:
                mgr.allocator.withdraw(rid, "uninstalled")
            except Exception:
                log.exception("withdrawing waiting pick %s failed", rid)
        litellm.logging_callback_manager.remove_callback_from_all_lists(self._logger)
        reset = getattr(router, "routing_strategy_init", None)
        if callable(reset):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                try:
                    strat = router.settings().routing_strategy
                except Exception:  # pragma: no cover - older LiteLLM
                    strat = "simple-shuffle"
                reset(strat or "simple-shuffle", {})
        with self._lock:
            tokens = list(self._held)
        for tok in tokens:
            self._finish(tok, None, "uninstalled")
        with self._lock:       # what belonged to that router
            self._managers.clear()
            self._deployments.clear()
            self._synced.clear()
            self._by_task.clear()
            self._leases.clear()
            self._collected.clear()
            self._next_tick = -float("inf")

    def __enter__(self) -> ArbiterRoutingStrategy:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.uninstall()

    @property
    def router(self) -> Any:
        """The router this strategy is installed on (``None`` if not)."""
        return self._router

    # -- deployments ------------------------------------------------------------

    def _limit(self, deployment: Mapping[str, Any]) -> int:
        """Slots by LiteLLM's own rule, so LiteLLM never refuses our pick."""
        lp = deployment.get("litellm_params") or {}
        router_default = None
        with contextlib.suppress(Exception):
            router_default = self._router.settings().default_max_parallel_requests
        n = calculate_max_parallel_requests(
            max_parallel_requests=lp.get("max_parallel_requests"), rpm=lp.get("rpm"),
            tpm=lp.get("tpm"), default_max_parallel_requests=router_default)
        return max(1, int(n)) if n is not None else self.default_max_parallel_requests

    def _version(self) -> int:
        try:
            return int(self._router.registry().version)
        except Exception:  # pragma: no cover - older LiteLLM: resync every pick
            return -1

    def _sync_all(self) -> None:
        router = self._router
        if router is None:
            return
        groups = {str(d.get("model_name")) for d in (router.registry().deployments() or [])}
        for g in sorted(groups | set(self._managers)):
            self._sync(g, force=True)

    def _sync(self, group: str, force: bool = False) -> AdaptiveResourceManager:
        """The group's manager, with its agents in step with the router."""
        version = self._version()
        mgr = self._managers.get(group)
        if mgr is not None and not force and version >= 0 and self._synced.get(group) == version:
            return mgr
        with self._lock:
            mgr = self._managers.get(group)
            if mgr is None:
                mgr = self._managers[group] = AdaptiveResourceManager(self._config,
                                                                      clock=self._clock)
            deps: dict[str, Mapping[str, Any]] = {}
            router = self._router
            found = router.registry().deployments(group) if router is not None else None
            for d in found or ():
                info = d.get("model_info") or {}
                did = info.get("id")
                if isinstance(did, str) and did:
                    deps[did] = d
            known = set(mgr.monitor.agent_ids())
            for did in known - deps.keys():
                mgr.remove_agent(did)        # its in-flight picks are detached (movable=False)
            for did, d in deps.items():
                limit = self._limit(d)
                lp = d.get("litellm_params") or {}
                weight = lp.get("weight", 1.0)
                if not isinstance(weight, (int, float)) or not weight > 0:
                    weight = 1.0
                if did not in known:
                    mgr.register_agent(did, max_tasks=limit, weight=float(weight))
                else:
                    prof = mgr.monitor.get_agent_resources(did)
                    if prof.max_task_capacity != limit:
                        try:
                            mgr.monitor.set_max_tasks(did, limit)
                        except ValueError:
                            log.info("deployment %r: limit %d below its in-flight calls; "
                                     "kept %d for now", did, limit, prof.max_task_capacity)
            # like LiteLLM's cooldowns: never eject the only deployment of a group
            # (every call would wait out the ejection instead of trying it)
            ejection = self._config.ejection
            if len(deps) < 2 and ejection.enabled:
                ejection = dataclasses.replace(ejection, enabled=False)
            if mgr.config.ejection != ejection:
                mgr.update_config(ejection=ejection)
            self._deployments[group] = deps
            self._synced[group] = version
        return mgr

    # -- picking ----------------------------------------------------------------

    def _cooldown_ids(self, group: str) -> list[str] | None:
        """The group's deployment ids to ask LiteLLM's cooldowns about (None: don't)."""
        if not self.respect_cooldowns or self._router is None:
            return None
        with contextlib.suppress(Exception):
            self._sync(group)
        ids = list(self._deployments.get(group) or ())
        return ids if len(ids) > 1 else None

    def _cooldowns(self) -> Any:
        try:
            return self._router.health().cooldowns
        except Exception:  # pragma: no cover - LiteLLM without health().cooldowns
            return None

    def _cooling_sync(self, group: str) -> frozenset[str]:
        ids = self._cooldown_ids(group)
        cache = self._cooldowns() if ids else None
        if cache is None:
            return frozenset()
        try:
            return frozenset(did for did, _ in cache.get_active_cooldowns(ids, None))
        except Exception:
            log.exception("reading LiteLLM's cooldowns failed; picking without them")
            return frozenset()

    async def _cooling_async(self, group: str) -> frozenset[str]:
        ids = self._cooldown_ids(group)
        cache = self._cooldowns() if ids else None
        if cache is None:
            return frozenset()
        try:
            found = await cache.async_get_active_cooldowns(ids, None)
        except Exception:
            log.exception("reading LiteLLM's cooldowns failed; picking without them")
            return frozenset()
        return frozenset(did for did, _ in found)

    def _prepare(self, model: str, request_kwargs: Any, specific_deployment: bool | None,
                 task: asyncio.Task[Any] | None, cooling: frozenset[str]) -> _Prepared:
        if self._router is None:
            raise RuntimeError("ArbiterRoutingStrategy is not installed: call install(router)")
        now = self._clock.now()
        if now >= self._next_tick:
            self.tick()
        else:
            self._release_collected()
        name, md = _bucket(request_kwargs)
        prev = md.get(METADATA_KEY)
        if isinstance(prev, str):
            # a retry or fallback hop: the attempt before was refused before the
            # provider call (no callback) or already released
            self._finish(prev, None, "superseded")
        if task is not None:
            with self._lock:
                earlier = [t for t in self._by_task.get(task, ()) if not self._held[t].stream]
            for tok in earlier:     # that task's earlier call is over
                self._finish(tok, None, "superseded")
        group = str(model)
        exclude: set[str] = set()
        if specific_deployment:
            group, only = self._resolve_specific(group)
            mgr = self._sync(group)
            exclude = set(self._deployments[group]) - {only}
        else:
            mgr = self._sync(group)
            deps = self._deployments.get(group) or {}
            if not deps:
                raise ValueError(f"no deployments for model group {group!r}")
            tried = set()
            for prev_attempt in md.get("previous_models") or ():
                if isinstance(prev_attempt, Mapping):
                    did = prev_attempt.get("deployment_id")
                    if did in deps:
                        tried.add(did)
            # keep off what this request failed on and what LiteLLM cools down;
            # when that is everything, the first of these that leaves a choice
            # (tried them all / all cooling: any may serve, on load alone)
            cooled = cooling & deps.keys()
            for cand in (tried | cooled, tried, cooled):
                if not cand >= deps.keys():
                    exclude = set(cand)
                    break
        prio = md.get(PRIORITY_KEY, TaskPriority.MEDIUM)
        if isinstance(prio, bool) or not isinstance(prio, int) or not 0 <= prio <= 100:
            prio = TaskPriority.MEDIUM
        rid = uuid.uuid4().hex
        req = AllocationRequest(rid, rid, prio, float(self.queue_timeout_s), movable=False,
                                exclude=frozenset(exclude) or None)
        with self._lock:
            if self._router is None:      # uninstalled meanwhile
                raise RuntimeError("ArbiterRoutingStrategy is not installed: call install(router)")
            self._waiting[rid] = mgr
        return group, mgr, req, name, md

    def _resolve_specific(self, model: str) -> tuple[str, str]:
        reg = self._router.registry()
        d = reg.deployment(model)
        if d is None:
            for cand in reg.deployments() or ():
                if (cand.get("litellm_params") or {}).get("model") == model:
                    d = cand
                    break
        if d is None:
            raise ValueError(f"no deployment {model!r}")
        if not isinstance(d, Mapping):
            d = d.model_dump() if hasattr(d, "model_dump") else dict(d)
        return str(d["model_name"]), str(d["model_info"]["id"])

    def _granted(self, res: AllocationResult, group: str, mgr: AdaptiveResourceManager,
                 request_kwargs: Any, name: str, md: Mapping[str, Any],
                 task: asyncio.Task[Any] | None) -> Mapping[str, Any]:
        with self._lock:
            self._counts["picks"] += 1
            # still ours? uninstall() withdraws the waiting picks (one granted
            # just before may not have seen it yet)
            live = self._waiting.pop(res.request_id, None) is not None
            if res.status is not _ALLOCATED or not live:
                self._counts["refused"] += 1
        if res.status is _ALLOCATED and not live:
            mgr.allocator.withdraw(res.request_id, "uninstalled")   # harmless if withdrawn
        if res.status is not _ALLOCATED or not live:
            raise RouterRateLimitError(
                model=group, cooldown_time=0.0, enable_pre_call_checks=False, cooldown_list=[])
        agent = res.agent_id
        dep = self._deployments.get(group, {}).get(agent or "")
        if dep is None:       # removed while the pick waited
            mgr.allocator.withdraw(res.request_id, "deployment_removed")
            with self._lock:
                self._counts["refused"] += 1
            raise RouterRateLimitError(
                model=group, cooldown_time=0.0, enable_pre_call_checks=False, cooldown_list=[])
        token = res.request_id
        stream = bool(request_kwargs.get("stream")) if isinstance(request_kwargs, Mapping) \
            else False
        now = self._clock.now()
        hold = _Hold(token, group, mgr, str(agent), task, stream, now, now + self.lease_s)
        with self._lock:
            self._counts["granted"] += 1
            self._held[token] = hold
            heapq.heappush(self._leases, (hold.deadline, token))
            if task is not None:
                tokens = self._by_task.get(task)
                if tokens is None:
                    tokens = self._by_task[task] = set()
                    task.add_done_callback(self._task_done)
                tokens.add(token)
        if isinstance(request_kwargs, dict):
            # a copy: a caller may pass one metadata dict to many requests
            request_kwargs[name] = {**md, METADATA_KEY: _Stamp(token, self._stamp_collected)}
        return dep

    async def async_get_available_deployment(
        self,
        model: str,
        messages: list[dict[str, str]] | None = None,
        input: str | list[Any] | None = None,
        specific_deployment: bool | None = False,
        request_kwargs: dict[str, Any] | None = None,
    ) -> Mapping[str, Any]:
        """LiteLLM's async pick: wait for a slot in arbiter's queue (up to
        ``queue_timeout_s``), then return the deployment.

        Raises
        ------
        RouterRateLimitError
            No slot within ``queue_timeout_s``.
        """
        task = asyncio.current_task()
        cooling = frozenset() if specific_deployment else await self._cooling_async(str(model))
        group, mgr, req, name, md = self._prepare(model, request_kwargs, specific_deployment,
                                                  task, cooling)
        try:
            res = await mgr.allocate_resources_async(req)
        except BaseException:        # cancelled while waiting (the manager withdrew it)
            self._not_waiting(req.request_id)
            raise
        return self._granted(res, group, mgr, request_kwargs, name, md, task)

    def get_available_deployment(
        self,
        model: str,
        messages: list[dict[str, str]] | None = None,
        input: str | list[Any] | None = None,
        specific_deployment: bool | None = False,
        request_kwargs: dict[str, Any] | None = None,
    ) -> Mapping[str, Any]:
        """LiteLLM's sync pick: blocks the calling thread while it waits for a
        slot (up to ``queue_timeout_s``).

        Raises
        ------
        RouterRateLimitError
            No slot within ``queue_timeout_s``.
        """
        cooling = frozenset() if specific_deployment else self._cooling_sync(str(model))
        group, mgr, req, name, md = self._prepare(model, request_kwargs, specific_deployment,
                                                  None, cooling)
        rid = req.request_id
        woken = threading.Event()

        def on_transition(request_id: str, status: Any, agent: Any) -> None:
            if request_id == rid:
                woken.set()

        unsubscribe = mgr.allocator.on_transition(on_transition)
        res = None
        try:
            res = mgr.allocate_resources(req)
            end = time.monotonic() + self.queue_timeout_s
            while res.status is _QUEUED:
                left = end - time.monotonic()
                if left <= 0:
                    mgr.allocator.tick()    # deadline by the manager's clock
                    res = mgr.allocation_status(rid)
                    if res.status is _QUEUED:
                        res = mgr.allocator.withdraw(rid, "timed_out") or \
                            mgr.allocation_status(rid)
                    break
                woken.wait(min(left, 1.0))
                woken.clear()
                self._release_collected()
                mgr.allocator.tick()
                res = mgr.allocation_status(rid)
        finally:
            unsubscribe()
            if res is None or res.status is _QUEUED:    # raised while waiting
                self._not_waiting(rid)
                mgr.allocator.withdraw(rid, "cancelled")
        return self._granted(res, group, mgr, request_kwargs, name, md, None)

    # -- releasing -----------------------------------------------------------------

    def _not_waiting(self, rid: str) -> None:
        with self._lock:
            self._waiting.pop(rid, None)

    def _on_failure(self, token: str | None, exc: Any) -> None:
        try:
            fault = bool(self.is_deployment_failure(exc))
        except Exception:
            log.exception("is_deployment_failure raised; counting a deployment failure")
            fault = True
        self._finish(token, not fault)

    def _finish(self, token: str | None, success: bool | None, reason: str = "") -> bool:
        """Release a hold once: ``success`` True/False charges the outcome to
        the deployment; ``None`` gives the slot back uncharged (``reason``)."""
        if token is None:
            return False
        with self._lock:
            hold = self._held.pop(token, None)
            if hold is None:
                return False
            if hold.task is not None:
                tokens = self._by_task.get(hold.task)
                if tokens is not None:
                    tokens.discard(token)
            if success is None:
                self._withdrawn[reason] += 1
            else:
                self._counts["succeeded" if success else "failed"] += 1
        mgr = hold.manager
        try:
            if success is None:
                mgr.allocator.withdraw(token, reason)
            else:
                duration = max(0.0, self._clock.now() - hold.started)
                mgr.release_resources(token, success=success, duration_s=duration)
        except Exception:  # a callback must never fail the caller's request
            log.exception("releasing arbiter hold %s failed", token)
        return True

    def _stamp_collected(self, token: str) -> None:
        """A stamp was collected (any thread, inside a finaliser): queue its
        hold's release for the owning loop, or for the next pick or tick.

        Never releases here: a finaliser may run while this thread is inside
        the allocator, whose lock is not re-entrant.
        """
        hold = self._held.get(token)          # a plain read: no lock in a finaliser
        if hold is None:                      # released already (the usual case)
            return
        self._collected.append(token)
        loop = hold.loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):    # the loop is closed
                loop.call_soon_threadsafe(self._release_collected)

    def _release_collected(self) -> None:
        collected = self._collected
        while collected:
            try:
                tok = collected.popleft()
            except IndexError:                # another thread took the last one
                break
            self._finish(tok, None, "collected")

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        """The picking task ended: its calls are over, except the streams it
        returned (a cancelled task returned none, so they are over too)."""
        cancelled = task.cancelled()
        over = []
        with self._lock:
            for tok in self._by_task.pop(task, ()):
                hold = self._held.get(tok)
                if hold is None:
                    continue
                if hold.stream and not cancelled:
                    # the stream lives on; forget the task, whose result (the
                    # stream) or frames would keep our stamp from being collected
                    hold.task = None
                else:
                    over.append(tok)
        for tok in over:
            self._finish(tok, None, "task_done")

    def tick(self) -> int:
        """Maintenance: end expired leases and run every group manager's
        :meth:`~AdaptiveResourceManager.tick` (ejections ending, deadlines).

        Picks call it at most every ``monitoring_interval_s``; call it
        yourself when picks are rare.  Returns the leases that expired.
        """
        self._release_collected()
        now = self._clock.now()
        expired: list[str] = []
        with self._lock:
            self._next_tick = now + self._config.monitoring_interval_s
            leases = self._leases
            while leases and leases[0][0] <= now:
                _, tok = heapq.heappop(leases)
                if tok in self._held:
                    expired.append(tok)
            if len(leases) > 4 * len(self._held) + 64:    # drop released entries
                self._leases = [e for e in leases if e[1] in self._held]
                heapq.heapify(self._leases)
            managers = list(self._managers.values())
        for tok in expired:
            self._finish(tok, None, "lease_expired")
        for mgr in managers:
            mgr.tick()
        return len(expired)

    # -- reading -------------------------------------------------------------------

    def manager(self, group: str) -> AdaptiveResourceManager:
        """The arbiter manager of a model group (its agents are the group's
        deployment ids).

        Raises
        ------
        KeyError
            The group is unknown (and the router, if installed, has none).
        """
        mgr = self._managers.get(group)
        if mgr is None and self._router is not None and self._router.registry().deployments(group):
            mgr = self._sync(group)
        if mgr is None:
            raise KeyError(f"unknown model group {group!r}")
        return mgr

    def managers(self) -> Mapping[str, AdaptiveResourceManager]:
        """Every model group's manager (read-only view)."""
        return MappingProxyType(dict(self._managers))

    def in_flight(self) -> dict[str, int]:
        """``{deployment_id: slots held}`` over every model group."""
        out: dict[str, int] = {}
        for mgr in list(self._managers.values()):
            for prof in mgr.monitor.get_all_agent_resources():
                out[prof.agent_id] = prof.current_task_count
        return out

    @property
    def outstanding(self) -> int:
        """Picks granted and not yet released."""
        return len(self._held)

    def ejected(self) -> frozenset[str]:
        """Deployment ids currently ejected for repeated failures."""
        now = self._clock.now()
        out = set()
        for mgr in list(self._managers.values()):
            for prof in mgr.monitor.get_all_agent_resources():
                if prof.ejected_until is not None and prof.ejected_until > now:
                    out.add(prof.agent_id)
        return frozenset(out)

    def stats(self) -> RoutingStats:
        """Counters and per-group allocation statistics (a snapshot)."""
        with self._lock:
            c = dict(self._counts)
            withdrawn = dict(self._withdrawn)
            outstanding = len(self._held)
            managers = dict(self._managers)
        return RoutingStats(
            picks=c.get("picks", 0), granted=c.get("granted", 0), refused=c.get("refused", 0),
            succeeded=c.get("succeeded", 0), failed=c.get("failed", 0),
            withdrawn=MappingProxyType(withdrawn), outstanding=outstanding,
            groups=MappingProxyType({g: m.get_allocation_statistics()
                                     for g, m in managers.items()}))

    def __repr__(self) -> str:
        return (f"ArbiterRoutingStrategy(strategy={self._config.load_balancing_strategy.value}, "
                f"groups={len(self._managers)}, outstanding={self.outstanding}, "
                f"installed={self._router is not None})")
