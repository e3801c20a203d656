"""The README's quick start and the docs' examples, run as written.

The quick start's commands run in this checkout (``make demo`` for real;
``make test`` is the run this test is part of, so it is checked with
``make -n``); the README's Python blocks and the docs' examples run in a
fresh venv that has only the wheel ``make`` built (and its dependencies from
PyPI), from an empty directory, so nothing of the checkout can leak in.

A Python block states its output in ``# -> text`` comments: its standard
output must be exactly those lines, in order.  A ``pycon`` block is a
doctest.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# the pages whose examples are run (any ```python or ```pycon block)
DOC_PAGES = [ROOT / "docs" / "getting-started.md"]
STAMP = ".venv/.wheel-installed"

pytestmark = pytest.mark.skipif(
    not (ROOT / "Makefile").exists() or not README.exists(),
    reason="needs the source checkout (README.md and the Makefile)")


def blocks(text: str, lang: str) -> list[str]:
    """The fenced blocks of ``lang`` in a Markdown text."""
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.S | re.M)


def section(text: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of its level."""
    level = heading.split(" ", 1)[0]
    start = text.index(heading + "\n")
    end = text.find(f"\n{level} ", start + len(heading))
    return text[start:] if end < 0 else text[start:end]


def commands(block: str) -> list[str]:
    """A shell block's commands, comments and blank lines left out."""
    return [c for c in (line.split("#", 1)[0].strip() for line in block.splitlines()) if c]


def claims(code: str) -> list[str]:
    """The outputs a Python block states in ``# -> text`` comments."""
    return [m.group(1).rstrip() for m in re.finditer(r"# -> (.*)$", code, flags=re.M)]


def quick_start() -> str:
    return section(README.read_text(encoding="utf-8"), "## Quick start")


def test_quick_start_is_make_demo_then_make_test() -> None:
    sh = blocks(quick_start(), "sh")
    assert len(sh) == 1, "the quick start has one shell block"
    assert commands(sh[0]) == ["make demo", "make test"]


def test_quick_start_make_demo_runs_as_written() -> None:
    # `make demo` builds and installs the wheel when the sources changed; when
    # this run tests another build of it (make test-debug), that install is
    # kept (-o), and the rest of the target runs as written
    fresh = subprocess.run(["make", "-q", STAMP], cwd=ROOT, capture_output=True,
                           check=False).returncode == 0
    argv = commands(blocks(quick_start(), "sh")[0])[0].split()
    if not fresh:
        argv[1:1] = ["-o", STAMP]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    assert "scenario 'default': 28 agents" in out
    assert "best strategy:" in out
    # the default table fits a terminal of 100 columns
    table = out[out.index("strategy "):out.index("(times in seconds")]
    assert max(len(line) for line in table.splitlines()) <= 100


def test_quick_start_make_test_is_this_suite() -> None:
    # running it here would run this test again: check what it would run
    argv = commands(blocks(quick_start(), "sh")[0])[1].split()
    proc = subprocess.run([argv[0], "-n", *argv[1:]], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=True)
    assert re.search(r"pytest .*\btests\b", proc.stdout), proc.stdout


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with the wheel ``make`` built and its dependencies only."""
    wheels = sorted((ROOT / "build" / "dev-wheel").glob("arbiter_runtime-*.whl"))
    assert wheels, "no wheel in build/dev-wheel: run the tests through make"
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    str(wheels[-1])], check=True, timeout=600)
    return py


def _run(py: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd),
           "LC_ALL": "C.UTF-8"}
    return subprocess.run([str(py), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def _examples() -> list[tuple[str, str, str]]:
    out = [("README.md", "python", code) for code in blocks(quick_start(), "python")]
    for page in DOC_PAGES:
        text = page.read_text(encoding="utf-8")
        rel = str(page.relative_to(ROOT))
        out += [(rel, "python", code) for code in blocks(text, "python")]
        out += [(rel, "pycon", code) for code in blocks(text, "pycon")]
    return out


def test_examples_are_found() -> None:
    found = {(where, lang) for where, lang, _ in _examples()}
    assert ("README.md", "python") in found
    assert ("docs/getting-started.md", "pycon") in found


@pytest.mark.parametrize(("where", "lang", "code"), _examples(),
                         ids=lambda x: x if len(x) < 40 else "")
def test_example_runs_as_written(fresh_venv: Path, tmp_path: Path, where: str, lang: str,
                                 code: str) -> None:
    if lang == "pycon":
        (tmp_path / "example.txt").write_text(code, encoding="utf-8")
        proc = _run(fresh_venv, ["-m", "doctest", "example.txt"], tmp_path)
        assert proc.returncode == 0, f"{where}:\n{proc.stdout}{proc.stderr}"
        return
    (tmp_path / "example.py").write_text(code, encoding="utf-8")
    proc = _run(fresh_venv, ["example.py"], tmp_path)
    assert proc.returncode == 0, f"{where}:\n{proc.stderr}"
    assert proc.stdout.splitlines() == claims(code), f"{where}: the stated output differs"
