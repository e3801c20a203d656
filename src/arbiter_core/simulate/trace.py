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

Two public LLM request traces are read in their own formats, told apart by
their fields (their requests carry token counts, for ``service = "llm"``
pools):

* **Mooncake** (Qin et al., FAST 2025) JSON lines: ``timestamp`` (ms from
  the start, >= 0), ``input_length`` (prompt tokens, >= 1),
  ``output_length`` (output tokens, >= 0) and, optionally, ``hash_ids``
  (the prompt's block hashes: integers in [0, 2**64), at most 65,536; equal
  hashes are reusable KV-cache blocks)::

      {"timestamp": 0, "input_length": 1200, "output_length": 40, "hash_ids": [0, 1, 2]}

* **Azure LLM inference trace 2023** (Patel et al., "Splitwise", ISCA 2024)
  CSV: ``TIMESTAMP`` (wall clock, ``YYYY-MM-DD HH:MM:SS[.fraction][+HH:MM]``;
  arrivals count from the earliest), ``ContextTokens`` (>= 1) and
  ``GeneratedTokens`` (>= 0); no prefix information::

      TIMESTAMP,ContextTokens,GeneratedTokens
      2023-11-16 18:17:03.9799600,4808,10

Their requests have the default priority, timeout and tenant.  A file whose
name ends in ``.gz`` is read through gzip.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import math
import re
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..scenario import MAX_TENANT_NAME, PRIORITY_NAMES, Scenario
from .workload import FloatArray, IntArray, Tokens, Workload

__all__ = ["AZURE_COLUMNS", "COLUMNS", "FORMATS", "MAX_PREFIX_BLOCKS", "MAX_ROWS",
           "MOONCAKE_COLUMNS", "Trace", "TraceError", "load_trace"]

