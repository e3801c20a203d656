"""The LLM-serving model's agent side: a prefix cache and a request's work.

An LLM agent (``service = "llm"``) serves a request in two phases: it
*prefills* the prompt tokens it does not already hold in its prefix cache,
then *decodes* the output.  Both run under the agent's limited processor
sharing (:class:`~arbiter_core.simulate.AgentService` with speed 1, so work
is seconds at full speed): ``parallelism`` requests at full speed, beyond
that they share, prefill and decode alike.  The first token comes when the
prefill ends, which the service reports as the request's milestone.

A prompt is a sequence of block hashes (``block_tokens`` tokens a block, the
last one possibly partial); block ``i``'s hash covers everything before it,
so the part of a prompt an agent holds is the longest run of its blocks,
from the first, present in the agent's cache.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .workload import Tokens

__all__ = ["PrefixCache", "llm_work", "prefix_hit_bound"]


class PrefixCache:
    """An agent's prefix cache: at most ``capacity`` blocks, least recently
    used evicted first.

    Parameters
    ----------
    capacity : int
        Blocks held at most (0: no cache).

    Notes
    -----
    Memory: one dict entry per held block, at most ``capacity``.  Blocks of
    requests still running are not pinned (a simplification: with a cache
    much larger than ``parallelism`` prompts it makes no difference).

    Examples
    --------
    >>> c = PrefixCache(3)
    >>> c.store([1, 2, 3])
    []
    >>> c.match([1, 2, 9])
    2
    >>> c.store([4])                 # evicts block 3, the least recently used
    [3]
    >>> c.match([1, 2, 3])
    2
    """

    __slots__ = ("_blocks", "capacity")

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise ValueError(f"capacity must be an integer >= 0, got {capacity!r}")
        self.capacity = capacity
        self._blocks: OrderedDict[int, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._blocks)

    def match(self, prefix: Sequence[int]) -> int:
        """How many of ``prefix``'s first blocks are held (marks them used)."""
        blocks = self._blocks
        k = 0
        for h in prefix:
            if h not in blocks:
                break
            k += 1
        self._touch(prefix, k)
        return k

    def _touch(self, prefix: Sequence[int], k: int) -> None:
        # last block first, so a prompt's first block is its most recently
        # used: eviction takes a prompt's tail before its head (vLLM's order),
        # and a head without its tail still matches
        blocks = self._blocks
        for i in range(k - 1, -1, -1):
            blocks.move_to_end(prefix[i])

    def store(self, prefix: Sequence[int]) -> list[int]:
        """Hold ``prefix``'s blocks (most recently used), evicting the least
        recently used beyond the capacity; returns the evicted blocks (an
        engine's cache events: ``prefix`` stored, these evicted)."""
        if not self.capacity:
            return []
        blocks = self._blocks
        # a prompt longer than the cache keeps its first blocks: those are
        # the ones a later request can match (matching starts at block 0)
        k = min(len(prefix), self.capacity)
        move = blocks.move_to_end
        for i in range(k - 1, -1, -1):     # (see _touch for the order)
            blocks[prefix[i]] = None
            move(prefix[i])
        evicted = []
        while len(blocks) > self.capacity:
            evicted.append(blocks.popitem(last=False)[0])
        return evicted


def llm_work(prompt_tokens: int, cached_tokens: int, output_tokens: int,
             prefill_tokens_per_s: float, decode_tokens_per_s: float) -> tuple[float, float]:
    """A request's ``(prefill, total)`` work in seconds at full speed.

    >>> llm_work(1000, 600, 50, 2000.0, 25.0)
    (0.2, 2.2)
    """
    prefill = (prompt_tokens - cached_tokens) / prefill_tokens_per_s
    return prefill, prefill + output_tokens / decode_tokens_per_s


def prefix_hit_bound(tokens: Tokens, block_tokens: int) -> float:
    """The cache hit rate of one agent with an unbounded prefix cache serving
    the requests one after another, in order: the upper bound of any pool's
    ``cache_hit_rate`` on these requests (prompt tokens of the longest cached
    prefix over all prompt tokens; 0 without prompt tokens)."""
    if isinstance(block_tokens, bool) or not isinstance(block_tokens, int) or block_tokens < 1:
        raise ValueError(f"block_tokens must be an integer >= 1, got {block_tokens!r}")
    total = int(tokens.prompt.sum())
    if not total:
        return 0.0
    cache = PrefixCache(int(tokens.blocks.size) or 1)    # holds every block: never evicts
    hit = 0
    for i in range(len(tokens)):
        prefix = tokens.prefix(i)
        hit += min(cache.match(prefix) * block_tokens, int(tokens.prompt[i]))
        cache.store(prefix)
    return hit / total
