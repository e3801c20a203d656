"""Smoke test of an installed arbiter-runtime: the few things a fresh install must do.

Run by ``make dist-smoke`` (in a fresh venv, from the sdist and then the wheel)
and by cibuildwheel's test command, with ``--release``: then the benchmark floor
module must be absent.  No pytest, no test extras: only the package and its
runtime dependencies.  Exits non-zero on the first failure.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import sysconfig


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--release", action="store_true",
                        help="a release build: no _benchfloor module in the wheel")
    args = parser.parse_args()

    import numpy as np

    import arbiter_core as ac

    version = importlib.metadata.version("arbiter-runtime")
    assert ac.__version__ == version, (ac.__version__, version)
    here = os.path.dirname(ac.__file__)
    assert "site-packages" in here, f"imported from {here}, not from the installed package"
    # the CLI entry point is installed next to the interpreter and agrees
    exe = os.path.join(sysconfig.get_path("scripts"), "arbiter-core")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"arbiter-core {version}", out.stdout
    has_floor = importlib.util.find_spec("arbiter_core._benchfloor") is not None
    if args.release:
        assert not has_floor, "the benchmark floor module must not ship in a release wheel"

    # the metric ring (Cython): record, window statistics, quantile, trend
    ring = ac.MetricRing(1024)
    ts = np.arange(100, dtype=np.float64)
    ring.record_many(1, ts * 2.0, ts)
    st = ring.stats(1)
    assert st.count == 100 and st.min == 0.0 and st.max == 198.0, st
    assert ring.quantile(1, 0.99, 0.0, 99.0) == np.quantile(ts * 2.0, 0.99)
    assert abs(ring.slope(1) - 2.0) < 1e-9

    # the optimizer: a CPU bottleneck is found on a manual clock
    clock = ac.ManualClock(start=0.0)
    opt = ac.RuntimeOptimizer(clock=clock)
    for _ in range(20):
        opt.record_metric(ac.MetricType.CPU, 97.0, source="worker")
        clock.advance(1.0)
    analysis = opt.analyze()
    assert any(b.metric_type is ac.MetricType.CPU for b in analysis.bottlenecks), analysis
    assert 0 <= analysis.health_score < 100

    # the manager (selection kernels in Cython): allocate, queue, release, dispatch
    arm = ac.AdaptiveResourceManager(clock=clock)
    arm.register_agent("a1", max_tasks=1)
    arm.register_agent("a2", max_tasks=1)
    got = [arm.allocate_resources(ac.AllocationRequest(f"r{i}", f"t{i}", timeout_s=5.0))
           for i in range(3)]
    assert [r.status for r in got] == [ac.AllocationStatus.ALLOCATED] * 2 + \
        [ac.AllocationStatus.QUEUED]
    arm.release_resources("r0", success=True, duration_s=0.5)
    assert arm.allocation_status("r2").status is ac.AllocationStatus.ALLOCATED
    stats = arm.get_allocation_statistics()
    assert stats.total_requests == 3 and stats.released == 1 and stats.active == 2, stats

    print(f"smoke OK: arbiter-runtime {version} from {here}"
          f"{'' if has_floor else ' (no _benchfloor)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
