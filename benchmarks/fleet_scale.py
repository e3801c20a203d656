"""The fleet's sync cost at scale, against a real local redis-server.

M members share a pool of N agents (4 slots each) through a RedisLeaseStore;
each holds work on about a tenth of the pool.  Between two syncs of a member,
``--change`` of the pool's demand changes (allocations and releases, evenly
over the members).  Reported: ``FleetMember.sync()`` median and p99 per call
(milliseconds, wall time, in this process) and the Redis time per sync from
``INFO commandstats`` (the Lua script's own cost on Redis's one core).

Usage::

    .venv/bin/python benchmarks/fleet_scale.py --agents 1000 10000 --members 4

(it starts a throw-away redis-server on a free loopback port).  Numbers are
for this machine at this moment: compare runs side by side, never against a
figure from elsewhere.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from fleet_report import start_redis

from arbiter_core import AllocationRequest, ResourceManagerConfig
from arbiter_core.fleet import FleetMember, RedisLeaseStore


def measure(client, agents: int, members: int, change: float, rounds: int,
            seed: int = 1) -> dict[str, float]:
    store = RedisLeaseStore(client, pool=f"scale{agents}", lease_ttl_s=60.0)
    store.clear()
    for i in range(agents):
        store.register_agent(f"a{i}", max_tasks=4)
    ms = [FleetMember(f"m{k}", store, ResourceManagerConfig(seed=k), sync_interval_s=1.0)
          for k in range(members)]
    rng = random.Random(seed)
    live: dict[str, list[str]] = {m.member_id: [] for m in ms}
    n = 0

    def allocate(m):
        nonlocal n
        rid = f"{m.member_id}-{n}"
        n += 1
        m.allocate_resources(AllocationRequest(rid, "t", timeout_s=1e6))
        live[m.member_id].append(rid)

    for m in ms:
        m.sync()
        for _ in range(agents // 10):
            allocate(m)
    for _ in range(3):
        for m in ms:
            m.sync()
    client.config_resetstat()
    per_member = max(1, round(agents * change / members))
    times = []
    for _ in range(rounds):
        for m in ms:
            for _ in range(per_member):
                if live[m.member_id] and rng.random() < 0.5:
                    m.release_resources(live[m.member_id].pop(0))
                else:
                    allocate(m)
            t = time.perf_counter()
            m.sync()
            times.append((time.perf_counter() - t) * 1e3)
    ev = client.info("commandstats").get("cmdstat_evalsha", {})
    store.clear()
    times.sort()
    return {"p50_ms": statistics.median(times),
            "p99_ms": times[min(len(times) - 1, int(0.99 * len(times)))],
            "redis_ms_per_sync": ev.get("usec_per_call", float("nan")) / 1000.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--change", type=float, default=0.01,
                    help="share of the pool's demand changing between syncs")
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    proc, client = start_redis()
    try:
        print(f"{args.members} members, {args.change:.0%} of demand changing per sync, "
              f"{args.rounds} rounds")
        print(f"{'agents':>8} {'sync p50 ms':>12} {'p99 ms':>8} {'redis ms/sync':>14}")
        for n in args.agents:
            r = measure(client, n, args.members, args.change, args.rounds)
            print(f"{n:>8} {r['p50_ms']:>12.2f} {r['p99_ms']:>8.2f} "
                  f"{r['redis_ms_per_sync']:>14.2f}")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
