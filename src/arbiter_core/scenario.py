"""Simulation scenarios: the agent pool, the arrival process, faults and durations.

A scenario is plain data.  It comes from :func:`default_scenario`, or from a
TOML or JSON file through :func:`load_scenario`; every field is validated
and a bad one is reported with its path (``pool.groups[1].max_tasks: must be
an integer >= 1, got 0``).  The format is documented in the README.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, no-redef, unused-ignore]

__all__ = [
    "AgentGroup",
    "Arrivals",
    "Burst",
    "Fault",
    "PriorityClass",
    "Scenario",
    "ScenarioError",
    "Tenant",
    "default_scenario",
    "load_scenario",
    "scenario_from_dict",
]

PRIORITY_NAMES = ("low", "medium", "high", "critical")
FAULT_KINDS = ("slow", "silent", "failing", "replica_crash")
SERVICE_MODELS = ("slots", "shared", "llm")
TASK_DISTRIBUTIONS = ("lognormal", "exponential", "deterministic", "pareto")
#: generated arrivals are held in memory (a few tens of bytes each): bound them
MAX_ARRIVALS = 20_000_000


_TOP_FIELDS = frozenset({
    "name", "duration_s", "pool", "arrivals", "faults", "rate_limit", "report_interval_s",
    "tick_interval_s", "stale_after_s", "latency_threshold_ms", "throughput_threshold_per_s",
    "max_queue", "warmup_s", "usage_reports", "tenants", "replicas", "sync_interval_s",
    "lease_ttl_s", "block_tokens", "trace"})
_GROUP_FIELDS = frozenset({"name", "count", "max_tasks", "speed", "weight", "base_memory",
                           "memory_per_task", "service", "parallelism", "prefill_tokens_per_s",
                           "decode_tokens_per_s", "cache_blocks"})
_LLM_FIELDS = ("prefill_tokens_per_s", "decode_tokens_per_s", "cache_blocks")
_ARRIVAL_FIELDS = frozenset({"rate_per_s", "mean_task_s", "task_sigma", "bursts", "priorities",
                             "task_distribution", "pareto_shape"})
_TENANT_FIELDS = frozenset({"name", "arrival_rate_per_s", "weight", "max_active", "max_queued",
                            "rate_per_s", "burst"})
#: tenant names are the allocator's (at most this many characters)
MAX_TENANT_NAME = 256
#: at most this many [[tenants]] tables (the allocator keeps up to 10,000 by default)
MAX_SCENARIO_TENANTS = 1_000


class ScenarioError(ValueError):
    """A scenario field is missing or invalid; the message names its path."""


@dataclass(frozen=True)
class AgentGroup:
    """``count`` identical agents.

    ``speed`` divides task durations (2.0 finishes twice as fast); ``weight``
    is the balancer weight (default: ``parallelism * speed``, the agent's
    throughput when saturated); ``memory_per_task`` is the memory % one running
    task adds on top of ``base_memory``.

    ``service`` is how an agent's running tasks share it:

    * ``"slots"`` (default): ``max_tasks`` independent slots; a task runs at
      ``speed`` however many others run.
    * ``"shared"``: limited processor sharing with ``parallelism`` p: with n
      tasks running each progresses at ``speed * min(1, p / n)`` -- an LLM
      server batching requests, or workers on shared CPUs.  p = 1 is classic
      processor sharing; p = ``max_tasks`` is the slot model.
    * ``"llm"``: an LLM server, sharing like ``"shared"``, whose requests
      carry tokens (replayed from an LLM trace) instead of work: a request
      prefills the prompt tokens not in the agent's prefix cache at
      ``prefill_tokens_per_s``, then decodes its output at
      ``decode_tokens_per_s`` (both per request at full speed, times
      ``speed``; beyond ``parallelism`` requests every one slows down).
      The cache holds ``cache_blocks`` blocks of the scenario's
      ``block_tokens`` (least recently used evicted first; 0: no cache).
    """

    name: str
    count: int
    max_tasks: int
    speed: float = 1.0
    weight: float | None = None
    base_memory: float = 20.0
    memory_per_task: float = 6.0
    service: str = "slots"
    parallelism: int | None = None
    prefill_tokens_per_s: float | None = None
    decode_tokens_per_s: float | None = None
    cache_blocks: int = 0

    @property
    def effective_parallelism(self) -> int:
        """How many tasks run at full speed at once (``max_tasks`` for slots)."""
        if self.service in ("shared", "llm"):
            return self.parallelism if self.parallelism is not None else 1
        return self.max_tasks

    @property
    def effective_weight(self) -> float:
        """The balancer weight: given, or ``parallelism * speed``."""
        if self.weight is not None:
            return self.weight
        return self.effective_parallelism * self.speed


@dataclass(frozen=True)
class Burst:
    """Between ``start_s`` and ``start_s + duration_s`` arrivals come ``factor`` times faster."""

    start_s: float
    duration_s: float
    factor: float


@dataclass(frozen=True)
class PriorityClass:
    """A share of the arrivals with one priority and queue timeout."""

    priority: str
    share: float
    timeout_s: float


@dataclass(frozen=True)
class Arrivals:
    """A Poisson process of ``rate_per_s`` with bursts, and the tasks' work.

    A task's *work* is the seconds it needs alone on an agent of speed 1; its
    mean is ``mean_task_s`` whatever the ``task_distribution``:
    ``"lognormal"`` (default; ``task_sigma`` is the sigma of the underlying
    normal, 0 makes it deterministic), ``"exponential"``, ``"deterministic"``,
    or ``"pareto"`` (a heavy tail: shape ``pareto_shape`` > 1, the smaller
    the heavier; its variance is infinite for shapes <= 2).
    """

    rate_per_s: float
    mean_task_s: float
    task_sigma: float = 0.5
    bursts: tuple[Burst, ...] = ()
    priorities: tuple[PriorityClass, ...] = ()
    task_distribution: str = "lognormal"
    pareto_shape: float = 2.5

    def rate_at(self, t: float) -> float:
        """The arrival rate at time ``t`` (bursts multiply it)."""
        rate = self.rate_per_s
        for b in self.bursts:
            if b.start_s <= t < b.start_s + b.duration_s:
                rate *= b.factor
        return rate

    def expected_count(self, duration_s: float) -> float:
        """Expected number of arrivals in ``[0, duration_s)``."""
        edges = sorted({0.0, duration_s, *(e for b in self.bursts
                                          for e in (b.start_s, b.start_s + b.duration_s)
                                          if 0.0 < e < duration_s)})
        return sum(self.rate_at(a) * (b - a) for a, b in zip(edges, edges[1:]))


@dataclass(frozen=True)
class Tenant:
    """One tenant: its own Poisson stream and its policy in the manager.

    ``arrival_rate_per_s`` is the mean rate of the tenant's own Poisson
    stream (the ``[arrivals]`` bursts multiply it; its requests take their
    work and priorities from ``[arrivals]``).  The policy fields are
    :class:`~arbiter_core.TenantPolicy`'s: ``weight`` is the tenant's share
    of dispatches from the queue while it is backlogged, ``max_active`` caps
    its allocated requests, ``max_queued`` its queued ones (beyond it:
    REJECTED), and ``rate_per_s``/``burst`` are its own token bucket (burst
    defaults to ``max(1, rate_per_s)``).
    """

    name: str
    arrival_rate_per_s: float
    weight: float = 1.0
    max_active: int | None = None
    max_queued: int | None = None
    rate_per_s: float | None = None
    burst: float | None = None


@dataclass(frozen=True)
class Fault:
    """Something that happens to one agent at ``at_s``.

    ``slow``: its tasks take ``factor`` times longer.  ``silent``: it stops
    reporting usage and never finishes the tasks it holds (a crash).
    ``failing``: each task fails with probability ``failure_rate``.
    ``replica_crash`` (no agent): scheduler replica number ``replica`` stops
    (with ``replicas > 1``): its queued requests are lost, the tasks it
    started run on to the end on their agents but their results are lost
    (counted as failed), and its lease is left to expire.
    """

    kind: str
    agent: str
    at_s: float
    factor: float = 4.0
    failure_rate: float = 1.0
    replica: int = 0


@dataclass(frozen=True)
class Scenario:
    """Everything one simulation run needs.

    ``duration_s`` is how long requests arrive; the run then drains until every
    request has ended (bounded by the longest timeout plus the slowest task).
    Requests that arrive before ``warmup_s`` run like all others but are left
    out of the wait and end-to-end statistics (an empty pool is not steady
    state).  ``usage_reports = False`` stops the agents' cpu/memory reports,
    so the balancer sees task counts and outcomes only (the queueing-theory
    checks use it: a report is always a little stale).

    With ``tenants`` every tenant has its own Poisson stream and its policy in
    the manager, and ``arrivals.rate_per_s`` is the sum of the tenants' rates.

    ``block_tokens`` is the tokens of one prefix block (an LLM trace's block
    hashes each cover that many prompt tokens; Mooncake's are 512), for the
    ``"llm"`` service's prefix caches.  ``trace`` is the path of a trace
    file to replay instead of the generated arrivals (in the file, relative
    to the scenario file; then ``[arrivals]`` needs no ``rate_per_s`` and
    ``mean_task_s``); ``--trace`` replaces it.

    ``replicas > 1`` runs that many scheduler replicas
    (:class:`~arbiter_core.fleet.FleetMember`) sharing the pool through an
    :class:`~arbiter_core.fleet.InMemoryLeaseStore` with ``lease_ttl_s``;
    each arrival goes to a live replica drawn at random, every replica syncs
    every ``sync_interval_s`` and the agents report their running counts to
    the store every ``report_interval_s``.
    """

    name: str
    duration_s: float
    groups: tuple[AgentGroup, ...]
    arrivals: Arrivals
    faults: tuple[Fault, ...] = ()
    report_interval_s: float = 1.0
    tick_interval_s: float = 1.0
    stale_after_s: float = 10.0
    rate_limit_per_s: float | None = None
    rate_limit_burst: int | None = None
    latency_threshold_ms: float = 4000.0
    throughput_threshold_per_s: float = 10.0
    max_queue: int = 10_000
    warmup_s: float = 0.0
    usage_reports: bool = True
    tenants: tuple[Tenant, ...] = ()
    replicas: int = 1
    sync_interval_s: float = 0.25
    lease_ttl_s: float = 10.0
    block_tokens: int = 512
    trace: str | None = None

    @property
    def llm(self) -> bool:
        """Whether the pool serves LLM requests (``service = "llm"``)."""
        return any(g.service == "llm" for g in self.groups)

    @property
    def agent_count(self) -> int:
        return sum(g.count for g in self.groups)

    def agent_ids(self) -> list[str]:
        """Agent ids in pool order: ``<group>-<index>``."""
        return [f"{g.name}-{i}" for g in self.groups for i in range(g.count)]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (the ``scenario`` part of ``--json``)."""
        d = asdict(self)
        d["agent_count"] = self.agent_count
        d["total_slots"] = sum(g.count * g.max_tasks for g in self.groups)
        return d


def default_scenario() -> Scenario:
    """The built-in scenario: a pool that serves like LLM inference.

    28 shared-service agents of three kinds, like big, mid-size and small GPU
    servers: each batches up to ``parallelism`` requests at full speed and
    slows every request down beyond that (limited processor sharing), up to
    ``max_tasks`` at once, with memory (the KV cache) growing per request.
    Speeds differ 3x, so where a request lands matters.  One minute of
    arrivals at 50 requests/s with lognormal work (a long tail of long
    generations) and two bursts (x2.4 and x1.8) that push the pool to and
    past its capacity, so queues form and short deadlines expire; one agent
    slows down 5x, one goes silent (OFFLINE, then failover) and one fails
    90 % of its tasks (ejection).
    """
    return Scenario(
        name="default",
        duration_s=60.0,
        groups=(
            AgentGroup("large", 8, max_tasks=24, speed=2.0, service="shared", parallelism=8,
                       base_memory=30.0, memory_per_task=2.5),
            AgentGroup("medium", 12, max_tasks=12, speed=1.0, service="shared", parallelism=4,
                       base_memory=30.0, memory_per_task=5.0),
            AgentGroup("small", 8, max_tasks=6, speed=0.6, service="shared", parallelism=2,
                       base_memory=30.0, memory_per_task=10.0),
        ),
        arrivals=Arrivals(
            rate_per_s=50.0,
            mean_task_s=2.0,
            task_sigma=0.8,
            bursts=(Burst(20.0, 10.0, 2.4), Burst(45.0, 8.0, 1.8)),
            priorities=(
                PriorityClass("critical", 0.05, 5.0),
                PriorityClass("high", 0.20, 10.0),
                PriorityClass("medium", 0.45, 20.0),
                PriorityClass("low", 0.30, 4.0),
            ),
        ),
        faults=(
            Fault("slow", "medium-3", at_s=15.0, factor=5.0),
            Fault("silent", "large-1", at_s=30.0),
            Fault("failing", "small-2", at_s=10.0, failure_rate=0.9),
        ),
        rate_limit_per_s=110.0,
        rate_limit_burst=200,
        latency_threshold_ms=6000.0,
        throughput_threshold_per_s=20.0,
    )


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario from a ``.toml`` or ``.json`` file.

    Raises
    ------
    ScenarioError
        The file cannot be read or parsed, or a field is invalid.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ScenarioError(f"{p}: cannot read scenario file: {exc.strerror}") from None
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(raw)
        else:
            data = tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{p}: not valid {p.suffix.lstrip('.') or 'TOML'}: {exc}") from None
    return scenario_from_dict(data, name=p.stem, base=p.parent)


def scenario_from_dict(data: object, name: str = "custom",
                       base: str | Path | None = None) -> Scenario:
    """Build and validate a :class:`Scenario` from parsed TOML/JSON data.

    ``base`` is the directory a relative ``trace`` path is resolved against
    (the scenario file's; default: the working directory).
    """
    r = _Reader(data, "scenario", _TOP_FIELDS)
    trace = None
    if "trace" in r.data:
        trace = str(Path(base or ".") / r.text("trace"))
    duration_s = r.number("duration_s", positive=True, hi=86_400.0)
    _Reader(r.table("pool", required=True), "pool", frozenset({"groups"}))
    groups_raw = r.items("pool.groups", required=True)
    if not groups_raw:
        raise ScenarioError("pool.groups: needs at least one agent group")
    groups = []
    for i, g in enumerate(groups_raw):
        gr = _Reader(g, f"pool.groups[{i}]", _GROUP_FIELDS)
        max_tasks = gr.integer("max_tasks", minimum=1)
        speed = gr.number("speed", default=1.0, positive=True)
        service = gr.text("service", default="slots")
        if service not in SERVICE_MODELS:
            raise ScenarioError(f"pool.groups[{i}].service: must be one of "
                                f"{', '.join(SERVICE_MODELS)}, got {service!r}")
        parallelism = gr.integer("parallelism", default=None, minimum=1, maximum=max_tasks)
        if parallelism is not None and service == "slots":
            raise ScenarioError(f"pool.groups[{i}].parallelism: only for service = "
                                f"\"shared\" or \"llm\" (a slot agent runs max_tasks at "
                                f"full speed)")
        llm: dict[str, Any] = {}
        if service == "llm":
            llm = {"prefill_tokens_per_s": gr.number("prefill_tokens_per_s", positive=True,
                                                     hi=1e12),
                   "decode_tokens_per_s": gr.number("decode_tokens_per_s", positive=True,
                                                    hi=1e12),
                   "cache_blocks": gr.integer("cache_blocks", default=0, minimum=0,
                                              maximum=1_000_000_000)}
        else:
            for key in _LLM_FIELDS:
                if key in gr.data:
                    raise ScenarioError(f"pool.groups[{i}].{key}: only for service = "
                                        f"\"llm\"")
        groups.append(AgentGroup(
            name=gr.text("name", default=f"group{i}"),
            count=gr.integer("count", minimum=1, maximum=100_000),
            max_tasks=max_tasks,
            speed=speed,
            weight=gr.number("weight", default=None, positive=True),
            base_memory=gr.number("base_memory", default=20.0, lo=0.0, hi=100.0),
            memory_per_task=gr.number("memory_per_task", default=6.0, lo=0.0, hi=100.0),
            service=service,
            parallelism=parallelism,
            **llm,
        ))
        gr.done()
    kinds = {g.service == "llm" for g in groups}
    if len(kinds) > 1:
        # an LLM request has tokens, not work: it cannot run on a slot agent
        raise ScenarioError("pool.groups: service = \"llm\" groups cannot be mixed with "
                            "others (their requests carry tokens, not work)")
    names = [g.name for g in groups]
    if len(set(names)) != len(names):
        raise ScenarioError(f"pool.groups: group names must be unique, got {names}")
    ar = _Reader(r.table("arrivals", required=trace is None), "arrivals", _ARRIVAL_FIELDS)
    bursts = []
    for i, b in enumerate(ar.items("bursts")):
        br = _Reader(b, f"arrivals.bursts[{i}]", frozenset({"start_s", "duration_s", "factor"}))
        bursts.append(Burst(br.number("start_s", lo=0.0), br.number("duration_s", positive=True),
                            br.number("factor", positive=True)))
        br.done()
    prios = []
    for i, pc in enumerate(ar.items("priorities")):
        pr = _Reader(pc, f"arrivals.priorities[{i}]",
                     frozenset({"priority", "share", "timeout_s"}))
        prio = pr.text("priority")
        if prio not in PRIORITY_NAMES:
            raise ScenarioError(f"arrivals.priorities[{i}].priority: must be one of "
                                f"{', '.join(PRIORITY_NAMES)}, got {prio!r}")
        prios.append(PriorityClass(prio, pr.number("share", positive=True),
                                   pr.number("timeout_s", positive=True)))
        pr.done()
    if not prios:
        prios = [PriorityClass("medium", 1.0, 30.0)]
    dist = ar.text("task_distribution", default="lognormal")
    if dist not in TASK_DISTRIBUTIONS:
        raise ScenarioError(f"arrivals.task_distribution: must be one of "
                            f"{', '.join(TASK_DISTRIBUTIONS)}, got {dist!r}")
    shape = ar.number("pareto_shape", default=2.5, hi=100.0)
    if shape <= 1.0:
        raise ScenarioError(f"arrivals.pareto_shape: must be > 1 (the mean is infinite "
                            f"otherwise), got {shape!r}")
    tenants = _tenants(r.items("tenants"))
    if tenants:
        # each tenant has its own stream: a global rate would be a second,
        # contradicting one, so it is an error rather than silently unused
        if "rate_per_s" in ar.data:
            raise ScenarioError("arrivals.rate_per_s: not used when [[tenants]] are given "
                                "(each tenant has its arrival_rate_per_s); remove it")
        rate = math.fsum(t.arrival_rate_per_s for t in tenants)
    else:
        # a scenario that replays its trace generates no arrivals
        rate = ar.number("rate_per_s", positive=True, hi=1e6,
                         **({"default": None} if trace is not None else {}))
        if rate is None:
            rate = 0.0
    arrivals = Arrivals(
        rate_per_s=rate,
        mean_task_s=ar.number("mean_task_s", positive=True,
                              **({"default": 1.0} if trace is not None else {})),
        task_sigma=ar.number("task_sigma", default=0.5, lo=0.0, hi=5.0),
        bursts=tuple(bursts),
        priorities=tuple(prios),
        task_distribution=dist,
        pareto_shape=shape,
    )
    ar.done()
    expected = arrivals.expected_count(duration_s)
    if expected > MAX_ARRIVALS:
        what = "tenants[].arrival_rate_per_s" if tenants else "arrivals.rate_per_s"
        raise ScenarioError(f"{what}: about {expected:.3g} requests in "
                            f"duration_s; at most {MAX_ARRIVALS:,} are simulated")
    agent_ids = {f"{g.name}-{k}" for g in groups for k in range(g.count)}
    faults = []
    for i, f in enumerate(r.items("faults")):
        fr = _Reader(f, f"faults[{i}]",
                     frozenset({"kind", "agent", "at_s", "factor", "failure_rate", "replica"}))
        kind = fr.text("kind")
        if kind not in FAULT_KINDS:
            raise ScenarioError(f"faults[{i}].kind: must be one of {', '.join(FAULT_KINDS)}, "
                                f"got {kind!r}")
        if kind == "replica_crash":
            faults.append(Fault(kind, "", fr.number("at_s", lo=0.0),
                                replica=fr.integer("replica", default=0, minimum=0)))
            fr.done()
            continue
        agent = fr.text("agent")
        if agent not in agent_ids:
            raise ScenarioError(f"faults[{i}].agent: no agent {agent!r} in the pool "
                                f"(ids are <group name>-<index>, e.g. {sorted(agent_ids)[0]!r})")
        faults.append(Fault(kind, agent, fr.number("at_s", lo=0.0),
                            factor=fr.number("factor", default=4.0, positive=True),
                            failure_rate=fr.number("failure_rate", default=1.0, lo=0.0, hi=1.0)))
        fr.done()
    limit = r.table("rate_limit")
    lr = _Reader(limit, "rate_limit", frozenset({"per_s", "burst"}))
    per_s = lr.number("per_s", default=None, lo=0.0)
    burst = lr.integer("burst", default=None, minimum=0)
    lr.done()
    sc = Scenario(
        name=r.text("name", default=name),
        duration_s=duration_s,
        groups=tuple(groups),
        arrivals=arrivals,
        faults=tuple(faults),
        report_interval_s=r.number("report_interval_s", default=1.0, positive=True),
        tick_interval_s=r.number("tick_interval_s", default=1.0, positive=True),
        stale_after_s=r.number("stale_after_s", default=10.0, positive=True),
        rate_limit_per_s=per_s,
        rate_limit_burst=burst,
        latency_threshold_ms=r.number("latency_threshold_ms", default=4000.0, positive=True),
        throughput_threshold_per_s=r.number("throughput_threshold_per_s", default=10.0,
                                            lo=0.0),
        max_queue=r.integer("max_queue", default=10_000, minimum=1),
        warmup_s=r.number("warmup_s", default=0.0, lo=0.0),
        usage_reports=r.boolean("usage_reports", default=True),
        tenants=tenants,
        replicas=r.integer("replicas", default=1, minimum=1),
        sync_interval_s=r.number("sync_interval_s", default=0.25, positive=True),
        lease_ttl_s=r.number("lease_ttl_s", default=10.0, positive=True),
        block_tokens=r.integer("block_tokens", default=512, minimum=1, maximum=1_048_576),
        trace=trace,
    )
    check_replicas(sc)
    if sc.warmup_s >= sc.duration_s:
        raise ScenarioError(f"warmup_s: must be < duration_s ({sc.duration_s:g}), "
                            f"got {sc.warmup_s:g}")
    r.done(extra_ok={"pool", "arrivals", "faults", "rate_limit"})
    return sc


def check_replicas(sc: Scenario) -> None:
    """The replica settings agree with each other and with the faults."""
    if sc.replicas > 64:
        raise ScenarioError(f"replicas: at most 64, got {sc.replicas}")
    if sc.sync_interval_s >= sc.lease_ttl_s:
        raise ScenarioError(f"sync_interval_s: must be below lease_ttl_s "
                            f"({sc.lease_ttl_s:g}), got {sc.sync_interval_s:g}")
    for i, f in enumerate(sc.faults):
        if f.kind == "replica_crash" and f.replica >= sc.replicas:
            raise ScenarioError(f"faults[{i}].replica: no replica {f.replica} "
                                f"(replicas = {sc.replicas}; numbered from 0)")


def _tenants(items: list[Any]) -> tuple[Tenant, ...]:
    """The ``[[tenants]]`` tables, validated field by field."""
    if len(items) > MAX_SCENARIO_TENANTS:
        raise ScenarioError(f"tenants: at most {MAX_SCENARIO_TENANTS} tenants, "
                            f"got {len(items)}")
    out: list[Tenant] = []
    seen: set[str] = set()
    for i, t in enumerate(items):
        path = f"tenants[{i}]"
        tr = _Reader(t, path, _TENANT_FIELDS)
        name = tr.text("name")
        if len(name) > MAX_TENANT_NAME:
            raise ScenarioError(f"{path}.name: at most {MAX_TENANT_NAME} characters, "
                                f"got {len(name)}")
        if name in seen:
            raise ScenarioError(f"{path}.name: tenant names must be unique, "
                                f"{name!r} appears twice")
        seen.add(name)
        rate_per_s = tr.number("rate_per_s", default=None, lo=0.0, hi=1e9)
        burst = tr.number("burst", default=None, lo=0.0, hi=1e9)
        if burst is not None and rate_per_s is None:
            raise ScenarioError(f"{path}.burst: needs rate_per_s (a token bucket "
                                f"without a refill rate)")
        out.append(Tenant(
            name=name,
            arrival_rate_per_s=tr.number("arrival_rate_per_s", lo=0.0, hi=1e6),
            weight=tr.number("weight", default=1.0, positive=True, hi=1e9),
            max_active=tr.integer("max_active", default=None, minimum=0,
                                  maximum=1_000_000_000),
            max_queued=tr.integer("max_queued", default=None, minimum=0,
                                  maximum=1_000_000_000),
            rate_per_s=rate_per_s,
            burst=burst,
        ))
        tr.done()
    return tuple(out)


_MISSING: Any = object()


class _Reader:
    """Typed access to one table of the parsed file, with path-qualified errors.

    A field read with no ``default`` is required.
    """

    def __init__(self, data: object, path: str, known: frozenset[str] | None = None) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ScenarioError(f"{path}: must be a table, got {type(data).__name__}")
        self.data = data
        self.path = path
        self.seen: set[str] = set()
        if known is not None:
            # report a misspelt field before the fields it was meant to be
            unknown = set(data) - known
            if unknown:
                raise ScenarioError(f"{path}: unknown field(s) {', '.join(sorted(unknown))}; "
                                    f"known: {', '.join(sorted(known))}")

    def _name(self, key: str) -> str:
        return key if self.path == "scenario" else f"{self.path}.{key}"

    def _get(self, key: str, default: Any) -> Any:
        node: Any = self.data
        parts = key.split(".")
        self.seen.add(parts[0])
        for part in parts:
            if not isinstance(node, Mapping) or part not in node:
                if default is _MISSING:
                    raise ScenarioError(f"{self._name(key)}: missing")
                return default
            node = node[part]
        return node

    def _null(self, key: str, v: Any, default: Any) -> Any:
        """JSON ``null`` means "not given": the default, or missing if required."""
        if v is None and default is not None:
            if default is _MISSING:
                raise ScenarioError(f"{self._name(key)}: missing (null)")
            return default
        return v

    def number(self, key: str, default: Any = _MISSING, *, positive: bool = False,
               lo: float | None = None, hi: float | None = None) -> Any:
        v = self._null(key, self._get(key, default), default)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ScenarioError(f"{self._name(key)}: must be a number, got {v!r}")
        try:
            x = float(v)
        except OverflowError:       # a JSON integer beyond any float
            raise ScenarioError(f"{self._name(key)}: must be finite, got an integer of "
                                f"{len(str(v))} digits") from None
        if not math.isfinite(x):
            raise ScenarioError(f"{self._name(key)}: must be finite, got {v!r}")
        if positive and x <= 0:
            raise ScenarioError(f"{self._name(key)}: must be > 0, got {v!r}")
        if lo is not None and x < lo:
            raise ScenarioError(f"{self._name(key)}: must be >= {lo:g}, got {v!r}")
        if hi is not None and x > hi:
            raise ScenarioError(f"{self._name(key)}: must be <= {hi:g}, got {v!r}")
        return x

    def integer(self, key: str, default: Any = _MISSING, *, minimum: int = 0,
            maximum: int | None = None) -> Any:
        v = self._null(key, self._get(key, default), default)
        if v is None:
            return None
        bound = f"an integer >= {minimum}" + ("" if maximum is None else f" and <= {maximum}")
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum or (
                maximum is not None and v > maximum):
            raise ScenarioError(f"{self._name(key)}: must be {bound}, got {v!r}")
        return v

    def boolean(self, key: str, default: Any = _MISSING) -> Any:
        v = self._get(key, default)
        if not isinstance(v, bool):
            raise ScenarioError(f"{self._name(key)}: must be true or false, got {v!r}")
        return v

    def text(self, key: str, default: Any = _MISSING) -> Any:
        v = self._get(key, default)
        if not isinstance(v, str) or not v:
            raise ScenarioError(f"{self._name(key)}: must be a non-empty string, got {v!r}")
        return v

    def items(self, key: str, required: bool = False) -> list[Any]:
        v = self._get(key, _MISSING if required else [])
        if not isinstance(v, list):
            raise ScenarioError(f"{self._name(key)}: must be a list, got {type(v).__name__}")
        return v

    def table(self, key: str, required: bool = False) -> Any:
        v = self._get(key, _MISSING if required else None)
        if v is not None and not isinstance(v, Mapping):
            raise ScenarioError(f"{self._name(key)}: must be a table, got {type(v).__name__}")
        return v

    def done(self, extra_ok: frozenset[str] | set[str] = frozenset()) -> None:
        unknown = set(self.data) - self.seen - set(extra_ok)
        if unknown:
            raise ScenarioError(f"{self.path}: unknown field(s) {', '.join(sorted(unknown))}")
