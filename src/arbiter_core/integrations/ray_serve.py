"""A Ray Serve request router backed by :class:`AdaptiveResourceManager`.

Requires the ``ray`` extra (``ray[serve]``, Ray 2.49 or later; tested with the
version pinned there).  Name the class in the deployment's request router
config::

    from ray import serve
    from ray.serve.config import RequestRouterConfig

    @serve.deployment(
        num_replicas=4, max_ongoing_requests=4,
        request_router_config=RequestRouterConfig(
            request_router_class="arbiter_core.integrations.ray_serve:ArbiterRequestRouter",
            request_router_kwargs={"strategy": "least_loaded"},
        ))
    class Model: ...

Every handle (and proxy) of the deployment builds its own router; each keeps
one arbiter manager whose agents are the deployment's replicas, with
``max_ongoing_requests`` as their slots.  A choice reserves a slot at once (so
concurrent routing tasks do not herd), waits in arbiter's priority queue while
every slot is taken, and is released exactly once:

* when Serve reports the request completed (``on_request_completed``: done,
  failed, cancelled, or its replica died);
* when the request is withdrawn before it was sent (its pending future was
  cancelled, or the same request is chosen again after a backoff);
* by the lease (``lease_s``), the last resort for a request Serve never
  reports.

Serve's preference groups are ours: the winner alone first, then every other
replica ordered by its load in arbiter's count.  Replicas' routing stats
(``record_routing_stats``) feed :meth:`AdaptiveResourceManager.record_usage`
(cpu, memory, KV-cache use, waiting and running requests; see :data:`STAT_KEYS`),
which the selection signals weigh.

Not done here (see the docs page): affinity (the request's ``affinity_key`` is
computed and stored, and the ``cache_affinity`` scorer is a seam below), the
sharing of one pool by several routers through a fleet lease store, and the
charging of failures to replicas (Serve does not tell a router how a request
ended).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import logging
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

try:
    from ray.serve.request_router import PendingRequest, RequestRouter, RunningReplica
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "arbiter_core.integrations.ray_serve needs Ray Serve >= 2.49: "
        "pip install 'arbiter-runtime[ray]'"
    ) from exc

from .._validate import check_positive
from ..resources.allocation import AllocationRequest
from ..resources.balancer import coerce_strategy
from ..resources.manager import AdaptiveResourceManager, ResourceManagerConfig
from ..types import AllocationStatus, TaskPriority
from . import _instances

__all__ = ["STAT_KEYS", "ArbiterRequestRouter", "RouterStats", "session_affinity_key"]

log = logging.getLogger("arbiter_core.integrations.ray_serve")

#: routing-stats keys read from a replica's ``record_routing_stats()`` dict and
#: the :meth:`~AdaptiveResourceManager.record_usage` argument each feeds: ``cpu``,
#: ``memory`` and ``kv_cache`` in percent, ``waiting``/``running`` as request
#: counts (vLLM's names too); the ``kv_cache_usage*`` keys are fractions 0-1.
#: (A tuple: Ray Serve pickles this module by value, and a mappingproxy does not pickle.)
STAT_KEYS: tuple[tuple[str, str], ...] = (
    ("cpu", "cpu"), ("cpu_percent", "cpu"),
    ("memory", "memory"), ("memory_percent", "memory"),
    ("kv_cache_usage", "kv_cache"), ("kv_cache_usage_perc", "kv_cache"),
    ("waiting", "waiting"), ("num_requests_waiting", "waiting"), ("queue_len", "waiting"),
    ("running", "running"), ("num_requests_running", "running"),
)
_FRACTIONS = ("kv_cache_usage", "kv_cache_usage_perc")
_PERCENT = ("cpu", "memory", "kv_cache")

_ALLOCATED = AllocationStatus.ALLOCATED


def session_affinity_key(pending_request: Any) -> str | None:
    """The default affinity key: Serve's session id of the request
    (``handle.options(session_id=...)``, the ``x-session-id`` header), if any."""
    md = getattr(pending_request, "metadata", None)
    sid = getattr(md, "session_id", "") if md is not None else ""
    return sid or None


def _import_callable(path: str) -> Callable[[Any], Any]:
    """``"package.module:function"`` (or ``package.module.function``)."""
    mod, sep, attr = path.partition(":")
    if not sep:
        mod, _, attr = path.rpartition(".")
    if not mod or not attr:
        raise ValueError(f"affinity_key_fn must be 'module:function', got {path!r}")
    fn = getattr(importlib.import_module(mod), attr)
    if not callable(fn):
        raise TypeError(f"affinity_key_fn {path!r} is not callable")
    return fn  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class RouterStats:
    """Counters of an :class:`ArbiterRequestRouter` (a snapshot).

    ``chosen`` reservations each end as ``completed`` (Serve reported the
    request done), ``withdrawn`` (by reason: ``superseded``, ``cancelled``,
    ``moved``, ``lease_expired``) or are still ``outstanding``; ``waited_out``
    counts choices that found no free slot within ``wait_s`` (Serve backs off
    and asks again); ``unreserved`` counts requests Serve sent to a replica
    arbiter had counted full (another router's traffic), run without a slot.
    """

    chosen: int
    completed: int
    withdrawn: Mapping[str, int]
    waited_out: int
    unreserved: int
    outstanding: int
    replicas: int


class ArbiterRequestRouter(RequestRouter):  # type: ignore[misc]
    """Ray Serve request router: choices through an arbiter manager.

    Configured by ``request_router_kwargs`` (passed to
    :meth:`initialize_state`):

    strategy : str
        Arbiter's selection strategy (default ``"least_loaded"``; also
        ``"power_of_two"``, ``"peak_ewma"``, ``"weighted"``, ...).
    wait_s : float
        How long one choice may wait in arbiter's queue for a free slot
        before Serve backs off and asks again (default 1 s).
    lease_s : float
        A reservation Serve never reports done is released after this long.
    affinity_key_fn : str, optional
        Import path (``"module:function"``) of ``f(pending_request) -> str |
        None``; default :func:`session_affinity_key`.
    stats_period_s : float
        How often replicas' routing stats are read into the manager.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.RLock()
        self.initialize_state()
        _instances.register("ray_serve_router", self._deployment_key(), self)

    def _deployment_key(self) -> str:
        dep = getattr(self, "_deployment_id", None)
        app = getattr(dep, "app_name", "")
        name = getattr(dep, "name", "")
        return f"{app}#{name}" if app else str(name)

    @classmethod
    def latest(cls, deployment: str, app: str = "") -> ArbiterRequestRouter | None:
        """The newest router built in this process for a deployment (a handle
        or proxy builds one), for inspection; ``None`` if none."""
        found = _instances.latest("ray_serve_router",
                                  f"{app}#{deployment}" if app else deployment)
        return found if isinstance(found, ArbiterRequestRouter) else None

    # -- configuration ------------------------------------------------------

    def initialize_state(self, strategy: str = "least_loaded", wait_s: float = 1.0,
                         lease_s: float = 600.0, affinity_key_fn: str | None = None,
                         stats_period_s: float = 1.0, **unknown: Any) -> None:
        """Serve calls this with the deployment's ``request_router_kwargs``.

        Raises
        ------
        ValueError, TypeError
            A bad value, naming the argument; an unknown keyword.
        """
        if unknown:
            raise TypeError(f"ArbiterRequestRouter: unknown request_router_kwargs "
                            f"{sorted(unknown)}")
        strat = coerce_strategy(strategy)
        self.wait_s = check_positive(wait_s, "wait_s")
        self.lease_s = check_positive(lease_s, "lease_s")
        self.stats_period_s = check_positive(stats_period_s, "stats_period_s")
        if affinity_key_fn is not None and not isinstance(affinity_key_fn, str):
            raise TypeError("affinity_key_fn must be an import path string, "
                            f"got {type(affinity_key_fn).__name__}")
        self.affinity_key_fn_path = affinity_key_fn
        self._affinity_fn = (_import_callable(affinity_key_fn) if affinity_key_fn
                             else session_affinity_key)
        with self._lock:
            self._manager = AdaptiveResourceManager(
                dataclasses.replace(ResourceManagerConfig(), load_balancing_strategy=strat))
            # request id -> (reservation id, replica) chosen, not yet assigned by Serve
            self._chosen: dict[str, tuple[str, str]] = {}
            # request id -> attempts sent: (reservation id or None, replica, started)
            self._sent: dict[str, deque[tuple[str | None, str, float]]] = {}
            self._affinity: dict[str, str] = {}       # request id -> key (the seam)
            self._counts: Counter[str] = Counter()
            self._withdrawn: Counter[str] = Counter()
            self._next_stats = -float("inf")
            self._next_tick = -float("inf")

    @property
    def manager(self) -> AdaptiveResourceManager:
        """The arbiter manager (agents: the replicas' ids)."""
        return self._manager

    # -- replicas -------------------------------------------------------------

    def update_replicas(self, replicas: list[RunningReplica]) -> None:
        """Serve's replica set changed: join new replicas, remove gone ones."""
        super().update_replicas(replicas)
        self._sync(replicas)

    def on_replica_actor_died(self, replica_id: Any) -> None:
        """A replica died: out of the pool (its running requests' slots are
        freed at once; Serve still reports each of them completed)."""
        super().on_replica_actor_died(replica_id)
        agent = str(replica_id.unique_id)
        with self._lock:
            if agent in self._manager.monitor:
                self._manager.remove_agent(agent)

    def _sync(self, replicas: list[RunningReplica]) -> None:
        mgr = self._manager
        with self._lock:
            known = set(mgr.monitor.agent_ids())
            now = {str(r.replica_id.unique_id): r for r in replicas}
            for agent in known - now.keys():
                mgr.remove_agent(agent)
            for agent, r in now.items():
                limit = max(1, int(r.max_ongoing_requests))
                if agent not in known:
                    mgr.register_agent(agent, max_tasks=limit)
                elif mgr.monitor.get_agent_resources(agent).max_task_capacity != limit:
                    try:
                        mgr.monitor.set_max_tasks(agent, limit)
                    except ValueError:      # below its running requests: later
                        log.info("replica %s: limit %d below its running requests", agent,
                                 limit)

    def _read_stats(self, replicas: list[RunningReplica]) -> None:
        mgr = self._manager
        for r in replicas:
            stats = getattr(r, "routing_stats", None)
            if not isinstance(stats, Mapping) or not stats:
                continue
            usage: dict[str, float] = {}
            for key, arg in STAT_KEYS:
                v = stats.get(key)
                if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v:
                    x = max(float(v) * (100.0 if key in _FRACTIONS else 1.0), 0.0)
                    if arg in _PERCENT:
                        x = min(x, 100.0)
                    usage[arg] = max(usage.get(arg, 0.0), x)
            agent = str(r.replica_id.unique_id)
            if usage and agent in mgr.monitor:
                mgr.record_usage(agent, **usage)

    # -- choosing ---------------------------------------------------------------

    async def choose_replicas(self, candidate_replicas: list[RunningReplica],
                              pending_request: PendingRequest | None = None,
                              ) -> list[list[RunningReplica]]:
        """Reserve a slot on arbiter's choice; the winner alone first, then the
        other candidates by load.  ``[]`` (Serve backs off and asks again)
        when no slot frees within ``wait_s``."""
        now = time.monotonic()
        if now >= self._next_tick:
            self.tick()
        if now >= self._next_stats:
            self._next_stats = now + self.stats_period_s
            self._read_stats(candidate_replicas)
        by_id = {str(r.replica_id.unique_id): r for r in candidate_replicas}
        mgr = self._manager
        if any(a not in mgr.monitor for a in by_id):
            self._sync(list(self.curr_replicas.values()) or candidate_replicas)
        if pending_request is None:
            return [self._by_load(by_id)]
        iid = pending_request.metadata.internal_request_id
        self._withdraw_chosen(iid, "superseded")        # asked again after a backoff
        key = self._affinity_key(pending_request)
        rid = uuid.uuid4().hex
        exclude = frozenset(a for a in mgr.monitor.agent_ids() if a not in by_id)
        # the key decides under the cache_affinity strategy (its agent while
        # within the load bound); the load-only presets ignore it
        req = AllocationRequest(rid, iid, TaskPriority.MEDIUM, self.wait_s, movable=False,
                                exclude=exclude or None,
                                affinity_key=key[:1024] if key else None)
        res = await mgr.allocate_resources_async(req)
        if res.status is not _ALLOCATED or res.agent_id not in by_id:
            if res.status is _ALLOCATED:            # chosen off the candidates: give back
                mgr.allocator.withdraw(rid, "superseded")
            with self._lock:
                self._counts["waited_out"] += 1
            return []
        winner = str(res.agent_id)
        with self._lock:
            self._counts["chosen"] += 1
            self._chosen[iid] = (rid, winner)
            if key is not None:
                self._affinity[iid] = key
        fut = pending_request.future
        fut.add_done_callback(lambda f, iid=iid, rid=rid: self._assigned(iid, rid, f))
        rest = self._by_load({a: r for a, r in by_id.items() if a != winner})
        return [[by_id[winner]], rest] if rest else [[by_id[winner]]]

    def _by_load(self, by_id: Mapping[str, RunningReplica]) -> list[RunningReplica]:
        mon = self._manager.monitor

        def load(agent: str) -> float:
            if agent not in mon:
                return float("inf")
            p = mon.get_agent_resources(agent)
            return p.current_task_count / max(1, p.max_task_capacity)

        return [by_id[a] for a in sorted(by_id, key=load)]

    def _affinity_key(self, pending_request: PendingRequest) -> str | None:
        try:
            key = self._affinity_fn(pending_request)
        except Exception:
            log.exception("affinity_key_fn raised; routing without a key")
            return None
        return None if key is None else str(key)

    def affinity_key_of(self, internal_request_id: str) -> str | None:
        """The affinity key computed for a request still in flight."""
        return self._affinity.get(internal_request_id)

    def _assigned(self, iid: str, rid: str, fut: asyncio.Future[Any]) -> None:
        """Serve resolved (or dropped) the request's pending future."""
        with self._lock:
            chosen = self._chosen.get(iid)
            if chosen is None or chosen[0] != rid:
                return                           # superseded meanwhile
            del self._chosen[iid]
        if fut.cancelled() or fut.exception() is not None:
            self._withdraw(rid, "cancelled")
            self._affinity.pop(iid, None)
            return
        replica = str(fut.result().replica_id.unique_id)
        slot: str | None = rid
        if replica != chosen[1]:
            # Serve took an alternative (its own probe found our winner full):
            # the slot moves there, if arbiter has one
            self._withdraw(rid, "moved")
            mgr = self._manager
            others = frozenset(a for a in mgr.monitor.agent_ids() if a != replica)
            slot = uuid.uuid4().hex
            res = mgr.allocate_resources(AllocationRequest(
                slot, iid, TaskPriority.MEDIUM, self.wait_s, movable=False,
                exclude=others or None))
            if res.status is not _ALLOCATED:
                mgr.allocator.withdraw(slot, "cancelled")
                slot = None
                with self._lock:
                    self._counts["unreserved"] += 1
            else:
                with self._lock:
                    self._counts["chosen"] += 1
        with self._lock:
            self._sent.setdefault(iid, deque()).append((slot, replica, time.monotonic()))

    def on_request_completed(self, replica_id: Any, internal_request_id: str) -> None:
        """Serve's completion of one sent attempt: release its slot (once)."""
        super().on_request_completed(replica_id, internal_request_id)
        replica = str(replica_id.unique_id)
        with self._lock:
            attempts = self._sent.get(internal_request_id)
            if not attempts:
                return
            found = next((a for a in attempts if a[1] == replica), None)
            if found is None:
                return
            attempts.remove(found)
            if not attempts:
                del self._sent[internal_request_id]
                self._affinity.pop(internal_request_id, None)
            slot, _, started = found
            if slot is not None:
                self._counts["completed"] += 1
        if slot is not None:
            self._manager.release_resources(slot, success=True,
                                            duration_s=time.monotonic() - started)

    def _withdraw_chosen(self, iid: str, reason: str) -> None:
        with self._lock:
            chosen = self._chosen.pop(iid, None)
        if chosen is not None:
            self._withdraw(chosen[0], reason)

    def _withdraw(self, rid: str, reason: str) -> None:
        with self._lock:
            self._withdrawn[reason] += 1
        self._manager.allocator.withdraw(rid, reason)

    # -- maintenance and reading ----------------------------------------------------

    def tick(self) -> int:
        """End expired leases and run the manager's tick; returns the leases ended."""
        now = time.monotonic()
        expired: list[str] = []
        with self._lock:
            self._next_tick = now + self._manager.config.monitoring_interval_s
            for iid, attempts in list(self._sent.items()):
                keep = deque(a for a in attempts if now - a[2] < self.lease_s)
                expired += [a[0] for a in attempts if now - a[2] >= self.lease_s and a[0]]
                if keep:
                    self._sent[iid] = keep
                else:
                    del self._sent[iid]
                    self._affinity.pop(iid, None)
        for rid in expired:
            self._withdraw(rid, "lease_expired")
        self._manager.tick()
        return len(expired)

    @property
    def outstanding(self) -> int:
        """Reservations not yet released (chosen or sent)."""
        with self._lock:
            return len(self._chosen) + sum(
                1 for attempts in self._sent.values() for a in attempts if a[0] is not None)

    def stats(self) -> RouterStats:
        """Counters (a snapshot)."""
        with self._lock:
            c = dict(self._counts)
            withdrawn = dict(self._withdrawn)
        return RouterStats(
            chosen=c.get("chosen", 0), completed=c.get("completed", 0),
            withdrawn=MappingProxyType(withdrawn), waited_out=c.get("waited_out", 0),
            unreserved=c.get("unreserved", 0), outstanding=self.outstanding,
            replicas=len(self._manager.monitor))
