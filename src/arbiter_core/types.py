"""Enumerations and result records shared by both subsystems.

Enum values equal the strings and numbers of the TypeScript prototype this
package reimplements (so configuration and stored data written for it carry
over).  Result records are frozen dataclasses: snapshots that never change
after they are returned.  Durations are in seconds (``_s``) where the
prototype used milliseconds.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TypeVar

__all__ = [
    "AllocationStatus",
    "BottleneckSeverity",
    "HealthStatus",
    "LoadBalancingStrategy",
    "MetricType",
    "PerformanceMetric",
    "RecommendationType",
    "ResourceType",
    "StrEnum",
    "ScalingAction",
    "TaskPriority",
    "coerce_enum",
]

_E = TypeVar("_E", bound=enum.Enum)


def coerce_enum(cls: type[_E], value: object, name: str) -> _E:
    """``value`` as a member of the str-valued enum ``cls`` (its string value is accepted).

    Raises
    ------
    ValueError
        A string that is not one of the values; the message lists them.
    TypeError
        Anything else; the message names ``name``.
    """
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(sorted(str(m.value) for m in cls))
            raise ValueError(f"{name} must be one of {valid}; got {value!r}") from None
    raise TypeError(f"{name} must be a {cls.__name__} or str, got {type(value).__name__}")


class StrEnum(str, enum.Enum):
    """Base of the string enums: a member is its value, also for ``str()``.

    (``enum.StrEnum`` needs Python 3.11; this package supports 3.10.)

    Examples
    --------
    >>> str(MetricType.CPU), MetricType.CPU == "cpu"
    ('cpu', True)
    """

    def __str__(self) -> str:
        return str(self.value)


class MetricType(StrEnum):
    """What a performance metric measures."""

    CPU = "cpu"
    MEMORY = "memory"
    NETWORK = "network"
    LATENCY = "latency"
    THROUGHPUT = "throughput"
    ERROR_RATE = "error_rate"
    CACHE_HIT_RATE = "cache_hit_rate"


class BottleneckSeverity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class RecommendationType(StrEnum):
    CACHE_OPTIMIZATION = "cache_optimization"
    RESOURCE_ALLOCATION = "resource_allocation"
    QUERY_OPTIMIZATION = "query_optimization"
    CONCURRENCY_TUNING = "concurrency_tuning"
    MEMORY_MANAGEMENT = "memory_management"
    NETWORK_OPTIMIZATION = "network_optimization"


class ResourceType(StrEnum):
    CPU = "cpu"
    MEMORY = "memory"
    NETWORK = "network"
    DISK_IO = "disk_io"
    AGENT_CAPACITY = "agent_capacity"


class TaskPriority(enum.IntEnum):
    """Request priority; higher is served first."""

    LOW = 0
    MEDIUM = 50
    HIGH = 75
    CRITICAL = 100


class LoadBalancingStrategy(StrEnum):
    ROUND_ROBIN = "round_robin"
    LEAST_LOADED = "least_loaded"
    WEIGHTED = "weighted"
    RANDOM = "random"
    PRIORITY_BASED = "priority_based"
    POWER_OF_TWO = "power_of_two"
    PEAK_EWMA = "peak_ewma"
    SCORED = "scored"


class HealthStatus(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    OFFLINE = "offline"


class ScalingAction(StrEnum):
    SCALE_UP = "scale_up"
    SCALE_DOWN = "scale_down"
    MAINTAIN = "maintain"


class AllocationStatus(StrEnum):
    QUEUED = "queued"
    ALLOCATED = "allocated"
    RELEASED = "released"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class PerformanceMetric:
    """One stored sample (the fields of the TypeScript prototype's ``PerformanceMetric``).

    Attributes
    ----------
    type : MetricType
    value : float
    timestamp : float
        Seconds on the monitor's clock.
    source : str
        The component or operation; the grouping key everywhere.
    unit : str
        Conventional unit of the metric type ("%", "ms", "req/s").
    """

    type: MetricType
    value: float
    timestamp: float
    source: str
    unit: str = ""

    @property
    def metric_type(self) -> MetricType:
        """Alias of :attr:`type`."""
        return self.type


#: Conventional unit of each metric type.
METRIC_UNITS: dict[MetricType, str] = {
    MetricType.CPU: "%",
    MetricType.MEMORY: "%",
    MetricType.NETWORK: "%",
    MetricType.LATENCY: "ms",
    MetricType.THROUGHPUT: "req/s",
    MetricType.ERROR_RATE: "%",
    MetricType.CACHE_HIT_RATE: "%",
}
