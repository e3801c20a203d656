"""``simulate --report``: one self-contained HTML file, checked as a file and
in a real headless Chromium (playwright driving Debian's chromium-headless-shell,
or playwright's own browser when it is installed)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "examples" / "scenarios" / "small.toml"
STRATEGIES = ["round_robin", "least_loaded", "weighted", "random", "priority_based",
              "power_of_two", "peak_ewma", "scored", "cache_affinity"]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "out.html"
    proc = subprocess.run([sys.executable, "-m", "arbiter_core", "simulate", "--scenario",
                           str(SMALL), "--seeds", "2", "--quiet", "--report", str(out)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert f"report written to {out}" in proc.stdout
    return out


def test_report_is_one_self_contained_file(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    # nothing is fetched: no link, script or image from elsewhere
    refs = re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]*)""", text)
    assert refs and all(r.startswith("data:") for r in refs), refs[:5]
    assert "<script" not in text
    imgs = re.findall(r'<img [^>]*src="data:image/png;base64,', text)
    assert len(imgs) == 1
    for table in ("summary", "wide"):
        body = text[text.index(f'<table id="{table}">'):]
        body = body[:body.index("</table>")]
        assert [s for s in STRATEGIES if f"<td>{s}</td>" in body] == STRATEGIES
    # the scenario, as JSON, is the one run
    scen = text[text.index('<pre id="scenario">') + len('<pre id="scenario">'):]
    scen = json.loads(scen[:scen.index("</pre>")].replace("&quot;", '"'))
    assert scen["name"] == "small" and scen["duration_s"] == 20.0
    assert "best strategy:" in text and "capacity when arrivals stop" in text


def _chromium() -> str | None:
    """A Chromium for playwright: ARBITER_CHROMIUM, else Debian's headless shell."""
    env = os.environ.get("ARBITER_CHROMIUM")
    if env:
        return env
    for name in ("chromium-headless-shell", "chromium"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_report_opens_in_headless_chromium_with_its_plots(report: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    # CI installs both (.ci/run, the browser extra) and sets ARBITER_REQUIRE_BROWSER=1,
    # so there this never skips
    required = os.environ.get("ARBITER_REQUIRE_BROWSER") == "1"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if required:
            raise
        pytest.skip("playwright is not installed (extra browser)")
    exe = _chromium()
    if exe is None:
        if required:
            pytest.fail("no Chromium: apt-get install chromium-headless-shell")
        pytest.skip("no Chromium (apt-get install chromium-headless-shell)")
    requests: list[str] = []
    # the browser and playwright's driver are not what a sanitizer run tests
    # (make test-sanitize preloads libasan into every child)
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.as_uri(), wait_until="load")
            img = page.evaluate("""() => {
                const i = document.getElementById('plots');
                const r = i.getBoundingClientRect();
                return {complete: i.complete, w: i.naturalWidth, h: i.naturalHeight,
                        shown: r.width, top: r.top};
            }""")
            rows = page.evaluate(
                "() => document.querySelectorAll('#summary tbody tr').length")
            title = page.title()
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert title == "arbiter-core simulate: scenario 'small'"
    assert img["complete"] and (img["w"], img["h"]) == (1800, 900), img
    assert img["shown"] > 500, img
    assert rows == len(STRATEGIES)
    # the page itself and its data: image, nothing from a network
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 100_000
