"""Published figures as data: the format of `protocols/published/<protocol>.csv`, and its loader.

A file holds a paper's results for one shipped protocol. It opens with `#` lines: `# key: value` lines give
`protocol` (its name), `setup` (`recipe_hash` of the protocol it belongs to), `paper` and `source` (the authors'
file the figures come from); other `#` lines are comments. Then a comma-separated table, a header row of COLUMNS
and one row per (method, sparsity) that the protocol runs:

- method: the protocol's method label; sparsity: the target (a paper that reports density d has 1 - d);
- kind: `mean_std` (value = mean, std with n - 1 in its denominator, n), `median_range` (value = median, low =
  min, high = max, n) or `point` (value alone: one number published without spread); the other fields empty;
- unit: `percent` or `fraction` (of an accuracy), or `perplexity`; setting: the source's own names for the row.

No field is quoted. An unusable file is one TableError naming its file, line, column and field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from prunebench.errors import TableError
from prunebench.protocol import content_hash, setup_content
from prunebench.report.stats import MEDIAN_VARIANCE, Summary, mean_summary, range_summary

Kind = Literal["mean_std", "median_range", "point"]
Unit = Literal["percent", "fraction", "perplexity"]
COLUMNS = ("method", "sparsity", "kind", "value", "std", "low", "high", "n", "unit", "setting")
NEEDS = {"mean_std": ("std", "n"), "median_range": ("low", "high", "n"), "point": ()}  # besides value
META = ("protocol", "setup", "paper", "source")
MAX_BYTES = 1 << 20


def recipe_hash(content: dict[str, Any]) -> str:
    """The hash of everything a protocol fixes for its results but its methods and seeds (a run with more seeds is
    the same experiment, repeated more often): what a published file's `setup` names."""
    return content_hash({k: v for k, v in setup_content(content).items() if k != "seeds"})


@dataclass(frozen=True)
class PublishedRow:
    method: str
    sparsity: float
    kind: Kind
    value: float
    std: float | None
    low: float | None
    high: float | None
    n: int | None
    unit: Unit
    setting: str
    line: int

    def summary(self) -> Summary:
        """The row as an estimate of the mean, in the stored metric's unit (an accuracy as a fraction); a point
        value has no standard error (prunebench.report.stats)."""
        scale = 0.01 if self.unit == "percent" else 1.0
        if self.kind == "mean_std":
            return mean_summary(scale * self.value, scale * self.std, self.n)  # type: ignore[operator,arg-type]
        if self.kind == "median_range":
            return range_summary(scale * self.value, scale * self.low, scale * self.high, self.n)  # type: ignore[operator,arg-type]
        return Summary(scale * self.value, 0.0, math.inf)


@dataclass(frozen=True)
class PublishedFile:
    path: Path
    meta: dict[str, str]
    rows: list[PublishedRow]

    @property
    def protocol(self) -> str:
        return self.meta["protocol"]


def load_published(path: Path) -> PublishedFile:
    """Read and check a published figures file; raises TableError naming the file, line and column."""
    if not path.is_file():
        raise TableError("not a readable file", file=path, line=1)
    if path.stat().st_size > MAX_BYTES:
        raise TableError(f"larger than {MAX_BYTES} bytes: not a published figures file", file=path, line=1)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TableError(f"cannot be read as UTF-8 text ({exc.__class__.__name__})", file=path, line=1) from None
    meta: dict[str, str] = {}
    header: int | None = None
    rows: list[PublishedRow] = []
    seen: dict[tuple[str, float], int] = {}
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        if text.startswith("#"):
            key, sep, value = text[1:].strip().partition(":")
            if sep and key.strip() in META:
                meta[key.strip()] = value.strip()
            continue
        if header is None:
            if tuple(f.strip() for f in text.split(",")) != COLUMNS:
                raise TableError(f"the header must be {','.join(COLUMNS)}", file=path, line=number)
            header = number
            continue
        row = _row(path, number, text)
        key = (row.method, round(row.sparsity, 9))
        if key in seen:
            raise TableError(f"repeats the row of line {seen[key]}", file=path, line=number, field="method")
        seen[key] = number
        rows.append(row)
    for key in META:
        if not meta.get(key):
            raise TableError(f"no `# {key}: ...` line", file=path, line=1)
    if not rows:
        raise TableError("no rows of figures", file=path, line=header or len(lines) or 1)
    return PublishedFile(path, meta, rows)


