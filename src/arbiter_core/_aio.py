"""The asyncio lifecycle shared by the manager and the optimizer.

``async with manager:`` (or ``optimizer``) runs the owner's ``tick()`` as a
task on the running event loop -- no thread -- every ``interval()`` seconds,
re-read after each cycle so live configuration changes apply.  The owner
keeps a single :class:`AsyncMaintenance` in ``_aio_maintenance`` (created on
first use), so this module adds no state to the owners' constructors.

A cycle runs on the loop thread; the ticks of the manager and the optimizer
are short (well under asyncio's 100 ms slow-callback threshold), so the loop
is not held up.  Exceptions in a cycle are logged and the task goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["AsyncMaintenance", "close", "enter", "running"]

log = logging.getLogger("arbiter_core.aio")

_ATTR = "_aio_maintenance"


class AsyncMaintenance:
    """Run ``tick()`` every ``interval()`` seconds as a task on the running loop.

    Parameters
    ----------
    tick : callable
        One maintenance cycle; its exceptions are logged.
    interval : callable
        Seconds until the next cycle (> 0), asked after every cycle.
    name : str
        The task's name.
    """

    __slots__ = ("_interval", "_loop", "_name", "_task", "_tick", "_wake", "cycles")

    def __init__(self, tick: Callable[[], Any], interval: Callable[[], float], name: str) -> None:
        self._tick = tick
        self._interval = interval
        self._name = name
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        #: cycles run since creation
        self.cycles = 0

    @property
    def running(self) -> bool:
        t = self._task
        return t is not None and not t.done()

    def start(self) -> None:
        """Start the task on the running loop (idempotent on the same loop).

        Raises
        ------
        RuntimeError
            No running event loop, or already running on another loop.
        """
        loop = asyncio.get_running_loop()
        if self.running:
            if self._loop is not loop:
                raise RuntimeError(f"{self._name} already runs on another event loop")
            return
        self._loop = loop
        self._wake = asyncio.Event()
        self._task = loop.create_task(self._run(), name=self._name)

    def wake(self) -> None:
        """Run the next cycle now (from the loop's thread)."""
        if self._wake is not None:
            self._wake.set()

    async def aclose(self) -> None:
        """Cancel the task and wait for it to end (idempotent).

        From another thread's event loop the cancellation is handed to the
        owning loop (a task may only be touched from its loop's thread) and
        awaited there; if the owning loop is stopped, the task is cancelled
        when it runs again; if it is closed, there is nothing left to stop.
        """
        task, self._task = self._task, None
        if task is None or task.done():
            return
        owner = task.get_loop()
        if owner is not asyncio.get_running_loop():
            if owner.is_closed():
                return
            if not owner.is_running():
                owner.call_soon_threadsafe(task.cancel)
                return
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_stop(task), owner))
            return
        await _stop(task)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        wake = self._wake
        assert wake is not None
        while True:
            try:
                self._tick()
            except Exception:
                log.exception("%s: maintenance cycle failed", self._name)
            self.cycles += 1
            try:
                delay = max(0.0, float(self._interval()))
            except Exception:
                log.exception("%s: interval failed; using 1 s", self._name)
                delay = 1.0
            handle = loop.call_later(delay, wake.set)
            try:
                await wake.wait()
            finally:
                handle.cancel()
            wake.clear()

    def __repr__(self) -> str:
        return f"AsyncMaintenance({self._name!r}, running={self.running}, cycles={self.cycles})"


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` (of the running loop) and wait for it to end."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        # ours, unless the caller itself is being cancelled
        cur = asyncio.current_task()
        cancelling = getattr(cur, "cancelling", None)      # Python >= 3.11
        if cancelling is not None and cancelling():
            raise


def enter(owner: object, tick: Callable[[], Any], interval: Callable[[], float],
          name: str) -> AsyncMaintenance:
    """Start ``owner``'s asyncio maintenance on the running loop (creating it on
    first use); returns it."""
    m: AsyncMaintenance | None = getattr(owner, _ATTR, None)
    if m is None:
        m = AsyncMaintenance(tick, interval, name)
        setattr(owner, _ATTR, m)
    m.start()
    return m


def running(owner: object) -> bool:
    """Whether ``owner``'s asyncio maintenance task is running."""
    m: AsyncMaintenance | None = getattr(owner, _ATTR, None)
    return m is not None and m.running


async def close(owner: object) -> None:
    """Stop ``owner``'s asyncio maintenance, if any (idempotent)."""
    m: AsyncMaintenance | None = getattr(owner, _ATTR, None)
    if m is not None:
        await m.aclose()
