"""Instruction-count budgets for the hot paths, counted with callgrind.

Wall-clock ratios move with the machine; instructions do not (CodSpeed works
the same way).  Each operation runs in its own ``python`` under
``valgrind --tool=callgrind`` twice, ``SMALL`` and ``LARGE`` times, with
``PYTHONHASHSEED=0``; the difference of the two totals divided by
``LARGE - SMALL`` is the cost of one operation, with the interpreter's start,
the imports and the setup cancelled out.

Run::

    .venv/bin/python benchmarks/callgrind_budgets.py            # check the budgets
    .venv/bin/python benchmarks/callgrind_budgets.py --update   # rewrite them
    .venv/bin/python benchmarks/callgrind_budgets.py --ops request_build,user_path

The budgets live in ``benchmarks/callgrind_budgets.json``; a check fails (exit
1) when an operation costs more than ``--tolerance`` (default 10 %) above its
budget, and reports the ones that got cheaper by as much (time to update).
The ``peer_*`` operations (the plain-Python least-loaded scan at 100 agents,
the frozen dataclass the request type replaced) give the side-by-side
ratios in instructions.  About 30 s of CPU per operation (two runs under
valgrind), so it is not part of every CI run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUDGETS = HERE / "callgrind_budgets.json"
SMALL, LARGE = 2_000, 12_000

# Each operation: the setup, then ``op()`` is called N times.  Everything is
# built ahead (agents, data) so that only the operation is counted.
_POOL = """
from arbiter_core import (AdaptiveResourceManager, AllocationRequest, ManualClock,
                          ResourceManagerConfig)
arm = AdaptiveResourceManager(ResourceManagerConfig(load_balancing_strategy="least_loaded",
                                                    max_agents=100, seed=7),
                              clock=ManualClock(start=0.0))
for i in range(100):
    arm.register_agent(f"agent-{i}", max_tasks=10)
    arm.record_usage(f"agent-{i}", cpu=5.0 + (i * 37) % 60, memory=5.0 + (i * 53) % 65)
allocate, release = arm.allocate_resources, arm.release_resources
"""
OPS = {
    "request_build": ("from arbiter_core import AllocationRequest\n",
                      "AllocationRequest('bench', 'task')"),
    "allocate_release": (_POOL + "req = AllocationRequest('bench', 'task')\n",
                         "allocate(req); release('bench', True, 0.01)"),
    "user_path": (_POOL, "allocate(AllocationRequest('bench', 'task')); "
                         "release('bench', True, 0.01)"),
    "record_metric": ("from arbiter_core import MetricType, PerformanceMonitor\n"
                      "mon = PerformanceMonitor(max_metrics=10_000)\n"
                      "rec, LAT = mon.record_metric, MetricType.LATENCY\n",
                      "rec(LAT, 12.5, 'api')"),
    "window_query": ("import numpy as np\nfrom arbiter_core import MetricRing\n"
                     "ring = MetricRing(20_000)\n"
                     "ts = np.arange(20_000) * 0.01\n"
                     "ring.record_many(1, 40.0 + (np.arange(20_000) % 97), ts)\n"
                     "since, until = float(ts[-10_000]), float(ts[-1])\n",
                     "ring.quantile(1, 0.99, since, until)"),
    # peers, for machine-independent side-by-side ratios (BENCHMARKS.md)
    "peer_python_scan": (f"import sys\nsys.path.insert(0, {str(HERE)!r})\n"
                         "from _cases import pool_usage\nfrom _pyref import PyPool\n"
                         "py = PyPool(*pool_usage(100))\n", "py.least_loaded()"),
    "peer_dataclass_build": (f"import sys\nsys.path.insert(0, {str(HERE)!r})\n"
                             "from _dataclass_request import DataclassRequest\n",
                             "DataclassRequest('bench', 'task')"),
}

# fewer repetitions for the operations that cost ~100,000 instructions
SIZES = {"window_query": (200, 1_200), "peer_python_scan": (200, 1_200)}

_CHILD = """
import sys
{setup}
def op():
    {body}
for _ in range(int(sys.argv[1])):
    op()
"""


def instructions(name: str, n: int) -> int:
    """Total instructions of a run of ``n`` operations under callgrind."""
    setup, body = OPS[name]
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp, "op.py")
        script.write_text(_CHILD.format(setup=setup, body=body))
        out = Path(tmp, "callgrind.out")
        env = dict(os.environ, PYTHONHASHSEED="0")
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        sys.executable, str(script), str(n)],
                       check=True, env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        m = re.search(r"^(?:summary|totals):\s+(\d+)", out.read_text(), re.MULTILINE)
        if m is None:
            raise RuntimeError(f"no totals in callgrind's output for {name}")
        return int(m.group(1))


def per_op(name: str, small: int = SMALL, large: int = LARGE) -> float:
    """Instructions of one operation: the difference of two sizes."""
    return (instructions(name, large) - instructions(name, small)) / (large - small)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="rewrite the budgets file")
    parser.add_argument("--ops", default=",".join(OPS), help="comma-separated operations")
    parser.add_argument("--tolerance", type=float, default=0.10)
    parser.add_argument("--small", type=int, help=f"default {SMALL} (see SIZES)")
    parser.add_argument("--large", type=int, help=f"default {LARGE} (see SIZES)")
    args = parser.parse_args(argv)
    names = [n for n in args.ops.split(",") if n]
    unknown = sorted(set(names) - set(OPS))
    if unknown:
        parser.error(f"unknown operations: {', '.join(unknown)}")
    budgets = json.loads(BUDGETS.read_text()) if BUDGETS.exists() else {}
    failed = recorded = False
    for name in names:
        small, large = SIZES.get(name, (SMALL, LARGE))
        cost = per_op(name, args.small or small, args.large or large)
        budget = budgets.get(name)
        if args.update or budget is None:
            verdict = "recorded"
            budgets[name] = round(cost)
            recorded = True
        elif cost > budget * (1 + args.tolerance):
            verdict = f"OVER budget {budget:,} by {cost / budget - 1:.1%}"
            failed = True
        elif cost < budget * (1 - args.tolerance):
            verdict = f"under budget {budget:,} by {1 - cost / budget:.1%} (update it)"
        else:
            verdict = f"within budget {budget:,}"
        print(f"{name:<18} {cost:12,.0f} instructions/op  {verdict}", flush=True)
    if recorded:
        BUDGETS.write_text(json.dumps(budgets, indent=2, sort_keys=True) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
