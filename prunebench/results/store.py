"""Result files on disk: the one atomic writer, the one layout of a run directory, the one loader.

A run directory is `<results>/<protocol name>-<hash[:10]>/`. It holds `protocol.json` (the resolved
protocol and its hash) and one record per job at `<method label>/[<retraining variant>/]sparsity-<s>_seed-<n>.json`;
`RunDirectory` alone knows that layout. Writes are atomic (a reader or a killed run sees the old file or the
new one, never half of one); the loader reads every record under any files and directories, skipping (with a
warning naming it) whatever is not a valid record.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from prunebench.errors import ResultsError
from prunebench.results.files import read_regular, remove_stale_temporaries, write_atomic
from prunebench.results.integrity import IntegrityKey
from prunebench.results.schema import SCHEMA_VERSION, ResultRecord, ResultSummary

PROTOCOL_FILE = "protocol.json"
# A results folder holding this file holds the committed references: no run writes there unless it is told to.
REFERENCES_FILE = "REFERENCES.md"
MAX_RECORD_BYTES = 64 * 1024 * 1024  # a record with long curves and per-layer analyses is a few megabytes
MAX_PROTOCOL_BYTES = 16 * 1024 * 1024
WARN_FIRST = 5  # files skipped: the first few named, the rest counted
FOLDER_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}"  # a method label or a retraining variant
RUN_DEPTH = 3  # a record lies at most this many folders below its run directory (label / variant / file)


def save_result(path: Path, record: ResultRecord, seal: tuple[IntegrityKey, str] | None = None) -> None:
    """Write a record with its digest over what is written (any digest and MAC it carried are replaced), and, with
    `seal` (the key, the record's domain: `record_domain`), the key's MAC of that digest."""
    digest = record_digest(json.loads(record.model_dump_json(exclude={"digest", "mac"})))
    mac = seal[0].mac(seal[1], digest.encode()) if seal is not None else None
    write_atomic(path, record.model_copy(update={"digest": digest, "mac": mac}).model_dump_json(indent=1))


def record_domain(run_name: str, job_id: str) -> str:
    """What a record's MAC is bound to: its run directory's name and its job, so that a record the runner wrote for
    one job never stands for another."""
    return f"prunebench-record/1/{run_name}/{job_id}"


def record_sealed(record: ResultSummary, key: IntegrityKey | None, domain: str) -> bool:
    """Whether a record (whose digest matches its content: `load_checked`) carries `key`'s MAC in `domain`."""
    return key is not None and record.digest is not None and key.verify(domain, record.digest.encode(), record.mac)


def record_digest(content: dict[str, Any]) -> str:
    """sha256 of a record's content as JSON (keys sorted, compact) without its `digest` and `mac`: over the values,
    not the file's bytes, so that the digest holds across the schema's later optional fields and the file's
    layout."""
    canonical = json.dumps(
        {k: v for k, v in content.items() if k not in ("digest", "mac")},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


class RunDirectory:
    """The files of one protocol's run: where each job's record and the protocol.json live."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def of(cls, results: Path, run_name: str) -> RunDirectory:
        return cls(Path(results) / run_name)

    @staticmethod
    def job_id(label: str, variant: str | None, target: float, seed: int, kind: str = "sparsity") -> str:
        """A job's name: its record's path in the run directory, without `.json` (`sparsity-0.9_seed-0`, or for a
        cost target `flops_reduction-2_seed-0`). A retraining variant's results sit one level down, within the
        levels the reporter searches for protocol.json."""
        where = label if variant is None else f"{label}/{variant}"
        return f"{where}/{kind}-{target:g}_seed-{seed}"

    def result_path(self, label: str, variant: str | None, target: float, seed: int, kind: str = "sparsity") -> Path:
        """Where a job's record lies; a ResultsError for any name that would leave the run directory."""
        for part in (label, variant):
            if part is not None and not re.fullmatch(FOLDER_NAME, part):
                raise ResultsError(f"{part!r} cannot name a folder of results (letters, digits, `_`, `.`, `-`)")
        path = self.path / f"{self.job_id(label, variant, target, seed, kind)}.json"
        if not path.resolve().is_relative_to(self.path.resolve()):
            raise ResultsError(f"{path} would lie outside the run directory {self.path}")
        return path

    def path_of(self, record: ResultRecord) -> Path:
        """Where the runner writes a record."""
        variant = record.variant.name if record.variant is not None else None
        target = record.target_of()
        return self.result_path(record.method.label, variant, target.value, record.seed, target.kind)

    def model_path(self, job_id: str) -> Path:
        """Where `run --save-models` keeps a job's final weights: `models/<job id>.pt` (their sha256 is the
        record's `weights_sha256`)."""
        path = self.path / "models" / f"{job_id}.pt"
        if not path.resolve().is_relative_to(self.path.resolve()):
            raise ResultsError(f"{path} would lie outside the run directory {self.path}")
        return path

    @property
    def dense_dir(self) -> Path:
        """Where `run --save-models` keeps the dense checkpoints the run's jobs started from (as the cache stores
        them); `run --dense-from` reads them back."""
        return self.path / "dense"

    @property
    def protocol_file(self) -> Path:
        return self.path / PROTOCOL_FILE

    def write_protocol(
        self,
        protocol_hash: str,
        resolved: dict[str, Any],
        overrides: Sequence[str] = (),
        sanity: dict[str, dict[str, str | None]] | None = None,
    ) -> None:
        """{"hash", "protocol": the resolved protocol, "overrides": the command-line overrides it was loaded with,
        when there were any, "sanity": for a protocol with sanity ablations, which apply to which method and why
        not (prunebench.protocol.sanity.applicability: the runner knows it from the methods' descriptions)}."""
        content: dict[str, Any] = {"hash": protocol_hash, "protocol": resolved}
        if overrides:
            content["overrides"] = list(overrides)
        if sanity is not None:
            content["sanity"] = sanity
        write_atomic(self.protocol_file, json.dumps(content, indent=1))

    def remove_stale_temporaries(self) -> int:
        """Temporary files of runs killed mid-write (the result files themselves are never partial); those of a
        run still writing are left alone."""
        return remove_stale_temporaries(self.path)

    def read_protocol(self) -> dict[str, Any] | None:
        """The protocol.json of this run directory ({"hash", "protocol"}), or None when there is none to read."""
        return read_protocol_file(self.protocol_file)

    @staticmethod
    def candidates(record_file: Path) -> Iterator[Path]:
        """The protocol.json files that may describe a record, nearest first (its run directory is within
        RUN_DEPTH levels above it; copies of records may be flatter)."""
        directory = record_file.parent
        for _ in range(RUN_DEPTH):
            yield directory / PROTOCOL_FILE
            directory = directory.parent


def guard_references(results: Path, *, update: bool) -> None:
    """Refuse to write into a folder of committed references (it holds REFERENCES.md) unless `update`."""
    if (Path(results) / REFERENCES_FILE).exists() and not update:
        raise ResultsError(
            f"--results {results} holds the committed references ({Path(results) / REFERENCES_FILE}): run into "
            "another folder (the default is runs/), or pass --update-references to regenerate them"
        )


class ResultFileWarning(UserWarning):
    """A file among the results that is not a valid result record; it is skipped."""


def read_protocol_file(path: Path) -> dict[str, Any] | None:
    """A protocol.json's content when it is a regular, readable JSON object; None otherwise."""
    try:
        raw = json.loads(read_regular(path, MAX_PROTOCOL_BYTES))
    except (ValueError, RecursionError):
        return None
    return raw if isinstance(raw, dict) else None


def load_result(path: Path) -> ResultRecord:
    """Load one record; raises ValueError naming the problem for a corrupt, foreign or hostile file (not a regular
    file, too large, nested too deeply, numbers out of range)."""
    return load_checked(path)[0]


def load_checked(path: Path) -> tuple[ResultRecord, bool | None]:
    """Load one record (as `load_result`) and check its digest: True when it matches the content, False when the
    record was changed after it was written, None when it has none (written before digests were)."""
    data = read_regular(Path(path), MAX_RECORD_BYTES)
    try:
        raw = json.loads(data)
    except RecursionError:
        raise ValueError("nested too deeply to be a result record") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not readable JSON ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(raw, dict) or "schema_version" not in raw:
        raise ValueError("not a prunebench result record (no schema_version)")
    if raw["schema_version"] != SCHEMA_VERSION:
        raise ValueError(f"schema version {raw['schema_version']!r}; this prunebench reads {SCHEMA_VERSION}")
    try:
        record = ResultRecord.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise ValueError(f"invalid result record: {where}: {first['msg']}") from None
    except RecursionError:
        raise ValueError("nested too deeply to be a result record") from None
    return record, None if record.digest is None else record.digest == record_digest(raw)


TRACKER_FOLDERS = frozenset({"tensorboard", "mlruns", "wandb"})  # what `run --log` writes in a run directory


def _walk(root: Path) -> list[Path]:
    """The result files under a directory, sorted (os.walk: several times faster than rglob)."""
    out = []
    for directory, subdirs, names in os.walk(root):
        if PROTOCOL_FILE in names:  # a run directory: its trackers' folders hold their own JSON, never records
            subdirs[:] = [d for d in subdirs if d not in TRACKER_FOLDERS]
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
    """Every valid record under the paths; a corrupt, truncated, foreign or hostile file is skipped with a
    ResultFileWarning naming it (the first few by name, then how many more).

    `model_validate_json` on the raw bytes (of the curve-less summary unless curves are asked
    for) is the fast path; only a file that fails it is loaded again with `load_result`, for the
    message that names the problem.
    """
    model: type[ResultSummary] = ResultRecord if curves else ResultSummary
    out: list[Loaded] = []
    skipped: list[tuple[Path, str]] = []
    with no_gc():
        for file in result_files(paths):
            try:
                record = model.model_validate_json(read_regular(file, MAX_RECORD_BYTES))
            except (ValueError, RecursionError):  # ValidationError is a ValueError
                try:
                    full = load_result(file)
                except ValueError as exc:
                    skipped.append((file, str(exc)))
                    continue
                record = full if curves else ResultSummary.model_validate(full.model_dump(exclude={"curves"}))
            out.append(Loaded(file, record))
    for file, why in skipped[:WARN_FIRST]:
        warnings.warn(f"{file}: skipped: {why}", ResultFileWarning, stacklevel=2)
    if len(skipped) > WARN_FIRST:
        warnings.warn(
            f"{len(skipped) - WARN_FIRST:,} more files skipped as not valid result records",
            ResultFileWarning,
            stacklevel=2,
        )
    return out


def load_or_fail(paths: Sequence[Path], *, curves: bool = False) -> list[Loaded]:
    """load_records, or a ResultsError naming the paths when they hold no valid record."""
    loaded = load_records(paths, curves=curves)
    if not loaded:
        raise ResultsError(f"no valid result records in {', '.join(map(str, paths))}")
    return loaded
