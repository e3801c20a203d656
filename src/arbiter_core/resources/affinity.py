"""Cache affinity: the settings of the ``cache_affinity`` strategy.

A request's ``prefix`` (its prompt as block hashes) and ``affinity_key`` (a
session id) say where its context may already be cached.  The strategy sends
it to the agent holding the longest cached run of its prefix, among the
agents whose outstanding count stays within ``ceil((1 + epsilon) * mean)``
after the grant (consistent hashing with bounded loads: V. Mirrokni, M.
Thorup, M. Zadimoghaddam, SODA 2018), else to the least-loaded agent; a key
without a prefix goes to its rendezvous-hashed agent under the same bound.

What an agent holds is the router's own record of the prompts it sent there
(an LRU per agent of ``cache_blocks`` blocks, declared with
``register_agent(..., cache_blocks=N)``), or, once the agent's engine reports
them, its exact cache events (``report_cache``).  The index is C
(``_affinity.pxi``); its memory is bounded by ``max_index_blocks`` entries
(about 120 bytes each at worst) whatever the traffic.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._select import DEF_CACHE_BLOCKS, DEF_MAX_INDEX_BLOCKS
from .._validate import check_int

__all__ = ["AffinityConfig"]

_MAX_BLOCKS = 2**31 - 1


@dataclass(frozen=True, slots=True)
class AffinityConfig:
    """Settings of the ``cache_affinity`` strategy.

    Parameters
    ----------
    epsilon : float
        The load bound's slack (> 0, finite): an agent may be chosen for
        affinity while its outstanding count after the grant is at most
        ``ceil((1 + epsilon) * mean)`` (the mean over the eligible agents,
        this request included).  Smaller keeps loads closer to the mean and
        gives up more cache hits.
    min_match_blocks : int
        The shortest cached run worth preferring (>= 1).
    max_index_blocks : int
        The index's size cap in (agent, block) entries (>= 0; 0 records
        nothing); the least recently used entry goes first.  About 120
        bytes per entry at worst.
    cache_blocks : int
        The cache size assumed for agents that declared none (>= 1).

    Examples
    --------
    >>> AffinityConfig(epsilon=0.5).min_match_blocks
    1
    >>> AffinityConfig(epsilon=0)
    Traceback (most recent call last):
    ...
    ValueError: epsilon must be finite and > 0, got 0
    """

    epsilon: float = 0.25
    min_match_blocks: int = 1
    max_index_blocks: int = DEF_MAX_INDEX_BLOCKS
    cache_blocks: int = DEF_CACHE_BLOCKS

    def __post_init__(self) -> None:
        e = self.epsilon
        if isinstance(e, bool) or not isinstance(e, (int, float)):
            raise TypeError(f"epsilon must be a number, got {type(e).__name__}")
        if not (e > 0.0 and e != float("inf")):
            raise ValueError(f"epsilon must be finite and > 0, got {e!r}")
        check_int(self.min_match_blocks, "min_match_blocks", 1, _MAX_BLOCKS)
        check_int(self.max_index_blocks, "max_index_blocks", 0, _MAX_BLOCKS)
        check_int(self.cache_blocks, "cache_blocks", 1, _MAX_BLOCKS)
