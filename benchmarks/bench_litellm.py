"""Optional: our selection against LiteLLM's Router, deployment choice only.

Runs only where litellm is installed (it is not a dependency of any extra, so
never in CI): ``pip install litellm`` into the venv, then ``make bench``.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

# LiteLLM fetches a model cost map over the network at import unless told to
# use its bundled copy: these benchmarks never leave the machine
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
pytest.importorskip("litellm")

from _cases import LITELLM_CASES, params


@pytest.mark.parametrize(("factory", "label"), params(LITELLM_CASES))
def test_litellm(side_by_side: Any, factory: Any, label: str) -> None:
    side_by_side(factory, label)
