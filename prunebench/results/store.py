"""Result files on disk: the one atomic writer, the one layout of a run directory, the one loader.

A run directory is `<results>/<protocol name>-<hash[:10]>/`. It holds `protocol.json` (the resolved
protocol and its hash) and one record per job at `<method label>/[<retraining variant>/]sparsity-<s>_seed-<n>.json`;
`RunDirectory` alone knows that layout. Writes are atomic (a reader or a killed run sees the old file or the
new one, never half of one); the loader reads every record under any files and directories, skipping (with a
warning naming it) whatever is not a valid record.
"""

from __future__ import annotations

import gc
import json
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from prunebench.errors import ResultsError
from prunebench.results.schema import SCHEMA_VERSION, ResultRecord, ResultSummary

PROTOCOL_FILE = "protocol.json"
TEMPORARY_SUFFIX = ".tmp"
RUN_DEPTH = 3  # a record lies at most this many folders below its run directory (label / variant / file)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write text (UTF-8) or bytes so that a reader (or a killed run) sees the old file or the new one, never
    half of one: a temporary file beside it, flushed to disk, then renamed over it; removed if anything fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_result(path: Path, record: ResultRecord) -> None:
    write_atomic(path, record.model_dump_json(indent=1))


class RunDirectory:
    """The files of one protocol's run: where each job's record and the protocol.json live."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def of(cls, results: Path, run_name: str) -> RunDirectory:
        return cls(Path(results) / run_name)

    @staticmethod
    def job_id(label: str, variant: str | None, sparsity: float, seed: int) -> str:
        """A job's name: its record's path in the run directory, without `.json`. A retraining variant's
        results sit one level down, within the levels the reporter searches for protocol.json."""
        where = label if variant is None else f"{label}/{variant}"
        return f"{where}/sparsity-{sparsity:g}_seed-{seed}"

    def result_path(self, label: str, variant: str | None, sparsity: float, seed: int) -> Path:
        return self.path / f"{self.job_id(label, variant, sparsity, seed)}.json"

    def path_of(self, record: ResultRecord) -> Path:
        """Where the runner writes a record."""
        variant = record.variant.name if record.variant is not None else None
        return self.result_path(record.method.label, variant, record.target_sparsity, record.seed)

    @property
    def protocol_file(self) -> Path:
        return self.path / PROTOCOL_FILE

    def write_protocol(self, protocol_hash: str, resolved: dict[str, Any]) -> None:
        write_atomic(self.protocol_file, json.dumps({"hash": protocol_hash, "protocol": resolved}, indent=1))

    def remove_stale_temporaries(self) -> None:
        """Temporary files of a run killed mid-write (the result files themselves are never partial)."""
        if self.path.exists():
            for stale in self.path.rglob(f".*{TEMPORARY_SUFFIX}"):
                stale.unlink(missing_ok=True)

    @staticmethod
    def candidates(record_file: Path) -> Iterator[Path]:
        """The protocol.json files that may describe a record, nearest first (its run directory is within
        RUN_DEPTH levels above it; copies of records may be flatter)."""
        directory = record_file.parent
        for _ in range(RUN_DEPTH):
            yield directory / PROTOCOL_FILE
            directory = directory.parent


class ResultFileWarning(UserWarning):
    """A file among the results that is not a valid result record; it is skipped."""


def load_result(path: Path) -> ResultRecord:
    """Load one record; raises ValueError naming the problem for a corrupt or foreign file."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not readable JSON ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(raw, dict) or "schema_version" not in raw:
        raise ValueError("not a prunebench result record (no schema_version)")
    if raw["schema_version"] != SCHEMA_VERSION:
        raise ValueError(f"schema version {raw['schema_version']!r}; this prunebench reads {SCHEMA_VERSION}")
    try:
        return ResultRecord.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise ValueError(f"invalid result record: {where}: {first['msg']}") from None


def _walk(root: Path) -> list[Path]:
    """The result files under a directory, sorted (os.walk: several times faster than rglob)."""
    out = []
    for directory, subdirs, names in os.walk(root):
        subdirs.sort()
        out.extend(Path(directory, n) for n in names if n.endswith(".json") and n != PROTOCOL_FILE)
    out.sort()
    return out


def result_files(paths: Sequence[Path]) -> list[Path]:
    """The result files under the given files and directories, each once even when two arguments overlap."""
    seen: set[str] = set()
    out: list[Path] = []
    for root in paths:
        root = Path(root)
        if not root.exists():
            raise ResultsError(f"{root}: no such file or directory")
        # Overlap is judged on the resolved root plus the relative path: resolving each of 10,000
        # files would cost more than reading them.
        real = os.path.realpath(root)
        files = [root] if root.is_file() else _walk(root)
        for file in files:
            key = real if file is root else os.path.join(real, os.path.relpath(file, root))
            if key not in seen:
                seen.add(key)
                out.append(file)
    return out


@dataclass(frozen=True)
class Loaded:
    """A record and the file it was read from."""

    path: Path
    record: ResultSummary  # a ResultRecord when curves were asked for


@contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector: records hold no cycles, and its full passes over a
    heap growing by thousands of records would otherwise double the loading time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_records(paths: Sequence[Path], *, curves: bool = False) -> list[Loaded]:
    """Every valid record under the paths; a corrupt, truncated or foreign file gives a
    ResultFileWarning naming it and is skipped.

    `model_validate_json` on the raw bytes (of the curve-less summary unless curves are asked
    for) is the fast path; only a file that fails it is loaded again with `load_result`, for the
    message that names the problem.
    """
    model: type[ResultSummary] = ResultRecord if curves else ResultSummary
    out: list[Loaded] = []
    with no_gc():
        for file in result_files(paths):
            try:
                record = model.model_validate_json(file.read_bytes())
            except (OSError, ValidationError):
                try:
                    full = load_result(file)
                except ValueError as exc:
                    warnings.warn(f"{file}: skipped: {exc}", ResultFileWarning, stacklevel=2)
                    continue
                record = full if curves else ResultSummary.model_validate(full.model_dump(exclude={"curves"}))
            out.append(Loaded(file, record))
    return out


def load_or_fail(paths: Sequence[Path], *, curves: bool = False) -> list[Loaded]:
    """load_records, or a ResultsError naming the paths when they hold no valid record."""
    loaded = load_records(paths, curves=curves)
    if not loaded:
        raise ResultsError(f"no valid result records in {', '.join(map(str, paths))}")
    return loaded
