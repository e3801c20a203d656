"""psutil collectors: real readings in range, network rates from counters."""

import math

import pytest

from arbiter_core import ManualClock, MetricType, RuntimeOptimizer
from arbiter_core.collectors import (
    HostCpuCollector,
    HostMemoryCollector,
    NetworkCollector,
    ProcessCollector,
    default_collectors,
)


def test_host_and_process_collectors_report_percentages():
    samples = HostCpuCollector()() + HostMemoryCollector()() + ProcessCollector("me")()
    assert [(mt, src) for mt, _, src in samples] == [
        (MetricType.CPU, "host"), (MetricType.MEMORY, "host"),
        (MetricType.CPU, "me"), (MetricType.MEMORY, "me")]
    for mt, value, _ in samples:
        assert math.isfinite(value) and value >= 0.0
        if mt is MetricType.MEMORY:
            assert value <= 100.0


def test_network_collector_rate_from_counters():
    clock = ManualClock(start=0.0)
    total = {"bytes": 0.0}
    net = NetworkCollector("nic", link_speed_mbps=100.0, clock=clock,
                           counters=lambda: total["bytes"])
    assert net() == []                         # first reading only primes
    clock.advance(2.0)
    total["bytes"] = 2.0 * 12.5e6 * 0.4        # 40% of 100 Mb/s for 2 s
    ((mt, pct, src),) = net()
    assert (mt, src) == (MetricType.NETWORK, "nic") and pct == pytest.approx(40.0)
    total["bytes"] = 0.0                       # counter reset: no bogus negative rate
    clock.advance(1.0)
    assert net() == []
    with pytest.raises(ValueError, match="link_speed_mbps"):
        NetworkCollector(link_speed_mbps=0.0)


def test_network_collector_without_known_speed_reports_nothing():
    clock = ManualClock(start=0.0)
    net = NetworkCollector(clock=clock, counters=lambda: 1.0)
    net._speed = 0.0                           # as in a container without link speeds
    net()
    clock.advance(1.0)
    assert net() == []


def test_default_collectors_feed_an_optimizer():
    opt = RuntimeOptimizer(clock=ManualClock(start=0.0), collectors=default_collectors())
    assert opt.collect() >= 4
    names = {(mt, src) for mt, src in opt.monitor.series_names}
    assert {(MetricType.CPU, "host"), (MetricType.MEMORY, "host"),
            (MetricType.CPU, "process")} <= names
    assert not opt.get_health_status().degraded


def test_host_cpu_collectors_do_not_share_one_baseline(monkeypatch):
    # psutil.cpu_percent(interval=None) keeps one process-wide "last call";
    # two collectors (two optimizers, or any other caller) then measure each
    # other's intervals.  Each collector must measure since its own last call.
    import psutil

    real = psutil.cpu_times()
    fields = real._fields
    state = {"busy": 1000.0, "idle": 1000.0}

    def fake_cpu_times(percpu=False):
        vals = dict.fromkeys(fields, 0.0)
        vals["user"], vals["idle"] = state["busy"], state["idle"]
        return type(real)(**vals)

    monkeypatch.setattr(psutil, "cpu_times", fake_cpu_times)
    a, b = HostCpuCollector(), HostCpuCollector()
    a()
    b()
    state["busy"] += 50.0
    state["idle"] += 50.0
    assert b()[0][1] == pytest.approx(50.0)
    state["idle"] += 100.0
    assert a()[0][1] == pytest.approx(25.0)   # 50 busy of 200 since a's last call
    assert b()[0][1] == pytest.approx(0.0)


def test_network_collector_counts_the_links_it_measures_against(monkeypatch):
    # utilisation is a share of the non-loopback links' speed, so loopback
    # traffic (a scheduler talking to local services) must not count
    import psutil

    nic = type(psutil.net_io_counters())
    traffic = {"lo": 0.0, "eth0": 0.0}

    def fake_counters(pernic=False, nowrap=True):
        per = {name: nic(int(b), 0, 0, 0, 0, 0, 0, 0) for name, b in traffic.items()}
        if pernic:
            return per
        return nic(int(sum(traffic.values())), 0, 0, 0, 0, 0, 0, 0)

    monkeypatch.setattr(psutil, "net_io_counters", fake_counters)
    clock = ManualClock(start=0.0)
    col = NetworkCollector(link_speed_mbps=8.0, clock=clock)   # 1e6 bytes/s
    assert col() == []
    traffic["lo"] += 50e6
    traffic["eth0"] += 0.5e6
    clock.advance(1.0)
    [(mt, pct, src)] = col()
    assert (mt, src) == (MetricType.NETWORK, "host") and pct == pytest.approx(50.0)


@pytest.mark.parametrize(("bad", "exc"), [("100", TypeError), (True, TypeError),
                                          (0.0, ValueError), (math.nan, ValueError)])
def test_network_collector_names_a_bad_link_speed(bad, exc):
    with pytest.raises(exc, match="link_speed_mbps"):
        NetworkCollector(link_speed_mbps=bad, counters=lambda: 0.0)