COLUMNS = ("arrival_s", "work_s", "priority", "timeout_s", "tenant")
REQUIRED = ("arrival_s", "work_s")
MOONCAKE_COLUMNS = ("timestamp", "input_length", "output_length", "hash_ids")
AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
#: the formats :func:`load_trace` tells apart
FORMATS = ("requests", "mooncake", "azure")
#: at most this many blocks in one request's prefix
MAX_PREFIX_BLOCKS = 65_536
_HASH_LIMIT = 2 ** 64
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
    ``format`` is one of :data:`FORMATS`; an LLM trace (``mooncake``,
    ``azure``) has ``tokens`` and no work (``work_s`` is NaN: an LLM agent
    derives the work from the tokens).
    """

    path: str
    arrival_s: FloatArray
    work_s: FloatArray
    priority: IntArray
    timeout_s: FloatArray
    tenant: tuple[str, ...]
    tokens: Tokens | None = None
    format: str = "requests"

    def __len__(self) -> int:
        return int(self.arrival_s.size)

    def replay(self, speed: float = 1.0, limit: int | None = None) -> Trace:
        """The first ``limit`` requests (all with None), arriving ``speed``
        times as fast (arrival times divided by ``speed``).

        Raises
        ------
        ValueError
            ``speed`` is not a finite number > 0, or ``limit`` not an integer >= 1.
        """
        _check_replay(speed, limit)
        n = len(self) if limit is None else min(limit, len(self))
        if speed == 1.0 and n == len(self):
            return self
        tokens = None if self.tokens is None else self.tokens.take(np.arange(n))
        return replace(self, arrival_s=self.arrival_s[:n] / speed, work_s=self.work_s[:n],
                       priority=self.priority[:n], timeout_s=self.timeout_s[:n],
                       tenant=self.tenant[:n], tokens=tokens)

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
                        duration_s=self.duration_s, tenant=tenants, tokens=self.tokens)


def _check_replay(speed: object, limit: object) -> None:
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) \
            or not math.isfinite(speed) or speed <= 0:
        raise ValueError(f"speed must be a finite number > 0, got {speed!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 1):
        raise ValueError(f"limit must be an integer >= 1, got {limit!r}")


def load_trace(path: str | Path, *, speed: float = 1.0, limit: int | None = None) -> Trace:
    """Read a trace: requests (CSV with header, or JSON lines), Mooncake JSON
    lines or an Azure LLM inference CSV, told apart by their fields.

    ``speed`` and ``limit`` are :meth:`Trace.replay`'s (the first ``limit``
    requests in arrival order, ``speed`` times as fast).

    Raises
    ------
    TraceError
        The file cannot be read, or a row is invalid (the message names the
        file, line and column).
    ValueError
        ``speed`` or ``limit`` is invalid.
    """
    p = Path(path)
    _check_replay(speed, limit)        # before reading a file that may be large
    try:
        raw = p.read_bytes()
        if p.suffix.lower() == ".gz":
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8-sig")   # a spreadsheet's BOM is no column
    except (EOFError, gzip.BadGzipFile) as exc:   # (BadGzipFile is an OSError)
        raise TraceError(f"{p}: not a valid gzip file: {exc}") from None
    except OSError as exc:
        raise TraceError(f"{p}: cannot read trace file: "
                         f"{exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise TraceError(f"{p}: not UTF-8 text: {exc}") from None
    head = text.lstrip()[:1]
    rows = _json_rows(p, text) if head == "{" else _csv_rows(p, text)
    reader = _Rows(p)
    for line, row in rows:
        if len(reader) >= MAX_ROWS:
            raise TraceError(f"{p}: more than {MAX_ROWS:,} requests")
        reader.add(line, row)
    return reader.trace().replay(speed, limit)


class _Rows:
    """Columns built row by row; the first row (or header) fixes the format."""

    def __init__(self, p: Path) -> None:
        self.p = p
        self.format: str | None = None
        self.arrival: list[float] = []
        self.work: list[float] = []
        self.prio: list[int] = []
        self.timeout: list[float] = []
        self.tenant: list[str] = []
        # LLM traces: 8 bytes a block or count while reading (a list would
        # hold a Python int, ~36 bytes, for each of millions of blocks)
        self.prompt = array("q")
        self.output = array("q")
        self.blocks = array("Q")
        self.offsets = array("q", [0])

    def __len__(self) -> int:
        return len(self.arrival)

    def add(self, line: int, row: dict[str, Any]) -> None:
        if self.format is None:
            self.format = _format_of(row)
        known = {"requests": COLUMNS, "mooncake": MOONCAKE_COLUMNS,
                 "azure": AZURE_COLUMNS}[self.format]
        _check_columns(self.p, line, list(row), known)
        where = f"{self.p} line {line}"
        if self.format == "requests":
            self.arrival.append(_number(row.get("arrival_s"), where, "arrival_s", lo=0.0))
            self.work.append(_number(row.get("work_s"), where, "work_s", positive=True))
            self.prio.append(_priority(row.get("priority"), where))
            t = row.get("timeout_s")
            self.timeout.append(math.nan if _empty(t) else
                                _number(t, where, "timeout_s", positive=True))
            self.tenant.append(_tenant(row.get("tenant"), where))
            return
        if self.format == "mooncake":
            self.arrival.append(_number(row.get("timestamp"), where, "timestamp",
                                        lo=0.0) / 1000.0)
            prompt = _count(row.get("input_length"), where, "input_length", 1)
            output = _count(row.get("output_length"), where, "output_length", 0)
            self.blocks.extend(_hashes(row.get("hash_ids"), where))
        else:
            self.arrival.append(_wall_clock(row.get("TIMESTAMP"), where))
            prompt = _count(row.get("ContextTokens"), where, "ContextTokens", 1)
            output = _count(row.get("GeneratedTokens"), where, "GeneratedTokens", 0)
        self.prompt.append(prompt)
        self.output.append(output)
        self.offsets.append(len(self.blocks))

    def trace(self) -> Trace:
        p = self.p
        if not self.arrival:
            raise TraceError(f"{p}: no requests (a trace needs at least one row)")
        arr = np.array(self.arrival)
        n = arr.size
        tokens = None
        if self.format == "requests":
            work = np.array(self.work)
            prio = np.array(self.prio, dtype=np.int8)
            timeout = np.array(self.timeout)
            tenant = tuple(self.tenant)
        else:
            if self.format == "azure":
                arr -= arr.min()        # wall clock: arrivals count from the first
            work = np.full(n, math.nan)
            prio = np.full(n, PRIORITY_NAMES.index(DEFAULT_PRIORITY), dtype=np.int8)
            timeout = np.full(n, math.nan)
            tenant = ("",) * n
            tokens = Tokens(prompt=np.frombuffer(self.prompt, dtype=np.int64),
                            output=np.frombuffer(self.output, dtype=np.int64),
                            blocks=np.frombuffer(self.blocks, dtype=np.uint64),
                            offsets=np.frombuffer(self.offsets, dtype=np.int64))
        order = np.argsort(arr, kind="stable")
        return Trace(path=str(p), arrival_s=arr[order], work_s=work[order],
                     priority=prio[order], timeout_s=timeout[order],
                     tenant=tuple(tenant[i] for i in order),
                     tokens=None if tokens is None else tokens.take(order),
                     format=self.format or "requests")


def _format_of(row: dict[str, Any]) -> str:
    """The format a first row (or CSV header) belongs to, by its fields."""
    if any(c in row for c in MOONCAKE_COLUMNS):
        return "mooncake"
    if any(c in row for c in AZURE_COLUMNS):
        return "azure"
    return "requests"


def _check_columns(p: Path, line: int, names: list[str] | Any,
                   known: tuple[str, ...]) -> None:
    unknown = [c for c in names if c not in known]
    if unknown:
        raise TraceError(f"{p} line {line}, column {unknown[0]}: unknown column; "
                         f"known: {', '.join(known)}")


def _csv_rows(p: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
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
            fmt = _format_of(dict.fromkeys(header))
            known = {"requests": COLUMNS, "azure": AZURE_COLUMNS}.get(fmt, COLUMNS)
            _check_columns(p, line, header, known)
            required = AZURE_COLUMNS if fmt == "azure" else REQUIRED
            for c in required:
                if c not in header:
                    raise TraceError(f"{p} line {line}, column {c}: missing from the header "
                                     f"(a CSV trace starts with a header row naming "
                                     f"its columns)")
            continue
        if len(fields) > len(header):
            raise TraceError(f"{p} line {line}: {len(fields)} cells for "
                             f"{len(header)} columns")
        yield line, dict(zip(header, fields))


def _json_rows(p: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
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


#: the most tokens one request may have (prompt or output)
MAX_TOKENS = 1_000_000_000


def _count(v: object, where: str, col: str, minimum: int) -> int:
    """A token count: a whole number from ``minimum`` to :data:`MAX_TOKENS`
    (``12`` or ``12.0``, not ``12.5``)."""
    x = _number(v, where, col, lo=float(minimum))
    if x > MAX_TOKENS:
        raise TraceError(f"{where}, column {col}: at most {MAX_TOKENS:,} tokens, got {v!r}")
    if x != int(x):
        raise TraceError(f"{where}, column {col}: must be a whole number, got {v!r}")
    return int(x)


def _hashes(v: object, where: str) -> list[int]:
    """A prefix: a list of block hashes, integers in [0, 2**64)."""
    if v is None:
        return []
    if not isinstance(v, list):
        raise TraceError(f"{where}, column hash_ids: must be a list of integers, "
                         f"got {type(v).__name__}")
    if len(v) > MAX_PREFIX_BLOCKS:
        raise TraceError(f"{where}, column hash_ids: at most {MAX_PREFIX_BLOCKS:,} blocks, "
                         f"got {len(v):,}")
    for k, h in enumerate(v):
        if isinstance(h, bool) or not isinstance(h, int) or not 0 <= h < _HASH_LIMIT:
            raise TraceError(f"{where}, column hash_ids: item {k} must be an integer in "
                             f"[0, 2**64), got {h!r}")
    return v


_WALL_CLOCK = re.compile(r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(\.\d+)?"
                         r"(Z|[+-]\d{2}:?\d{2})?")


def _wall_clock(v: object, where: str) -> float:
    """A wall-clock time ``YYYY-MM-DD HH:MM:SS[.fraction][Z|+HH:MM]`` as
    seconds (of the epoch; UTC when no offset is given)."""
    if _empty(v):
        raise TraceError(f"{where}, column TIMESTAMP: missing")
    m = _WALL_CLOCK.fullmatch(str(v).strip())
    if m is None:
        raise TraceError(f"{where}, column TIMESTAMP: must be a time like "
                         f"2023-11-16 18:17:03.97996, got {v!r}")
    y, mo, d, hh, mi, ss = (int(x) for x in m.groups()[:6])
    frac, tz = m.group(7), m.group(8)
    offset = dt.timedelta(0)
    if tz and tz != "Z":
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        offset = sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    try:
        when = dt.datetime(y, mo, d, hh, mi, ss, tzinfo=dt.timezone(offset))
    except ValueError as exc:
        raise TraceError(f"{where}, column TIMESTAMP: not a valid time: {exc}") from None
    # a float of the epoch seconds keeps ~0.2 us at today's dates: enough
    return when.timestamp() + (float(frac) if frac else 0.0)
