"""The newest instance per key, process-wide (for inspecting objects a host
framework builds, such as Ray Serve's request routers).

A module of its own because Ray Serve pickles a request router's module *by
value*: state kept there (a lock, a registry) would be copied or refuse to
pickle, while this module travels by reference.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["latest", "register"]

_LATEST: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


def register(kind: str, key: str, obj: Any) -> None:
    """Make ``obj`` the newest ``kind`` instance for ``key`` (one per key: bounded)."""
    with _LOCK:
        _LATEST[(kind, key)] = obj


def latest(kind: str, key: str) -> Any:
    """The newest ``kind`` instance registered for ``key``, or ``None``."""
    with _LOCK:
        return _LATEST.get((kind, key))