def _row(path: Path, number: int, text: str) -> PublishedRow:
    fields = [f.strip() for f in text.split(",")]
    starts = [1]
    for f in text.split(",")[:-1]:
        starts.append(starts[-1] + len(f) + 1)

    def fail(column: str, message: str) -> TableError:
        index = COLUMNS.index(column)
        return TableError(message, file=path, line=number, column=starts[min(index, len(starts) - 1)], field=column)

    if '"' in text:
        raise TableError("fields are never quoted here", file=path, line=number, column=text.index('"') + 1)
    if len(fields) != len(COLUMNS):
        raise TableError(f"{len(fields)} fields; the header has {len(COLUMNS)}", file=path, line=number)
    raw = dict(zip(COLUMNS, fields, strict=True))

    def number_of(column: str) -> float | None:
        if not raw[column]:
            return None
        try:
            value = float(raw[column])
        except ValueError:
            raise fail(column, f"{raw[column]!r} is not a number") from None
        if not math.isfinite(value) or value < 0:
            raise fail(column, f"{raw[column]} is not a finite, non-negative number")
        return value

    if not raw["method"]:
        raise fail("method", "empty")
    kind, unit = raw["kind"], raw["unit"]
    if kind not in NEEDS:
        raise fail("kind", f"{kind!r} is not one of {', '.join(NEEDS)}")
    if unit not in get_args(Unit):
        raise fail("unit", f"{unit!r} is not one of {', '.join(get_args(Unit))}")
    values = {c: number_of(c) for c in ("sparsity", "value", "std", "low", "high", "n")}
    for column in ("sparsity", "value", *NEEDS[kind]):
        if values[column] is None:
            raise fail(column, f"a {kind} row needs it")
    for column in {"std", "low", "high", "n"} - set(NEEDS[kind]) - ({"n"} if kind == "point" else set()):
        if values[column] is not None:
            raise fail(column, f"a {kind} row leaves it empty")
    sparsity, value, low, high, n = (values[c] for c in ("sparsity", "value", "low", "high", "n"))
    if not 0 < sparsity < 1:  # type: ignore[operator]
        raise fail("sparsity", f"{sparsity:g} is not between 0 and 1 (exclusive)")
    if n is not None and (n != int(n) or n < 1):
        raise fail("n", f"{n:g} is not a number of runs")
    if kind == "point" and n not in (None, 1):
        raise fail("n", "a point value is one number: n is empty or 1")
    if kind == "mean_std" and n < 2:  # type: ignore[operator]
        raise fail("n", "a standard deviation needs two values or more")
    if kind == "median_range":
        if int(n) not in MEDIAN_VARIANCE:  # type: ignore[arg-type]
            raise fail("n", f"a median/min/max summary of {n:g} values: supported for {sorted(MEDIAN_VARIANCE)}")
        if not low <= value <= high:  # type: ignore[operator]
            raise fail("value", f"the median {value:g} is not between low {low:g} and high {high:g}")
    top = {"percent": 100.0, "fraction": 1.0}.get(unit)
    if top is not None and value > top:  # type: ignore[operator]
        raise fail("value", f"{value:g} is no accuracy in {unit}")
    return PublishedRow(
        raw["method"],
        sparsity,  # type: ignore[arg-type]
        kind,  # type: ignore[arg-type]
        value,  # type: ignore[arg-type]
        values["std"],
        low,
        high,
        None if n is None else int(n),
        unit,  # type: ignore[arg-type]
        raw["setting"],
        number,
    )
