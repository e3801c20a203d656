"""Listener registries: one way to subscribe everywhere.

``subscribe(callback)`` returns a function that unsubscribes.  Delivery
iterates an immutable snapshot (copy on write), so subscribing or
unsubscribing from another thread -- or from inside a callback -- never
disturbs a delivery in progress.  A callback that raises is logged with its
traceback and counted in :attr:`Listeners.errors`; the others still run and
the caller's state is never left half-changed (callers deliver only once
their state is consistent).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Listeners"]

log = logging.getLogger("arbiter_core.listeners")


class Listeners:
    """A thread-safe registry of callbacks for one kind of event.

    Parameters
    ----------
    name : str
        What the callbacks are called in error messages ("failover listener").
    on_change : callable, optional
        Called as ``on_change(has_subscribers)`` after every (un)subscription,
        so a hot path can skip building events nobody receives.
    """

    __slots__ = ("_callbacks", "_lock", "_name", "_on_change", "errors")

    def __init__(self, name: str, on_change: Callable[[bool], None] | None = None) -> None:
        self._name = name
        self._callbacks: tuple[Callable[..., Any], ...] = ()
        self._lock = threading.Lock()
        self._on_change = on_change
        #: callbacks that raised (each failure logged)
        self.errors = 0

    def subscribe(self, callback: Callable[..., Any]) -> Callable[[], None]:
        """Add ``callback``; returns a function that removes it again (idempotent).

        Raises
        ------
        TypeError
            ``callback`` is not callable.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        with self._lock:
            self._callbacks = (*self._callbacks, callback)
        if self._on_change is not None:
            self._on_change(True)

        def unsubscribe() -> None:
            with self._lock:
                cbs = list(self._callbacks)
                if callback not in cbs:
                    return
                cbs.remove(callback)
                self._callbacks = tuple(cbs)
                empty = not cbs
            if self._on_change is not None:
                self._on_change(not empty)

        return unsubscribe

    def emit(self, *args: Any) -> None:
        """Call every callback with ``args``; failures are logged and counted."""
        for cb in self._callbacks:
            try:
                cb(*args)
            except Exception:
                with self._lock:
                    self.errors += 1
                log.exception("%s %r failed", self._name, cb)

    def __bool__(self) -> bool:
        return bool(self._callbacks)

    def __len__(self) -> int:
        return len(self._callbacks)

    def __repr__(self) -> str:
        return f"Listeners({self._name!r}, subscribers={len(self._callbacks)})"
