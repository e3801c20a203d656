"""Release hygiene of the installed package: one version, clean metadata, quiet logging."""

from __future__ import annotations

import importlib.metadata
import logging
import subprocess
import sys
from pathlib import Path

import arbiter_core

DIST = "arbiter-runtime"


def test_one_version_everywhere() -> None:
    version = importlib.metadata.version(DIST)
    assert arbiter_core.__version__ == version
    proc = subprocess.run([sys.executable, "-m", "arbiter_core", "--version"],
                          capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.strip() == f"arbiter-core {version}"


def test_pep639_license_metadata() -> None:
    meta = importlib.metadata.metadata(DIST)
    assert meta["License-Expression"] == "MIT"
    assert "LICENSE" in (meta.get_all("License-File") or [])
    assert not [c for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    # no placeholder address: the project URLs come with the real repository
    assert not meta.get_all("Project-URL")


def test_long_description_has_no_repo_relative_image() -> None:
    # read the METADATA text itself: importing litellm (installed for the
    # integration tests) changes how importlib.metadata's messages parse
    text = importlib.metadata.distribution(DIST).read_text("METADATA") or ""
    body = text.split("\n\n", 1)[1] if "\n\n" in text else ""
    assert "make demo" in body and "pip install ." in body
    assert "](docs/" not in body


def test_package_logger_has_a_null_handler() -> None:
    handlers = logging.getLogger("arbiter_core").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


def test_smoke_script_passes_on_this_install() -> None:
    # the same script make dist-smoke and cibuildwheel run on release builds
    script = Path(__file__).with_name("smoke.py")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("smoke OK")
