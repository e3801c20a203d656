"""Optional: our selection against LiteLLM's Router, deployment choice only.

Runs only where litellm is installed (it is not a dependency of any extra, so
never in CI): ``pip install litellm`` into the venv, then ``make bench``.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("litellm")

from _cases import LITELLM_CASES, params


@pytest.mark.parametrize(("factory", "label"), params(LITELLM_CASES))
def test_litellm(side_by_side: Any, factory: Any, label: str) -> None:
    side_by_side(factory, label)
