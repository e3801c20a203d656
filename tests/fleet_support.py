"""Helpers for the fleet tests: a real redis-server on a free loopback port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A throw-away redis-server (no persistence) that can be stopped and
    started again on the same port (a restart loses its state)."""

    def __init__(self) -> None:
        if REDIS_SERVER is None:
            pytest.skip("redis-server is not installed (Debian package redis-server; "
                        ".ci/run installs it)")
        try:
            import redis  # noqa: F401
        except ImportError:
            pytest.skip("redis-py is not installed (pip install arbiter-runtime[fleet])")
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        assert REDIS_SERVER is not None
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "yes", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        client = redis.Redis(port=self.port, socket_timeout=1.0)
        for _ in range(500):         # bounded: about 5 s
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.01)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def client(self, **kw: object) -> object:
        import redis

        kw.setdefault("socket_timeout", 1.0)
        kw.setdefault("socket_connect_timeout", 1.0)
        return redis.Redis(port=self.port, **kw)


def lose_state(store: object, server: RedisServer | None) -> None:
    """The store's state is gone: an in-memory store resets, a Redis server
    (without persistence) is restarted empty."""
    if server is None:
        store.reset()  # type: ignore[attr-defined]
    else:
        server.stop()
        server.start()


def fleet_worker(port: int, pool: str, member_id: str, ttl: float, steps: int,
                 ready: object, out: object) -> None:
    """A replica in its own process: allocate and release against Redis,
    checking its own tasks against its caps; ``steps < 0`` runs until killed."""
    import redis

    from arbiter_core import AllocationRequest, AllocationStatus
    from arbiter_core.fleet import FleetMember, RedisLeaseStore

    # calls bounded at half the lease (the default, a quarter, fails calls on a
    # heavily loaded machine, and the test counts failed syncs)
    store = RedisLeaseStore(redis.Redis(port=port), pool=pool, lease_ttl_s=ttl,
                            timeout_s=ttl / 2)
    m = FleetMember(member_id, store, sync_interval_s=ttl / 5)
    m.sync()
    m.start()
    ready.put(member_id)  # type: ignore[attr-defined]
    # every request is tracked, also those queued first and dispatched later
    # (a member that starts with no free slot queues its first requests)
    mine: list[str] = []
    violations = allocated = i = 0
    while steps < 0 or i < steps:
        m.allocate_resources(AllocationRequest(f"{member_id}-{i}", "t", timeout_s=60.0))
        mine.append(f"{member_id}-{i}")
        if len(mine) > 4 or i % 2:
            for r in mine:
                if m.allocation_status(r).status is AllocationStatus.ALLOCATED:
                    m.release_resources(r)
                    mine.remove(r)
                    allocated += 1
                    break
        with m.manager.monitor.lock:
            caps = m.leased_slots()
            if any(n > caps.get(a, 0) for a, n in m.running().items()):
                violations += 1
        i += 1
    for r in mine:
        if m.allocation_status(r).status is AllocationStatus.ALLOCATED:
            m.release_resources(r)
    m.close()
    out.put((member_id, allocated, violations, m.syncs, m.sync_errors))  # type: ignore[attr-defined]
