import os

# LiteLLM fetches its model cost map from the network at import unless told
# not to; the tests have no network
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# Ray (the simulator's ray executor) reports usage statistics unless told not to.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import pytest
from hypothesis import HealthCheck, settings

# Moderate example counts keep the suite fast on a 2-core CI machine;
# ARBITER_HYPOTHESIS_PROFILE=thorough explores more.
settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("ARBITER_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def redis_server():
    """A real redis-server (Debian package) on a free 127.0.0.1 port for the
    whole session; the tests that use it skip when it is absent."""
    from fleet_support import RedisServer

    server = RedisServer()
    yield server
    server.stop()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The reliability tallies (fuzzed calls, steps, threads, records) in the log."""
    import sys

    hostile = sys.modules.get("_hostile")
    if hostile is not None and hostile.COUNTS:
        counts = ", ".join(f"{k}: {v:,}" for k, v in sorted(hostile.COUNTS.items()))
        terminalreporter.write_line(f"reliability counts: {counts}")
