"""Trace replay: a file of requests that every strategy replays exactly.

Two formats, told apart by the first non-blank character (``{`` for JSON):

* CSV with a header row::

      arrival_s,work_s,priority,timeout_s,tenant
      0.00,1.8,high,5,acme
      0.12,0.4,,,

* JSON lines, one object per line::

      {"arrival_s": 0.0, "work_s": 1.8, "priority": "high", "timeout_s": 5, "tenant": "acme"}

Columns: ``arrival_s`` (seconds from the start, >= 0) and ``work_s`` (the
task's work: seconds alone on an agent of speed 1, > 0) are required;
``priority`` (low | medium | high | critical; default medium), ``timeout_s``
(queue timeout, > 0; default: the scenario's timeout for that priority, else
its longest) and ``tenant`` (the request's ``AllocationRequest.tenant``, 1 to
256 characters: a tenant of the scenario's ``[[tenants]]`` gets its policy,
any other runs with the default policy; default: the ``"default"`` tenant) are
optional, and an empty cell or ``null`` means the default.  Rows may come in
any order; they are replayed in arrival order (ties in file order).  Anything
else is an error that names the line and the column.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..scenario import MAX_TENANT_NAME, PRIORITY_NAMES, Scenario
from .workload import FloatArray, IntArray, Workload

__all__ = ["COLUMNS", "MAX_ROWS", "Trace", "TraceError", "load_trace"]

COLUMNS = ("arrival_s", "work_s", "priority", "timeout_s", "tenant")
REQUIRED = ("arrival_s", "work_s")
#: a trace is held in memory (a few tens of bytes a request): bound it
MAX_ROWS = 20_000_000
#: the default priority of a row that names none
DEFAULT_PRIORITY = "medium"


class TraceError(ValueError):
    """A trace file cannot be read, or a row is invalid; the message names
    the line and column."""


@dataclass(frozen=True, eq=False)
class Trace:
    """Requests read from a file, in arrival order.

    ``priority`` is an index into ``PRIORITY_NAMES``; ``timeout_s`` is NaN
    where the row gave none (the scenario supplies it, see :meth:`to_workload`).
    """

    path: str
    arrival_s: FloatArray
    work_s: FloatArray
    priority: IntArray
    timeout_s: FloatArray
    tenant: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.arrival_s.size)

    @property
    def duration_s(self) -> float:
        """The last arrival (requests arrive over ``[0, duration_s]``)."""
        return float(self.arrival_s[-1]) if self.arrival_s.size else 0.0

    def to_workload(self, scenario: Scenario, rng: np.random.Generator) -> Workload:
        """The trace's requests with missing timeouts from ``scenario`` and
        per-request failure draws from ``rng``."""
        by_prio = {PRIORITY_NAMES.index(p.priority): p.timeout_s
                   for p in scenario.arrivals.priorities}
        longest = max(by_prio.values())
        timeout = self.timeout_s.copy()
        missing = np.isnan(timeout)
        if missing.any():
            fill = np.array([by_prio.get(k, longest) for k in range(len(PRIORITY_NAMES))])
            timeout[missing] = fill[self.priority[missing]]
        tenants = self.tenant if any(self.tenant) else ()
        return Workload(arrival_s=self.arrival_s, work_s=self.work_s, priority=self.priority,
                        timeout_s=timeout, fail_draw=rng.random(len(self)),
                        duration_s=self.duration_s, tenant=tenants)


def load_trace(path: str | Path) -> Trace:
    """Read a CSV (with header) or JSON-lines trace.

    Raises
    ------
    TraceError
        The file cannot be read, or a row is invalid (the message names the
        file, line and column).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")   # a spreadsheet's BOM is no column
    except OSError as exc:
        raise TraceError(f"{p}: cannot read trace file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise TraceError(f"{p}: not UTF-8 text: {exc}") from None
    head = text.lstrip()[:1]
    rows = _json_rows(p, text) if head == "{" else _csv_rows(p, text)
    arrival: list[float] = []
    work: list[float] = []
    prio: list[int] = []
    timeout: list[float] = []
    tenant: list[str] = []
    for line, row in rows:
        if len(arrival) >= MAX_ROWS:
            raise TraceError(f"{p}: more than {MAX_ROWS:,} requests")
        where = f"{p} line {line}"
        arrival.append(_number(row.get("arrival_s"), where, "arrival_s", lo=0.0))
        work.append(_number(row.get("work_s"), where, "work_s", positive=True))
        prio.append(_priority(row.get("priority"), where))
        t = row.get("timeout_s")
        timeout.append(math.nan if _empty(t) else
                       _number(t, where, "timeout_s", positive=True))
        tenant.append(_tenant(row.get("tenant"), where))
    if not arrival:
        raise TraceError(f"{p}: no requests (a trace needs at least one row)")
    arr = np.array(arrival)
    order = np.argsort(arr, kind="stable")
    return Trace(path=str(p), arrival_s=arr[order], work_s=np.array(work)[order],
                 priority=np.array(prio, dtype=np.int8)[order],
                 timeout_s=np.array(timeout)[order],
                 tenant=tuple(tenant[i] for i in order))


def _check_columns(p: Path, line: int, names: list[str] | Any) -> None:
    unknown = [c for c in names if c not in COLUMNS]
    if unknown:
        raise TraceError(f"{p} line {line}, column {unknown[0]}: unknown column; "
                         f"known: {', '.join(COLUMNS)}")


def _csv_rows(p: Path, text: str) -> Any:
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:    # e.g. a cell beyond the csv module's field limit
            raise TraceError(f"{p} line {reader.line_num}: not valid CSV: {exc}") from None
        line = reader.line_num
        if not fields or all(not f.strip() for f in fields):
            continue
        if header is None:
            header = [f.strip() for f in fields]
            _check_columns(p, line, header)
            for c in REQUIRED:
                if c not in header:
                    raise TraceError(f"{p} line {line}, column {c}: missing from the header "
                                     f"(a CSV trace starts with a header row naming "
                                     f"its columns)")
            continue
        if len(fields) > len(header):
            raise TraceError(f"{p} line {line}: {len(fields)} cells for "
                             f"{len(header)} columns")
        yield line, dict(zip(header, fields))


def _json_rows(p: Path, text: str) -> Any:
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except ValueError as exc:
            raise TraceError(f"{p} line {line}: not valid JSON: {exc}") from None
        if not isinstance(row, dict):
            raise TraceError(f"{p} line {line}: must be a JSON object, "
                             f"got {type(row).__name__}")
        _check_columns(p, line, list(row))
        yield line, row


def _empty(v: object) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _number(v: object, where: str, col: str, *, lo: float | None = None,
            positive: bool = False) -> float:
    if _empty(v):
        raise TraceError(f"{where}, column {col}: missing")
    if isinstance(v, bool):
        raise TraceError(f"{where}, column {col}: must be a number, got {v!r}")
    try:
        x = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TraceError(f"{where}, column {col}: must be a number, got {v!r}") from None
    except OverflowError:           # a JSON integer beyond any float
        raise TraceError(f"{where}, column {col}: must be finite, got an integer of "
                         f"{len(str(v))} digits") from None
    if not math.isfinite(x):
        raise TraceError(f"{where}, column {col}: must be finite, got {v!r}")
    if positive and x <= 0:
        raise TraceError(f"{where}, column {col}: must be > 0, got {v!r}")
    if lo is not None and x < lo:
        raise TraceError(f"{where}, column {col}: must be >= {lo:g}, got {v!r}")
    return x


def _tenant(v: object, where: str) -> str:
    if _empty(v):
        return ""
    if not isinstance(v, (str, int)) or isinstance(v, bool):
        raise TraceError(f"{where}, column tenant: must be text, got {v!r}")
    name = str(v).strip()
    if len(name) > MAX_TENANT_NAME:
        raise TraceError(f"{where}, column tenant: at most {MAX_TENANT_NAME} characters, "
                         f"got {len(name)}")
    return name


def _priority(v: object, where: str) -> int:
    if _empty(v):
        return PRIORITY_NAMES.index(DEFAULT_PRIORITY)
    name = v.strip().lower() if isinstance(v, str) else None
    if name not in PRIORITY_NAMES:
        raise TraceError(f"{where}, column priority: must be one of "
                         f"{', '.join(PRIORITY_NAMES)}, got {v!r}")
    return PRIORITY_NAMES.index(name)
