"""``arbiter-core simulate --report FILE.html``: one self-contained HTML file.

The report holds everything needed to share a simulation: the scenario (its
one-line description and every field), the summary table and the full one,
the per-tenant block, the verdict, the capacity and health lines, and the
plots as an embedded PNG image (a ``data:`` URI), so the file opens anywhere
with nothing beside it.  Plots need the ``plot`` extra (matplotlib).
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["plot_png", "render_html_report"]

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #111; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.2em 0.6em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #eee; }
pre { background: #f6f6f6; padding: 0.8em; white-space: pre-wrap; }
img.plots { max-width: 100%; border: 1px solid #ddd; }
"""


def _table(headers: Sequence[str], body: Sequence[Sequence[str]], table_id: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    rows = "".join(
        "<tr>" + "".join(f'<td{" class=num" if i else ""}>{html.escape(c)}</td>'
                         for i, c in enumerate(r)) + "</tr>" for r in body)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def render_html_report(*, title: str, description: str, scenario: Mapping[str, Any],
                       tables: Sequence[tuple[str, str, Sequence[str], Sequence[Sequence[str]]]],
                       lines: Sequence[str], plot_png: bytes | None) -> str:
    """The report as one HTML document (a string).

    Parameters
    ----------
    title : str
        The page title.
    description : str
        The scenario's one-line description (as the table's first line).
    scenario : mapping
        The scenario's fields (``Scenario.to_dict()``), shown as JSON.
    tables : sequence of (id, caption, headers, rows)
        Tables of preformatted cells; the first column is a name, the others
        are numbers (right-aligned).
    lines : sequence of str
        The verdict, capacity and health lines, in order.
    plot_png : bytes or None
        The plots as a PNG image, embedded as a ``data:`` URI; None: no plots
        section.
    """
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p id="description">{html.escape(description)}</p>',
    ]
    for table_id, caption, headers, body in tables:
        parts.append(f"<h2>{html.escape(caption)}</h2>")
        parts.append(_table(headers, body, table_id))
    parts.append('<h2>Verdict</h2><pre id="verdict">'
                 + html.escape("\n".join(lines)) + "</pre>")
    if plot_png is not None:
        uri = "data:image/png;base64," + base64.b64encode(plot_png).decode("ascii")
        parts.append(f'<h2>Plots</h2><img class="plots" id="plots" alt="simulation plots" '
                     f'src="{uri}">')
    parts.append('<h2>Scenario</h2><pre id="scenario">'
                 + html.escape(json.dumps(scenario, indent=2, sort_keys=True)) + "</pre>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def plot_png(results: Mapping[str, Any], rows: Mapping[str, Mapping[str, Any]],
             **kwargs: Any) -> bytes:
    """:func:`arbiter_core.plotting.plot_results` as PNG bytes (extra ``plot``)."""
    from .plotting import plot_results

    buf = io.BytesIO()
    plot_results(results, buf, rows, fmt="png", **kwargs)
    return buf.getvalue()
