"""Fleet: several replicas share one pool of agents through slot leases.

Each replica is a :class:`FleetMember` -- the
:class:`~arbiter_core.AdaptiveResourceManager` API over a lease: it allocates
inside its lease in process (the hot path never leaves the process) and
renews and rebalances the lease off the hot path (:meth:`FleetMember.sync`),
atomically in a store: :class:`InMemoryLeaseStore` (one process, tests, the
simulator) or :class:`RedisLeaseStore` (many processes; extra ``fleet``).
For every agent the sum of live leases never exceeds ``max_tasks``.
"""

from .member import FleetMember, SyncReport
from .redis_store import RedisLeaseStore
from .store import (
    AgentSpec,
    InMemoryLeaseStore,
    LeaseStore,
    LeaseStoreError,
    SyncResult,
    fair_shares,
    spread_grant,
)

__all__ = [
    "AgentSpec",
    "FleetMember",
    "InMemoryLeaseStore",
    "LeaseStore",
    "LeaseStoreError",
    "RedisLeaseStore",
    "SyncReport",
    "SyncResult",
    "fair_shares",
    "spread_grant",
]

