"""The frozen dataclass ``AllocationRequest`` was before it became a compiled
type (issue 23), kept verbatim (renamed) as the baseline of the request-build
benchmark: what building a request cost, field for field the same checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from arbiter_core import ResourceRequirements, TaskPriority
from arbiter_core._validate import (
    MAX_ID_LENGTH,
    check_int,
    check_name,
    check_number,
    check_positive,
)
from arbiter_core.resources.tenants import check_tenant

__all__ = ["DataclassRequest"]

_PRIORITIES = {int(p): p for p in TaskPriority}
_INF = float("inf")


@dataclass(frozen=True, slots=True)
class DataclassRequest:
    """A request for one task slot.

    Parameters
    ----------
    request_id : str
        Unique among live (queued or allocated) requests; 1 to 1024
        characters (``MAX_ID_LENGTH``).
    task_id : str
        1 to 1024 characters.
    priority : TaskPriority or int
        0-100; CRITICAL > HIGH > MEDIUM > LOW.
    timeout_s : float
        How long it may wait in the queue (> 0); the deadline is
        ``requested_at + timeout_s``.
    required_resources : ResourceRequirements or mapping, optional
        ``cpu_percent``, ``memory_mb``, ``network_mbps``.
    metadata : mapping, optional
        Kept as a read-only copy.
    requested_at : float, optional
        Submission time; ``None`` = the allocator's clock at submission.
    movable : bool
        ``False``: failover never moves this request (a running call that
        cannot move): its slot on the failed agent is freed and it stays
        ALLOCATED, detached, until released; its outcome is then charged to
        no agent.  Default ``True``.
    exclude : iterable of str, optional
        Agents this request must not get (a retry after a failure); kept as
        a frozenset.  Unknown ids are allowed (they exclude nothing).
    tenant : str
        Who the request is for (default ``"default"``; 1 to 256 characters):
        its queue share, caps and rate limit (see
        :class:`~arbiter_core.TenantPolicy`).
    """

    request_id: str
    task_id: str
    priority: TaskPriority | int = TaskPriority.MEDIUM
    timeout_s: float = 30.0
    required_resources: ResourceRequirements | None = None
    metadata: Mapping[str, Any] | None = None
    requested_at: float | None = None
    movable: bool = True
    exclude: frozenset[str] | None = None
    tenant: str = "default"

    def __post_init__(self) -> None:
        t = self.timeout_s
        if (type(self.request_id) is str and 0 < len(self.request_id) <= MAX_ID_LENGTH
                and type(self.task_id) is str and 0 < len(self.task_id) <= MAX_ID_LENGTH
                and self.priority.__class__ is TaskPriority
                and type(t) is float and 0.0 < t < _INF and self.required_resources is None
                and self.metadata is None and self.requested_at is None
                and self.movable is True and self.exclude is None
                and self.tenant == "default"):
            return      # the common request: nothing to convert, every check passed
        self._check()

    def _check(self) -> None:
        for name in ("request_id", "task_id"):
            check_name(getattr(self, name), name, MAX_ID_LENGTH)
        p = check_int(self.priority, "priority", 0, 100)
        object.__setattr__(self, "priority", _PRIORITIES.get(p, p))
        check_positive(self.timeout_s, "timeout_s")
        res = self.required_resources
        if isinstance(res, Mapping):
            object.__setattr__(self, "required_resources", ResourceRequirements(**res))
        elif res is not None and not isinstance(res, ResourceRequirements):
            raise TypeError("required_resources must be a ResourceRequirements, a mapping or "
                            f"None, got {type(res).__name__}")
        if self.metadata is not None:
            if not isinstance(self.metadata, Mapping):
                raise TypeError(f"metadata must be a mapping, got {type(self.metadata).__name__}")
            object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))
        if self.requested_at is not None:
            check_number(self.requested_at, "requested_at")
        check_tenant(self.tenant)
        if not isinstance(self.movable, bool):
            raise TypeError(f"movable must be a bool, got {type(self.movable).__name__}")
        ex = self.exclude
        if ex is not None:
            if isinstance(ex, (str, bytes)) or not isinstance(ex, Iterable):
                raise TypeError(f"exclude must be an iterable of agent ids or None, "
                                f"got {type(ex).__name__}")
            ex = frozenset(ex)
            for a in ex:
                if not isinstance(a, str):
                    raise TypeError(f"exclude must hold str agent ids, got {type(a).__name__}")
            object.__setattr__(self, "exclude", ex or None)
