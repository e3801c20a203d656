import os

# LiteLLM fetches its model cost map from the network at import unless told
# not to; the tests have no network
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from hypothesis import HealthCheck, settings

# LiteLLM (the integration tests) fetches a model cost map over the network at
# import unless told to use its bundled copy; tests never leave the machine.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# Moderate example counts keep the suite fast on a 2-core CI machine;
# ARBITER_HYPOTHESIS_PROFILE=thorough explores more.
settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("ARBITER_HYPOTHESIS_PROFILE", "ci"))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The reliability tallies (fuzzed calls, steps, threads, records) in the log."""
    import sys

    hostile = sys.modules.get("_hostile")
    if hostile is not None and hostile.COUNTS:
        counts = ", ".join(f"{k}: {v:,}" for k, v in sorted(hostile.COUNTS.items()))
        terminalreporter.write_line(f"reliability counts: {counts}")
