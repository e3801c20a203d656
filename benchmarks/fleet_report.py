"""The fleet's costs, side by side in one process.

* ``sync()`` of a FleetMember in a pool of 4 members and 28 agents: against
  an InMemoryLeaseStore and against a RedisLeaseStore on a local
  redis-server (one Lua script per sync: one round trip), in microseconds
  per call;
* the hot path: allocate + release through a FleetMember against the plain
  AdaptiveResourceManager with the same agents and caps.

Usage: ``.venv/bin/python benchmarks/fleet_report.py [--redis-port PORT]``
(without a port it starts a throw-away redis-server on a free one).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import time

from arbiter_core import AdaptiveResourceManager, AllocationRequest, ResourceManagerConfig
from arbiter_core.fleet import FleetMember, InMemoryLeaseStore, RedisLeaseStore

AGENTS, SLOTS, MEMBERS = 28, 8, 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis():
    """A throw-away redis-server on a free loopback port: (process, client)."""
    import redis

    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server not found (apt-get install redis-server)")
    port = _free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(500):
        try:
            client.ping()
            return proc, client
        except redis.ConnectionError:
            time.sleep(0.01)
    proc.terminate()
    raise SystemExit("redis-server did not start")


def _pool(store):
    for i in range(AGENTS):
        store.register_agent(f"a{i}", max_tasks=SLOTS)
    ms = [FleetMember(f"m{k}", store, ResourceManagerConfig(seed=k)) for k in range(MEMBERS)]
    n = 0
    for m in ms:                       # some demand everywhere, so leases move
        m.sync()
        for _ in range(20):
            m.allocate_resources(AllocationRequest(f"{m.member_id}-{n}", "t", timeout_s=1e6))
            n += 1
    for _ in range(3):
        for m in ms:
            m.sync()
    return ms


def _per_sync_us(ms, rounds: int) -> float:
    t = time.perf_counter()
    for _ in range(rounds):
        for m in ms:
            m.sync()
    return (time.perf_counter() - t) / (rounds * len(ms)) * 1e6


def _hot_us(target, n: int, tag: str) -> float:
    reqs = [AllocationRequest(f"{tag}{i}", "t") for i in range(n)]
    a, r = target.allocate_resources, target.release_resources
    t = time.perf_counter()
    for q in reqs:
        a(q)
        r(q.request_id)
    return (time.perf_counter() - t) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis-port", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=500)
    ap.add_argument("--hot", type=int, default=200_000)
    args = ap.parse_args()
    import redis

    proc = None
    if args.redis_port is None:
        proc, client = start_redis()
    else:
        client = redis.Redis(port=args.redis_port)
    try:
        red = RedisLeaseStore(client, pool="bench", lease_ttl_s=10.0)
        red.clear()
        mem_ms = _pool(InMemoryLeaseStore(lease_ttl_s=10.0))
        red_ms = _pool(red)
        mem, rd = [], []
        for _ in range(5):             # interleaved: the machine's noise hits both
            mem.append(_per_sync_us(mem_ms, args.rounds // 5))
            rd.append(_per_sync_us(red_ms, args.rounds // 5))
        print(f"sync(), {MEMBERS} members x {AGENTS} agents, median of 5 batches:")
        print(f"  InMemoryLeaseStore  {statistics.median(mem):8.1f} us per call")
        print(f"  RedisLeaseStore     {statistics.median(rd):8.1f} us per call "
              f"(local redis-server, one Lua script per sync)")
        ping = []
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(200):
                client.ping()
            ping.append((time.perf_counter() - t) / 200 * 1e6)
        print(f"  (a bare PING round trip: {statistics.median(ping):.1f} us)")
        red.clear()

        # the hot path: the same agents and caps, plain manager vs member
        store = InMemoryLeaseStore(lease_ttl_s=10.0)
        for i in range(AGENTS):
            store.register_agent(f"a{i}", max_tasks=SLOTS)
        fm = FleetMember("solo", store, ResourceManagerConfig(seed=1))
        fm.sync()
        fm.allocate_resources(AllocationRequest("warm", "t"))
        fm.sync()                      # now it holds the whole pool
        fm.release_resources("warm")
        arm = AdaptiveResourceManager(ResourceManagerConfig(seed=1))
        for i in range(AGENTS):
            arm.register_agent(f"a{i}", max_tasks=SLOTS)
        plain, member = [], []
        for k in range(5):
            plain.append(_hot_us(arm, args.hot // 5, f"p{k}-"))
            member.append(_hot_us(fm, args.hot // 5, f"f{k}-"))
        p, f = statistics.median(plain), statistics.median(member)
        print("allocate + release, median of 5 batches:")
        print(f"  AdaptiveResourceManager  {p:6.3f} us")
        print(f"  FleetMember              {f:6.3f} us   (ratio {f / p:.3f})")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
