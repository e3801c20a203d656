# Stub for the compiled module arbiter_core._request (see _request.pyx).
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from typing_extensions import disjoint_base

from .resources.records import ResourceRequirements
from .types import TaskPriority

__all__ = ["MAX_PREFIX_BLOCKS", "AllocationRequest"]

MAX_PREFIX_BLOCKS: int

@disjoint_base
class AllocationRequest:
    @property
    def request_id(self) -> str: ...
    @property
    def task_id(self) -> str: ...
    @property
    def priority(self) -> TaskPriority | int: ...
    @property
    def timeout_s(self) -> float: ...
    @property
    def required_resources(self) -> ResourceRequirements | None: ...
    @property
    def metadata(self) -> Mapping[str, Any] | None: ...
    @property
    def requested_at(self) -> float | None: ...
    @property
    def movable(self) -> bool: ...
    @property
    def exclude(self) -> frozenset[str] | None: ...
    @property
    def tenant(self) -> str: ...
    @property
    def cost(self) -> float: ...
    @property
    def affinity_key(self) -> str | None: ...
    @property
    def prefix_bytes(self) -> bytes | None: ...
    @property
    def prefix(self) -> np.ndarray[Any, np.dtype[np.uint64]] | None: ...
    def __init__(
        self,
        request_id: str,
        task_id: str,
        priority: TaskPriority | int = ...,
        timeout_s: float = 30.0,
        required_resources: ResourceRequirements | Mapping[str, float] | None = None,
        metadata: Mapping[str, Any] | None = None,
        requested_at: float | None = None,
        movable: bool = True,
        exclude: Iterable[str] | None = None,
        tenant: str = "default",
        cost: float = 1.0,
        affinity_key: str | None = None,
        prefix: Sequence[int] | np.ndarray[Any, Any] | None = None,
    ) -> None: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __reduce__(self) -> tuple[Any, ...]: ...
