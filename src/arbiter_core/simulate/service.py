"""Agent service models: how an agent's running tasks share it.

One :class:`AgentService` per simulated agent.  With ``n`` tasks running,
each progresses at ``rate(n) = speed / slowdown * min(1, p / n)`` units of
work per second (limited processor sharing with parallelism ``p``; the slot
model is ``p = max_tasks``, classic processor sharing is ``p = 1``).

Every running task progresses at the *same* rate, so the agent keeps one
*virtual time* ``v``: the work each of its tasks has received since some
origin.  ``v`` advances at ``rate(n)`` between events; a task that starts at
virtual time ``v0`` with work ``w`` ends when ``v`` reaches ``v0 + w``.  The
running tasks sit in a heap keyed by that finish tag, so the next completion
is the heap's top, and a start, a completion, a move or a speed change costs
O(log n) -- never a pass over the running tasks.

A task may also carry a *milestone*: the work after which something
user-visible happens (an LLM request's first token, after its prefill).  The
milestones sit in a second heap, and the moment the virtual time crosses one
is computed exactly when the virtual time is advanced, with no event of its
own: ``on_milestone(task_id, t)`` is called with the crossing time.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

__all__ = ["AgentService"]


class AgentService:
    """The running tasks of one agent under limited processor sharing.

    Parameters
    ----------
    speed : float
        Work units per second a task gets when it runs at full speed.
    parallelism : int
        How many tasks run at full speed at once (``p``).

    Notes
    -----
    Memory: one heap entry per running task (bounded by the agent's
    ``max_tasks``, which the manager enforces) plus the entries of removed
    tasks until they reach the top or the agent falls idle; the same again
    for milestones.

    ``on_milestone`` (settable) is called as ``on_milestone(task_id, t)``
    when a task started with ``milestone=m`` has received ``m`` units of
    work, ``t`` being that exact moment; it runs inside :meth:`advance`
    (and so inside :meth:`add`, :meth:`pop`, ...), before the call changes
    anything.

    Examples
    --------
    >>> s = AgentService(speed=1.0, parallelism=1)   # processor sharing
    >>> s.add("a", work=2.0, now=0.0)
    >>> s.add("b", work=1.0, now=0.0)                # both at half speed
    >>> s.next_completion()
    2.0
    >>> s.pop(2.0)
    'b'
    >>> s.next_completion()                           # 'a' has 1.0 left, alone
    3.0
    """

    __slots__ = ("_heap", "_last", "_live", "_marks", "_removed", "_seq", "busy_area", "epoch",
                 "n", "on_milestone", "parallelism", "scheduled", "slowdown", "speed", "stopped",
                 "vtime")

    def __init__(self, speed: float, parallelism: int) -> None:
        self.speed = float(speed)
        self.parallelism = int(parallelism)
        self.slowdown = 1.0
        self.stopped = False
        self.vtime = 0.0
        self._last = 0.0
        self.n = 0
        #: integral of the running-task count over time (busy task-seconds)
        self.busy_area = 0.0
        #: the event loop's bookkeeping: the epoch of the agent's valid
        #: completion event and the time it is scheduled for (None: none)
        self.epoch = 0
        self.scheduled: float | None = None
        self._heap: list[tuple[float, int, str]] = []
        self._live: dict[str, int] = {}   # task id -> its heap entry's sequence number
        self._removed: set[int] = set()   # sequence numbers of entries to skip
        self._seq = 0
        # milestones: (virtual time, sequence number, task id); an entry whose
        # sequence number is no longer its task's live one is stale
        self._marks: list[tuple[float, int, str]] = []
        self.on_milestone: Callable[[str, float], None] | None = None

    def rate(self) -> float:
        """Work per second each running task receives now."""
        if self.stopped or self.n == 0:
            return 0.0
        r = self.speed / self.slowdown
        if self.n > self.parallelism:
            r *= self.parallelism / self.n
        return r

    def advance(self, now: float) -> None:
        """Bring the virtual time and the busy integral up to ``now``."""
        dt = now - self._last
        if dt > 0.0:
            if self.n:
                r = self.rate()
                if self._marks:
                    self._cross(self.vtime + dt * r, r, now)
                self.vtime += dt * r
                self.busy_area += dt * self.n
            self._last = now

    def _cross(self, upto: float, r: float, now: float) -> None:
        """Report the milestones at virtual times <= ``upto`` (reached by ``now``)."""
        marks, live = self._marks, self._live
        while marks and marks[0][0] <= upto:
            v, seq, task_id = heapq.heappop(marks)
            if live.get(task_id) != seq:
                continue                # the task was taken away before it got there
            # the rate was constant since _last: interpolate the crossing
            t = self._last + max(v - self.vtime, 0.0) / r if r > 0.0 else now
            if self.on_milestone is not None:
                self.on_milestone(task_id, min(t, now))

    def add(self, task_id: str, work: float, now: float,
            milestone: float | None = None) -> None:
        """Start a task needing ``work`` units; with ``milestone`` (0 <=
        milestone <= work), :attr:`on_milestone` reports when it has had
        that much work."""
        if task_id in self._live:
            raise ValueError(f"task {task_id!r} already runs here")
        self.advance(now)
        self._seq += 1
        heapq.heappush(self._heap, (self.vtime + work, self._seq, task_id))
        self._live[task_id] = self._seq
        self.n += 1
        if milestone is not None:
            if milestone <= 0.0:
                if self.on_milestone is not None:
                    self.on_milestone(task_id, now)
            else:
                heapq.heappush(self._marks, (self.vtime + milestone, self._seq, task_id))

    def remove(self, task_id: str, now: float) -> None:
        """Take a running task away unfinished (it moved or was requeued)."""
        self.advance(now)
        self._removed.add(self._live.pop(task_id))
        self.n -= 1
        self._idle_reset()

    def pop(self, now: float) -> str:
        """End the task that finishes first (call at :meth:`next_completion`)."""
        self.advance(now)
        self._clean()
        finish, _, task_id = heapq.heappop(self._heap)
        if self._marks:
            # a milestone at the very end (rounding may leave vtime a hair short)
            self._cross(finish, 0.0, now)
        del self._live[task_id]
        self.n -= 1
        self._idle_reset()
        return task_id

    def set_slowdown(self, factor: float, now: float) -> None:
        """From ``now`` every task takes ``factor`` times longer (a slow fault)."""
        self.advance(now)
        self.slowdown = float(factor)

    def stop(self, now: float) -> None:
        """The agent stops serving (a crash): nothing it holds ever finishes."""
        self.advance(now)
        self.stopped = True

    def next_completion(self) -> float | None:
        """When the first running task ends at the current rate, or None."""
        r = self.rate()
        if r <= 0.0:
            return None
        self._clean()
        finish = self._heap[0][0]
        return self._last + max(finish - self.vtime, 0.0) / r

    def _clean(self) -> None:
        heap, removed = self._heap, self._removed
        while heap and heap[0][1] in removed:
            removed.discard(heapq.heappop(heap)[1])

    def _idle_reset(self) -> None:
        if not self.n:
            # nothing runs: drop stale entries and restart the virtual clock,
            # so it never grows without bound
            self._heap.clear()
            self._removed.clear()
            self._marks.clear()
            self.vtime = 0.0

    def __repr__(self) -> str:
        return (f"AgentService(speed={self.speed:g}, parallelism={self.parallelism}, "
                f"running={self.n}, rate={self.rate():.3g})")

