# Stub for the compiled module arbiter_core._select (see _select.pyx).
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, TypeVar, final

from typing_extensions import Self

__all__ = ["HEALTH_NAMES", "PICKERS", "STRATEGY_CODES", "AgentTable"]

DEF_CACHE_BLOCKS: int
DEF_MAX_INDEX_BLOCKS: int
STRATEGY_CODES: dict[str, int]
PICKERS: dict[str, int]
HEALTH_NAMES: tuple[str, str, str, str]

_R = TypeVar("_R", bound=tuple[Any, ...])
_Decision = tuple[Hashable, float, float, tuple[Hashable, ...]]

@final
class AgentTable:
    def __new__(cls, capacity: int) -> Self: ...
    @property
    def capacity(self) -> int: ...
    @property
    def thresholds(self) -> tuple[float, float, float, float]: ...
    @property
    def last_score(self) -> float: ...
    @property
    def ewma_decay_s(self) -> float: ...
    @property
    def report_decay_s(self) -> float: ...
    def __len__(self) -> int: ...
    def __contains__(self, key: object, /) -> bool: ...
    def add(
        self,
        agent_id: Hashable,
        max_tasks: int = 10,
        weight: float = 1.0,
        cpu_capacity: float = 100.0,
        memory_mb: float = 0.0,
        network_mbps: float = 0.0,
        now: float = 0.0,
        concurrency: float = 0.0,
        cache_blocks: int = 0,
    ) -> int: ...
    def remove(self, agent_id: Hashable) -> int: ...
    def slot(self, agent_id: Hashable) -> int: ...
    def agent_id(self, slot: int) -> Hashable: ...
    def agent_ids(self) -> list[Hashable]: ...
    def set_thresholds(
        self,
        cpu_warning: float,
        cpu_critical: float,
        memory_warning: float,
        memory_critical: float,
    ) -> None: ...
    def set_usage(
        self,
        slot: int,
        cpu: float,
        memory: float,
        network: float,
        now: float,
        fields: int = 7,
        waiting: float = 0.0,
        running: float = 0.0,
        kv_cache: float = 0.0,
    ) -> None: ...
    def set_report_decay(self, decay_s: float) -> None: ...
    def set_profile(
        self,
        count: float = 1.0,
        queue: float = 1.0,
        utilization: float = 0.0,
        kv_cache: float = 1.0,
        latency: float = 0.0,
        affinity: float = 0.0,
        by_weight: bool = False,
        picker: str = "min",
    ) -> None: ...
    def set_concurrency(self, slot: int, concurrency: float) -> None: ...
    def set_task_count(self, slot: int, count: int) -> None: ...
    def set_max_tasks(self, slot: int, max_tasks: int) -> None: ...
    def set_weight(self, slot: int, weight: float) -> None: ...
    def record_completion(
        self, slot: int, duration_s: float, success: bool, now: float
    ) -> int: ...
    def eject(self, slot: int, until: float) -> int: ...
    def unexpire_ejections(self, now: float) -> list[int]: ...
    def set_offline(self, slot: int) -> None: ...
    def restore(self, slot: int, now: float) -> None: ...
    def mark_stale(self, now: float, stale_after_s: float) -> list[int]: ...
    def reserve(
        self,
        slot: int,
        cpu: float = 0.0,
        memory_mb: float = 0.0,
        network_mbps: float = 0.0,
        now: float = 0.0,
    ) -> bool: ...
    def release(
        self, slot: int, cpu: float = 0.0, memory_mb: float = 0.0, network_mbps: float = 0.0
    ) -> None: ...
    def select_for(
        self,
        strategy: int,
        prefix: Sequence[int] | bytes | None = None,
        affinity_key: str | None = None,
        high: bool = False,
        now: float = 0.0,
        reserve: bool = True,
    ) -> int: ...
    def set_affinity(
        self,
        epsilon: float = 0.25,
        min_match_blocks: int = 1,
        max_index_blocks: int = 1048576,
        cache_blocks: int = 4096,
    ) -> None: ...
    def set_cache_blocks(self, slot: int, cache_blocks: int) -> None: ...
    def report_cache(
        self, slot: int, stored: Iterable[int] = (), evicted: Iterable[int] = ()
    ) -> None: ...
    def cached_blocks(self, slot: int) -> list[int]: ...
    def affinity_stats(self) -> dict[str, Any]: ...
    def select(
        self,
        strategy: int,
        high: bool = False,
        cpu: float = 0.0,
        memory_mb: float = 0.0,
        network_mbps: float = 0.0,
        now: float = 0.0,
        reserve: bool = False,
    ) -> int: ...
    def decision(
        self,
        record: type[_R],
        strategy: Any,
        code: int,
        high: bool,
        cpu: float,
        memory_mb: float,
        network_mbps: float,
        now: float,
        reserve: bool,
        priority: int,
    ) -> _R | None: ...
    def decide(
        self,
        strategy: int,
        high: bool = False,
        cpu: float = 0.0,
        memory_mb: float = 0.0,
        network_mbps: float = 0.0,
        now: float = 0.0,
        reserve: bool = False,
    ) -> _Decision | None: ...
    def any_eligible(self, now: float) -> bool: ...
    def alternatives(self) -> tuple[int, ...]: ...
    def seed(self, seed: int) -> None: ...
    def random_below(self, n: int) -> int: ...
    def health(self, slot: int) -> int: ...
    def active(self, slot: int) -> int: ...
    def is_ejected(self, slot: int, now: float) -> bool: ...
    def row(self, slot: int) -> dict[str, Any]: ...
    def selections(self) -> dict[Hashable, int]: ...
    def reset_selections(self) -> None: ...
    def pool_stats(self, now: float) -> dict[str, Any]: ...
    def ineligibility(self, now: float) -> dict[str, int]: ...
