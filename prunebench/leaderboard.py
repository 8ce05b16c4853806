"""Leaderboards: grouping, statistics, the fairness audit and the export formats.

What people read and cite comes from here, so nothing unfair or unsound may look like a fair
number. Results are grouped by protocol; only results that share a protocol's setup are ranked
together. Every result with a fairness problem (failed, over budget, sparsity off target, another
base checkpoint, another method configuration, a conflicting duplicate) is shown apart in the
audit with its reason, and every missing seed is named.

Statistics (all over seeds; accuracies are fractions in the data, percentages in the tables):
- mean, sample standard deviation and the 95% t-interval of the mean;
- the difference to the dense base model, paired by seed (each job starts from its seed's dense
  checkpoint), with its 95% t-interval;
- ranks: methods are sorted by mean test top-1; a method is *tied* with the method ranked just
  above it when the 95% t-interval of their paired per-seed difference contains 0. A tied method
  shares the rank of the one above (competition ranking: 1, =2, =2, 4). With fewer than two shared
  seeds the difference cannot be tested: the verdict is "n/a" and the rank is shared as well, since
  nothing says the two differ.
"""

from __future__ import annotations

import csv
import gc
import html
import io
import itertools
import json
import math
import os
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from scipy import special

from prunebench.errors import ResultsError
from prunebench.protocol import Protocol, content_hash
from prunebench.results import (
    ProtocolRef,
    ResultFileWarning,
    ResultRecord,
    load_result,
)
from prunebench.results import ResultSummary as BaseSummary

CONFIDENCE = 0.95
EPS = 1e-6
FORMATS = ("rich", "markdown", "csv", "json", "latex", "html")
Format = Literal["rich", "markdown", "csv", "json", "latex", "html"]
SUFFIX_FORMATS = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".csv": "csv",
    ".json": "json",
    ".tex": "latex",
    ".html": "html",
    ".htm": "html",
    ".txt": "rich",
}

# Audit kinds. Every one keeps its result out of the ranking; a missing seed is a result that is
# not there, and a copy repeats a result that is counted once.
AUDIT_KINDS = {
    "failed": "the job failed",
    "budget": "over the budget",
    "sparsity": "achieved sparsity off the target beyond the protocol's tolerance",
    "violation": "marked a violation by the runner",
    "base_checkpoint": "started from another dense checkpoint than the other results of its seed",
    "method_variant": "another method version or configuration under the same label",
    "duplicate": "conflicting results of one job (none is ranked)",
    "copy": "a copy of a result that is counted once",
    "incomplete_record": "a result without the measurements a ranking needs",
    "missing_seed": "no result for a seed of the protocol",
}

TIED_DEFINITION = (
    "Ranks: methods sorted by mean test top-1; a method is tied with the one ranked just above when the 95% "
    "t-interval of their paired per-seed difference contains 0, and then shares its rank (=); with fewer than "
    "2 shared seeds the difference cannot be tested (n/a) and the rank is shared too."
)
CAPTION = (
    "Test top-1 %: mean ± std over seeds, 95% t-interval of the mean, n seeds. Δ dense: difference to the dense "
    "base model, paired by seed over the shared dense checkpoints (percentage points, 95% t-interval). "
    + TIED_DEFINITION
    + " Results with fairness problems are not ranked: they are listed in the audit."
)


# ---- loading ------------------------------------------------------------------------------------
class ResultSummary(BaseSummary):
    """A result record read without its curves (an unknown top-level key, such as `curves`, is skipped)."""

    model_config = ConfigDict(extra="ignore")


AnyRecord = ResultRecord | ResultSummary


@dataclass(frozen=True)
class Loaded:
    path: Path
    record: AnyRecord


def _walk(root: Path) -> list[Path]:
    """The result files under a directory, sorted (os.walk: several times faster than rglob)."""
    out = []
    for directory, subdirs, names in os.walk(root):
        subdirs.sort()
        out.extend(Path(directory, n) for n in names if n.endswith(".json") and n != "protocol.json")
    out.sort()
    return out


def result_files(paths: Sequence[Path]) -> list[Path]:
    """The result files under the given files and directories (the rule of `iter_results`),
    each once even when two arguments overlap."""
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


@contextmanager
def _no_gc() -> Iterator[None]:
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
    same message `iter_results` gives.
    """
    model: type[BaseModel] = ResultRecord if curves else ResultSummary
    out: list[Loaded] = []
    with _no_gc():
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
            out.append(Loaded(file, record))  # type: ignore[arg-type]
    return out


# ---- protocols ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProtocolInfo:
    """A protocol as the results know it: the hash in the records and, when the run directory
    holds the runner's protocol.json, the content that hash covers (Protocol.hashed_content)."""

    name: str
    hash: str
    setup_hash: str
    content: dict[str, Any] | None

    @property
    def seeds(self) -> list[int]:
        return list(self.content.get("seeds", [])) if self.content else []

    @property
    def sparsities(self) -> list[float]:
        return list(self.content.get("pruning", {}).get("sparsities", [])) if self.content else []

    @property
    def methods(self) -> list[str]:
        if not self.content:
            return []
        return [m.get("label") or m["name"] for m in self.content.get("methods", [])]


def _hashed(content: dict[str, Any]) -> dict[str, Any] | None:
    """The part of a protocol dump that its hash covers, by the protocol's own rules
    (Protocol.hashed_content); None when the dump is not a valid protocol of this version."""
    try:
        return Protocol.model_validate(content).hashed_content()
    except (ValidationError, ValueError, TypeError):
        return None


def setup_hash(content: dict[str, Any]) -> str:
    """The hash of everything a protocol fixes except its list of methods.

    The protocol hash covers the method list, so adding a method to a protocol changes it; yet the
    results of the other methods stay comparable (same data, model, base training, pruning rules,
    retraining, budget, setup and seeds). Leaderboards and the check group by this hash; a
    method's own configuration is audited per result instead (see "method_variant"). Analyses are
    left out too: they never change what is trained, so runs with and without them compare. So are
    retraining variants: they add jobs beside the protocol's own, whose results they leave as they were
    (each variant's results get a board of their own, prunebench.variant_report).
    """
    hashed = {k: v for k, v in content.items() if k not in ("methods", "analyses", "variants")}
    return content_hash(hashed)


class ProtocolIndex:
    """Finds the protocol.json the runner writes into each run directory, once per directory."""

    def __init__(self) -> None:
        self._by_dir: dict[Path, dict[str, Any] | None] = {}
        self._infos: dict[tuple[str, str, Path], ProtocolInfo] = {}
        self._setups: dict[tuple[str, str], ProtocolInfo] = {}
        self._by_hash: dict[str, dict[str, Any]] = {}

    def _read(self, directory: Path) -> dict[str, Any] | None:
        if directory not in self._by_dir:
            blob: dict[str, Any] | None = None
            path = directory / "protocol.json"
            if path.is_file():
                try:
                    raw = json.loads(path.read_text(encoding="utf-8"))
                    hashed = _hashed(raw["protocol"])
                    # Trusted only when its content has the hash it claims (same content, same hashing rules).
                    if hashed is not None and content_hash(hashed) == raw["hash"]:
                        blob = {"hash": raw["hash"], "protocol": hashed}
                except (OSError, ValueError, KeyError, TypeError):
                    blob = None
            self._by_dir[directory] = blob
            if blob is not None:
                self._by_hash.setdefault(blob["hash"], blob["protocol"])
        return self._by_dir[directory]

    def info(self, ref: ProtocolRef, file: Path) -> ProtocolInfo:
        key = (ref.name, ref.hash, file.parent)
        if key not in self._infos:
            found: dict[str, Any] | None = None
            directory = file.parent
            for _ in range(3):  # run_dir/<method>/<job>.json, or flatter copies
                blob = self._read(directory)
                if blob is not None and blob["hash"] == ref.hash:
                    found = blob["protocol"]
                    break
                directory = directory.parent
            self._infos[key] = ProtocolInfo(
                name=ref.name,
                hash=ref.hash,
                setup_hash=setup_hash(found) if found is not None else ref.hash,
                content=found,
            )
            info = self._infos[key]
            if info.content is not None or (ref.name, info.setup_hash) not in self._setups:
                self._setups[(ref.name, info.setup_hash)] = info
        return self._infos[key]

    def resolve(self, info: ProtocolInfo) -> ProtocolInfo:
        """A record copied away from its run directory: the content of its protocol hash, when a
        protocol.json with that hash was found anywhere else."""
        if info.content is not None or info.hash not in self._by_hash:
            return info
        content = self._by_hash[info.hash]
        resolved = ProtocolInfo(info.name, info.hash, setup_hash(content), content)
        self._setups.setdefault((info.name, resolved.setup_hash), resolved)
        return resolved

    def by_setup(self, name: str, setup: str) -> ProtocolInfo:
        """A protocol seen with this setup hash (its content, when a protocol.json was found)."""
        return self._setups.get((name, setup)) or ProtocolInfo(name, setup, setup, None)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def describe_differences(a: ProtocolInfo, b: ProtocolInfo, limit: int = 8) -> str:
    """How two protocols differ, field by field (the method lists and analyses aside)."""
    if a.content is None or b.content is None:
        return "the protocol.json of a run directory is missing, so which fields differ is unknown"
    fa, fb = _flatten(a.content), _flatten(b.content)
    diffs = [
        f"{k}: {fa.get(k, '(absent)')!r} vs {fb.get(k, '(absent)')!r}"
        for k in sorted(fa.keys() | fb.keys())
        if not k.startswith(("methods", "analyses", "variants")) and fa.get(k) != fb.get(k)
    ]
    if not diffs:
        return "only their method lists differ"
    more = f" (and {len(diffs) - limit} more)" if len(diffs) > limit else ""
    return "; ".join(diffs[:limit]) + more


# ---- statistics ---------------------------------------------------------------------------------
def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    # scipy.special is the backend of scipy.stats.t and imports in a fraction of the time.
    return float(special.stdtrit(df, 0.5 + confidence / 2))


@dataclass(frozen=True)
class Estimate:
    """Mean of n values with its standard deviation and t-interval (None where n is too small)."""

    n: int
    mean: float | None
    std: float | None
    low: float | None
    high: float | None

    def contains_zero(self) -> bool | None:
        if self.low is None or self.high is None:
            return None
        return self.low <= 0.0 <= self.high


def estimate(values: Sequence[float], confidence: float = CONFIDENCE) -> Estimate:
    n = len(values)
    if n == 0:
        return Estimate(0, None, None, None, None)
    mean = math.fsum(values) / n
    if n < 2:
        return Estimate(1, mean, None, None, None)  # one seed has no spread: say so rather than invent one
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(n - 1, confidence) * std / math.sqrt(n)
    return Estimate(n, mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class Paired(Estimate):
    """Mean per-seed difference a - b over the seeds both have, with a paired t-test."""

    p: float | None = None
    seeds: tuple[int, ...] = ()


def paired_difference(a: Mapping[int, float], b: Mapping[int, float], confidence: float = CONFIDENCE) -> Paired:
    seeds = tuple(sorted(a.keys() & b.keys()))
    est = estimate([a[s] - b[s] for s in seeds], confidence)
    p: float | None = None
    if est.n >= 2 and est.std is not None and est.mean is not None:
        if est.std == 0.0:
            p = 1.0 if est.mean == 0.0 else 0.0
        else:
            t = est.mean / (est.std / math.sqrt(est.n))
            p = float(2 * special.stdtr(est.n - 1, -abs(t)))
    return Paired(est.n, est.mean, est.std, est.low, est.high, p, seeds)


# ---- the audit ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Issue:
    protocol: str
    setup_hash: str
    method: str | None
    sparsity: float | None
    seed: int | None
    kind: str
    reason: str
    file: str | None

    @property
    def excludes(self) -> bool:
        return self.kind != "missing_seed"

    def short(self) -> str:
        seed = f"seed {self.seed}: " if self.seed is not None else ""
        return f"{seed}{self.kind}: {self.reason}"


def target_of(record: AnyRecord) -> float | None:
    """The job's target sparsity (recorded also for failed jobs, which have no sparsity record)."""
    return record.target_sparsity


@dataclass
class Entry:
    path: Path
    record: AnyRecord
    info: ProtocolInfo
    target: float | None
    issues: list[Issue] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.record.method.label

    @property
    def clean(self) -> bool:
        return self.record.status == "ok" and not any(i.excludes for i in self.issues)


def _record_issues(e: Entry, protocol: str, setup: str) -> list[Issue]:
    """The fairness rules a single record breaks, derived from its measurements (not only from
    its status: a hand-edited or older record marked ok is audited all the same)."""
    r = e.record

    def issue(kind: str, reason: str) -> Issue:
        return Issue(protocol, setup, r.method.label, e.target, r.seed, kind, reason, str(e.path))

    if r.status == "failed":
        return [issue("failed", "; ".join(r.reasons) or "failed (no reason recorded)")]
    out: list[Issue] = []
    explained: set[str] = set()
    if r.budget is not None:
        for v in r.budget.violations:
            out.append(issue("budget", v))
            explained.add(v)
    if r.sparsity is not None and abs(r.sparsity.achieved - r.sparsity.target) > r.sparsity.tolerance + EPS:
        out.append(
            issue(
                "sparsity",
                f"achieved {r.sparsity.achieved:.4f}, target {r.sparsity.target:g}, tolerance {r.sparsity.tolerance:g}",
            )
        )
        explained.update(x for x in r.reasons if "sparsity" in x)
    missing = [n for n in ("metrics", "sparsity", "base", "cost", "budget") if getattr(r, n) is None]
    if missing:
        out.append(issue("incomplete_record", f"no {', '.join(missing)} in the record"))
    if r.status == "violation":
        rest = [x for x in r.reasons if x not in explained]
        if rest or not out:
            out.append(issue("violation", "; ".join(rest) or "marked a violation (no reason recorded)"))
    return out


def _majority(counts: Counter[Any]) -> Any | None:
    """The most common value, or None when two values tie for it."""
    top = counts.most_common(2)
    if not top or (len(top) == 2 and top[0][1] == top[1][1]):
        return None
    return top[0][0]


def _audit_duplicates(entries: list[Entry], protocol: str, setup: str) -> None:
    jobs: dict[tuple[str, float | None, int], list[Entry]] = defaultdict(list)
    for e in entries:
        jobs[(e.label, e.target, e.record.seed)].append(e)
    for same in jobs.values():
        if len(same) < 2:
            continue
        same.sort(key=lambda e: str(e.path))

        def outcome(e: Entry) -> tuple[Any, ...]:
            m = e.record.metrics
            return (
                e.record.status,
                m.test_top1 if m else None,
                e.record.base.checkpoint_sha256 if e.record.base else None,
            )

        first = same[0]
        if all(outcome(e) == outcome(first) for e in same):
            # Copies of one result: counted once, and the copies are named.
            for e in same[1:]:
                e.issues.append(
                    Issue(
                        protocol,
                        setup,
                        e.label,
                        e.target,
                        e.record.seed,
                        "copy",
                        f"same result as {first.path}; counted once",
                        str(e.path),
                    )
                )
        else:
            files = ", ".join(str(e.path) for e in same)
            for e in same:
                e.issues.append(
                    Issue(
                        protocol,
                        setup,
                        e.label,
                        e.target,
                        e.record.seed,
                        "duplicate",
                        f"conflicting results of one job: {files}",
                        str(e.path),
                    )
                )


def _variant(r: AnyRecord) -> tuple[str, str, str]:
    return (r.method.name, r.method.version, json.dumps(r.method.config, sort_keys=True))


def _audit_variants(entries: list[Entry], protocol: str, setup: str) -> None:
    by_label: dict[str, list[Entry]] = defaultdict(list)
    for e in entries:
        by_label[e.label].append(e)
    for label, group in by_label.items():
        counts = Counter(_variant(e.record) for e in group)
        if len(counts) < 2:
            continue
        winner = _majority(counts)
        for e in group:
            v = _variant(e.record)
            if v == winner:
                continue
            name, version, config = v
            why = f"ran {name} {version} with config {config}; the other results of {label!r} ran " + (
                f"{winner[0]} {winner[1]} with config {winner[2]}" if winner else "other versions or configs"
            )
            e.issues.append(Issue(protocol, setup, label, e.target, e.record.seed, "method_variant", why, str(e.path)))


def _audit_bases(entries: list[Entry], protocol: str, setup: str) -> dict[int, tuple[str, float]]:
    """Per seed, the dense checkpoint most results started from; the others are flagged.
    Returns each seed's agreed checkpoint and its test top-1."""
    by_seed: dict[int, list[Entry]] = defaultdict(list)
    for e in entries:
        if e.record.base is not None:
            by_seed[e.record.seed].append(e)
    agreed: dict[int, tuple[str, float]] = {}
    for seed, group in sorted(by_seed.items()):
        counts = Counter(e.record.base.checkpoint_sha256 for e in group)  # type: ignore[union-attr]
        winner = _majority(counts)
        if winner is not None:
            agreed[seed] = (
                winner,
                next(e.record.base.test_top1 for e in group if e.record.base.checkpoint_sha256 == winner),
            )  # type: ignore[union-attr]
        for e in group:
            sha = e.record.base.checkpoint_sha256  # type: ignore[union-attr]
            if sha == winner:
                continue
            if winner is None:
                seen = ", ".join(f"{h[:12]} ({n})" for h, n in counts.most_common())
                why = f"seed {seed} has dense checkpoints {seen} and none is the majority"
            else:
                why = f"dense checkpoint {sha[:12]} differs from the other results of seed {seed} ({winner[:12]})"
            e.issues.append(Issue(protocol, setup, e.label, e.target, seed, "base_checkpoint", why, str(e.path)))
    return agreed


# ---- leaderboard rows ---------------------------------------------------------------------------
@dataclass
class Row:
    """One row of a leaderboard: every column, for JSON, CSV and pandas."""

    protocol: str
    setup_hash: str
    protocol_hashes: list[str]
    mixed_protocols: bool
    kind: Literal["dense", "method"]
    method: str
    method_name: str | None = None
    method_version: str | None = None
    sparsity_target: float | None = None
    rank: int | None = None
    rank_shared: bool = False
    vs_above_method: str | None = None
    vs_above_verdict: Literal["tied", "lower", "n/a"] | None = None
    vs_above_delta: float | None = None
    vs_above_ci_low: float | None = None
    vs_above_ci_high: float | None = None
    vs_above_p: float | None = None
    vs_above_n: int | None = None
    n_seeds: int = 0
    seeds: list[int] = field(default_factory=list)
    expected_seeds: list[int] = field(default_factory=list)
    missing_seeds: list[int] = field(default_factory=list)
    top1_mean: float | None = None
    top1_std: float | None = None
    top1_ci_low: float | None = None
    top1_ci_high: float | None = None
    top5_mean: float | None = None
    dense_top1_mean: float | None = None
    delta_dense_mean: float | None = None
    delta_dense_std: float | None = None
    delta_dense_ci_low: float | None = None
    delta_dense_ci_high: float | None = None
    delta_dense_p: float | None = None
    achieved_sparsity_mean: float | None = None
    achieved_sparsity_min: float | None = None
    achieved_sparsity_max: float | None = None
    sparsity_tolerance: float | None = None
    params_dense: float | None = None
    params_effective: float | None = None
    params_reduction: float | None = None
    compression: float | None = None
    flops_dense: float | None = None
    flops_effective: float | None = None
    flops_reduction: float | None = None
    flops_speedup: float | None = None
    pruning_epochs: float | None = None
    pruning_epochs_limit: float | None = None
    retrain_epochs: float | None = None
    retrain_epochs_limit: float | None = None
    total_epochs: float | None = None
    total_epochs_limit: float | None = None
    train_flops: float | None = None
    train_flops_limit: float | None = None
    budget_used: float | None = None
    budget_stated_by: str | None = None
    retraining_regime: str | None = None
    optimizer: str | None = None
    lr: float | None = None
    lr_schedule: str | None = None
    comparison: str | None = None
    status: str = "ok"
    n_issues: int = 0
    issues: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    # Retraining variants (docs/analyses.md): the board's variant, `selected` on a validation-selected board.
    retrain_variant: str | None = None
    selected_variant: str | None = None  # the candidate chosen for this row, on validation top-1 only
    selection: list[str] = field(default_factory=list)  # each candidate's mean validation top-1 %, as chosen on


COLUMNS = [f.name for f in fields(Row)]


@dataclass
class Leaderboard:
    protocol: str
    setup_hash: str
    protocol_hashes: list[str]
    mixed: bool
    expected_seeds: list[int]
    rows: list[Row]
    issues: list[Issue]
    notes: list[str] = field(default_factory=list)
    dense_checkpoints: dict[int, str] = field(default_factory=dict)  # per seed, the one most results share
    variant: str | None = None  # a retraining variant's board (None: the protocol's own recipe)
    variant_title: str | None = None  # what the variant is, for the title

    @property
    def dense(self) -> Row | None:
        return next((r for r in self.rows if r.kind == "dense"), None)

    @property
    def title(self) -> str:
        hashes = ", ".join(h[:10] for h in self.protocol_hashes)
        which = f" -- RETRAINING VARIANT {self.variant_title or self.variant}" if self.variant else ""
        if self.mixed:
            return (
                f"{self.protocol}: MIXED PROTOCOLS (hashes {hashes}), ranked together on request (--mix-protocols)"
                + which
            )
        plural = "es" if len(self.protocol_hashes) > 1 else ""
        return f"{self.protocol} (setup {self.setup_hash[:10]}; protocol hash{plural} {hashes})" + which


@dataclass
class Comparison:
    boards: list[Leaderboard]
    notices: list[str]
    files: int

    @property
    def issues(self) -> list[Issue]:
        return [i for b in self.boards for i in b.issues]


def _mean(values: Iterable[float]) -> float | None:
    vals = list(values)
    return math.fsum(vals) / len(vals) if vals else None


def _schedule(r: AnyRecord) -> str:
    s = r.retraining.schedule
    name = str(s.get("name", "?"))
    extra = []
    if s.get("milestones"):
        extra.append(f"milestones {s['milestones']}")
    if s.get("step_size"):
        extra.append(f"every {s['step_size']}")
    if name in ("step", "multistep") and s.get("gamma") is not None:
        extra.append(f"gamma {s['gamma']:g}")
    if s.get("warmup_epochs"):
        extra.append(f"warmup {s['warmup_epochs']:g}")
    return name + (f" ({', '.join(extra)})" if extra else "")


def _fill_measurements(row: Row, clean: list[Entry]) -> None:
    recs = [e.record for e in clean]
    sp = [r.sparsity for r in recs if r.sparsity is not None]
    if sp:
        row.achieved_sparsity_mean = _mean(s.achieved for s in sp)
        row.achieved_sparsity_min = min(s.achieved for s in sp)
        row.achieved_sparsity_max = max(s.achieved for s in sp)
        row.sparsity_tolerance = sp[0].tolerance
    costs = [r.cost for r in recs if r.cost is not None]
    if costs:
        row.params_dense = _mean(float(c.params_dense) for c in costs)
        row.params_effective = _mean(float(c.params_effective) for c in costs)
        row.flops_dense = _mean(c.flops_dense for c in costs)
        row.flops_effective = _mean(c.flops_effective for c in costs)
        if row.params_dense and row.params_effective is not None:
            row.params_reduction = 1.0 - row.params_effective / row.params_dense
            row.compression = row.params_dense / row.params_effective if row.params_effective else None
        if row.flops_dense and row.flops_effective is not None:
            row.flops_reduction = 1.0 - row.flops_effective / row.flops_dense
            row.flops_speedup = row.flops_dense / row.flops_effective if row.flops_effective else None
    # What the comparison setups count: pruning plus retraining (Ledger.after_base, summed inline).
    row.pruning_epochs = _mean(r.ledger.pruning.epochs for r in recs)
    row.retrain_epochs = _mean(r.ledger.retrain.epochs for r in recs)
    row.total_epochs = _mean(r.ledger.pruning.epochs + r.ledger.retrain.epochs for r in recs)
    row.train_flops = _mean(
        r.ledger.pruning.train_flops
        + r.ledger.pruning.forward_flops
        + r.ledger.retrain.train_flops
        + r.ledger.retrain.forward_flops
        for r in recs
    )
    budgets = [r.budget for r in recs if r.budget is not None]
    if budgets:
        limits = budgets[0].limits
        row.pruning_epochs_limit = limits.get("pruning_epochs")
        row.retrain_epochs_limit = limits.get("retrain_epochs")
        row.total_epochs_limit = limits.get("total_epochs")
        row.train_flops_limit = limits.get("total_train_flops")
        row.budget_stated_by = ",".join(sorted({b.stated_by for b in budgets}))
        if row.train_flops is not None and row.train_flops_limit:
            row.budget_used = row.train_flops / row.train_flops_limit
    first = recs[0]
    row.retraining_regime = ",".join(sorted({r.retraining.regime for r in recs}))
    row.optimizer = str(first.retraining.optimizer.get("name", "?"))
    lr = first.retraining.optimizer.get("lr")
    row.lr = float(lr) if isinstance(lr, int | float) else None
    row.lr_schedule = ",".join(sorted({_schedule(r) for r in recs}))
    row.comparison = ",".join(sorted({r.protocol.comparison for r in recs}))
    row.method_name = first.method.name
    row.method_version = first.method.version


def _rank(rows: list[Row], accuracy: dict[str, dict[int, float]]) -> None:
    """Sort by mean and share ranks where a method is tied with the one just above it."""
    ranked = sorted((r for r in rows if r.n_seeds > 0), key=lambda r: (-(r.top1_mean or 0.0), r.method))
    for i, row in enumerate(ranked):
        if i == 0:
            row.rank = 1
            continue
        above = ranked[i - 1]
        diff = paired_difference(accuracy[row.method], accuracy[above.method])
        row.vs_above_method = above.method
        row.vs_above_n = diff.n
        row.vs_above_delta = diff.mean
        row.vs_above_ci_low, row.vs_above_ci_high, row.vs_above_p = diff.low, diff.high, diff.p
        zero = diff.contains_zero()
        row.vs_above_verdict = "n/a" if zero is None else ("tied" if zero else "lower")
        row.rank = above.rank if row.vs_above_verdict in ("tied", "n/a") else i + 1
    counts = Counter(r.rank for r in ranked)
    for r in ranked:
        r.rank_shared = counts[r.rank] > 1


def _board(
    name: str,
    setup: str,
    entries: list[Entry],
    mixed: bool,
    methods: Sequence[str] | None,
    sparsities: Sequence[float] | None,
    declared: Sequence[str] | None = None,
) -> Leaderboard:
    """One leaderboard of the entries; `declared`: the method labels expected (default: the protocol's)."""
    infos = {e.info.hash: e.info for e in entries}
    hashes = sorted(infos)
    for e in entries:
        e.issues = _record_issues(e, name, setup)
    _audit_duplicates(entries, name, setup)
    _audit_variants(entries, name, setup)
    agreed = _audit_bases(entries, name, setup)

    declared_seeds = sorted({s for i in infos.values() for s in i.seeds})
    expected_seeds = declared_seeds or sorted({e.record.seed for e in entries})
    expected = list(declared) if declared is not None else [m for i in infos.values() for m in i.methods]
    labels = list(dict.fromkeys(expected + sorted({e.label for e in entries})))
    targets = sorted(
        {s for i in infos.values() for s in i.sparsities} | {e.target for e in entries if e.target is not None}
    )
    if methods:
        labels = [m for m in labels if m in methods]
    if sparsities:
        targets = [t for t in targets if any(abs(t - s) < EPS for s in sparsities)]

    cells: dict[tuple[str, float], list[Entry]] = defaultdict(list)
    loose: list[Issue] = []
    for e in entries:
        if e.target is None:
            loose.extend(e.issues)  # a result we cannot place in a row is still shown in the audit
        else:
            cells[(e.label, e.target)].append(e)

    rows: list[Row] = []
    issues: list[Issue] = list(loose)
    accuracy_by_target: dict[float, dict[str, dict[int, float]]] = defaultdict(dict)
    for target in targets:
        for label in labels:
            group = cells.get((label, target), [])
            if not group and label not in expected:
                continue  # a method that neither ran at this sparsity nor was declared for it
            row_issues = [i for e in group for i in e.issues]
            present = {e.record.seed for e in group}
            missing = [s for s in expected_seeds if s not in present]
            if group:
                for s in missing:
                    row_issues.append(Issue(name, setup, label, target, s, "missing_seed", "no result file", None))
            elif missing:  # a declared method without any result here: one line, not one per seed
                seeds = ", ".join(map(str, missing))
                why = f"no result file for any seed ({seeds})"
                row_issues.append(Issue(name, setup, label, target, None, "missing_seed", why, None))
            clean = sorted((e for e in group if e.clean), key=lambda e: e.record.seed)
            row = Row(
                protocol=name,
                setup_hash=setup,
                protocol_hashes=sorted({e.info.hash for e in group}) or hashes,
                mixed_protocols=mixed,
                kind="method",
                method=label,
                sparsity_target=target,
                expected_seeds=expected_seeds,
                missing_seeds=missing,
                files=[str(e.path) for e in group],
            )
            acc = {e.record.seed: e.record.metrics.test_top1 for e in clean}  # type: ignore[union-attr]
            est = estimate([acc[s] for s in sorted(acc)])
            row.n_seeds, row.seeds = est.n, sorted(acc)
            row.top1_mean, row.top1_std, row.top1_ci_low, row.top1_ci_high = est.mean, est.std, est.low, est.high
            if clean:
                top5 = [e.record.metrics.test_top5 for e in clean if e.record.metrics.test_top5 is not None]  # type: ignore[union-attr]
                row.top5_mean = _mean(t for t in top5 if t is not None)
                dense = {e.record.seed: e.record.base.test_top1 for e in clean}  # type: ignore[union-attr]
                row.dense_top1_mean = _mean(dense[s] for s in sorted(dense))
                d = paired_difference(acc, dense)
                row.delta_dense_mean, row.delta_dense_std = d.mean, d.std
                row.delta_dense_ci_low, row.delta_dense_ci_high, row.delta_dense_p = d.low, d.high, d.p
                _fill_measurements(row, clean)
                accuracy_by_target[target][label] = acc
            elif group:
                row.method_name, row.method_version = group[0].record.method.name, group[0].record.method.version
            row.issues = [i.short() for i in row_issues]
            row.n_issues = len(row_issues)
            if not group:
                row.status = "missing (no results)"
            elif not clean:
                row.status = "excluded (see audit)"
            elif set(acc) != set(expected_seeds):
                row.status = f"incomplete ({len(acc)}/{len(expected_seeds)} seeds)"
            elif row_issues:
                row.status = "ok (see audit)"
            issues.extend(row_issues)
            rows.append(row)
        _rank([r for r in rows if r.sparsity_target == target], accuracy_by_target[target])

    dense_acc = {s: acc for s, (_, acc) in sorted(agreed.items())}
    dense_est = estimate(list(dense_acc.values()))
    dense_row = Row(
        protocol=name,
        setup_hash=setup,
        protocol_hashes=hashes,
        mixed_protocols=mixed,
        kind="dense",
        method="dense base model",
        n_seeds=dense_est.n,
        seeds=sorted(dense_acc),
        expected_seeds=expected_seeds,
        missing_seeds=[s for s in expected_seeds if s not in dense_acc],
        top1_mean=dense_est.mean,
        top1_std=dense_est.std,
        top1_ci_low=dense_est.low,
        top1_ci_high=dense_est.high,
        dense_top1_mean=dense_est.mean,
        achieved_sparsity_mean=0.0,
        status="ok" if dense_acc else "missing (no results)",
    )
    rows.sort(key=lambda r: (r.sparsity_target, r.rank is None, r.rank or 0, -(r.top1_mean or 0.0), r.method))
    notes = []
    if mixed:
        notes.append(
            f"MIXED PROTOCOLS: {len(hashes)} protocol hashes are ranked together on request (--mix-protocols); "
            "their numbers may not be comparable."
        )
    if len(hashes) > 1 and not mixed:
        notes.append(
            f"protocol hashes {', '.join(h[:10] for h in hashes)} differ only in their method lists; their "
            "results share one setup and are ranked together"
        )
    return Leaderboard(
        protocol=name,
        setup_hash=setup,
        protocol_hashes=hashes,
        mixed=mixed,
        expected_seeds=expected_seeds,
        rows=[dense_row, *rows],
        issues=issues,
        notes=notes,
        dense_checkpoints={s: sha for s, (sha, _) in sorted(agreed.items())},
    )


def compare(
    loaded: Sequence[Loaded],
    *,
    mix_protocols: bool = False,
    protocols: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    sparsities: Sequence[float] | None = None,
    index: ProtocolIndex | None = None,
) -> Comparison:
    """Group the records by protocol and build one leaderboard per group.

    Results of one protocol name but another setup (another hash, beyond the method list) are
    never ranked together: each gets its own table and a notice says how the protocols differ.
    With mix_protocols they are ranked together and the table is marked.
    """
    with _no_gc():
        return _compare(loaded, mix_protocols, protocols, methods, sparsities, index or ProtocolIndex())


def _compare(
    loaded: Sequence[Loaded],
    mix_protocols: bool,
    protocols: Sequence[str] | None,
    methods: Sequence[str] | None,
    sparsities: Sequence[float] | None,
    index: ProtocolIndex,
) -> Comparison:
    selected: list[Entry] = []
    for item in loaded:
        r = item.record
        if protocols and r.protocol.name not in protocols:
            continue
        if methods and r.method.label not in methods:
            continue
        entry = Entry(item.path, r, index.info(r.protocol, item.path), target_of(r))
        if sparsities and not (entry.target is not None and any(abs(entry.target - s) < EPS for s in sparsities)):
            continue
        selected.append(entry)
    groups: dict[tuple[str, str], list[Entry]] = defaultdict(list)
    infos_by_name: dict[str, dict[str, ProtocolInfo]] = defaultdict(dict)
    for entry in selected:  # a second pass: every protocol.json has been seen by now
        entry.info = index.resolve(entry.info)
        name = entry.record.protocol.name
        infos_by_name[name].setdefault(entry.info.setup_hash, entry.info)
        groups[(name, "*" if mix_protocols else entry.info.setup_hash)].append(entry)

    notices = []
    for name, setups in sorted(infos_by_name.items()):
        if len(setups) < 2:
            continue
        infos = list(setups.values())
        counts = Counter(e.info.setup_hash for (n, _), es in groups.items() if n == name for e in es)
        listing = ", ".join(f"{i.setup_hash[:10]} ({counts[i.setup_hash]} results)" for i in infos)
        how = "; ".join(
            f"{a.setup_hash[:10]} vs {b.setup_hash[:10]}: {describe_differences(a, b)}"
            for a, b in itertools.pairwise(infos)
        )
        if mix_protocols:
            notices.append(f"protocol {name!r}: setups {listing} are ranked together on request; they differ in {how}")
        else:
            notices.append(
                f"protocol {name!r}: results come from {len(infos)} different setups ({listing}); they are not ranked "
                f"together but shown as separate tables. They differ in {how}. --mix-protocols ranks them together "
                "in a table marked as mixed."
            )

    boards = []
    for (name, setup), group in sorted(groups.items()):
        mixed = False
        if setup == "*":
            setups = Counter(e.info.setup_hash for e in group)
            setup, mixed = (setups.most_common(1)[0][0], False) if len(setups) == 1 else ("mixed", True)
        # Results of retraining variants get boards of their own; the protocol's board is built as ever.
        entries = [e for e in group if e.record.variant is None]
        if entries:
            boards.append(_board(name, setup, entries, mixed, methods, sparsities))
        if len(entries) < len(group) or any(e.info.content and "variants" in e.info.content for e in group):
            from prunebench.variant_report import variant_boards

            more_boards, more_notices = variant_boards(name, setup, group, mixed, methods, sparsities)
            boards.extend(more_boards)
            notices.extend(more_notices)
    return Comparison(boards=boards, notices=notices, files=len(loaded))


# ---- human-readable cells -----------------------------------------------------------------------
def _pct(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}"


def _signed_pp(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.2f}"


def _interval(low: float | None, high: float | None, signed: bool = False) -> str:
    if low is None or high is None:
        return "n/a"
    f = _signed_pp if signed else _pct
    return f"[{f(low)}, {f(high)}]"


def _times(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}x"


def _budget_cell(r: Row) -> str:
    if r.kind == "dense" or r.total_epochs is None:
        return "-"
    parts = []
    if r.pruning_epochs_limit is not None:
        parts.append(f"prune {r.pruning_epochs:.3g}/{r.pruning_epochs_limit:.3g} ep")
    if r.retrain_epochs_limit is not None:
        parts.append(f"retrain {r.retrain_epochs:.3g}/{r.retrain_epochs_limit:.3g} ep")
    if r.budget_used is not None:
        parts.append(f"FLOPs {100 * r.budget_used:.0f}%")
    if r.budget_stated_by and r.budget_stated_by != "protocol":
        parts.append(f"budget stated by {r.budget_stated_by}")
    return ", ".join(parts) or "-"


def _rank_cell(r: Row) -> str:
    if r.rank is None:
        return "-"
    return f"={r.rank}" if r.rank_shared else str(r.rank)


def _vs_above_cell(r: Row) -> str:
    if r.vs_above_verdict is None:
        return "-"
    if r.vs_above_verdict == "n/a":
        return f"n/a ({r.vs_above_n} shared seed{'s' if r.vs_above_n != 1 else ''})"
    return (
        f"{r.vs_above_verdict} {_signed_pp(r.vs_above_delta)} {_interval(r.vs_above_ci_low, r.vs_above_ci_high, True)}"
    )


HUMAN_HEADERS = [
    "rank",
    "method",
    "sparsity",
    "top-1 %",
    "95% CI",
    "n",
    "Δ dense (pp)",
    "vs above (pp)",
    "achieved",
    "FLOPs",
    "params",
    "budget",
    "retraining",
    "setup",
    "status",
]


def human_cells(r: Row) -> list[str]:
    top1 = "n/a" if r.top1_mean is None else f"{_pct(r.top1_mean)} ± {_pct(r.top1_std)}"
    delta = (
        "-"
        if r.kind == "dense"
        else f"{_signed_pp(r.delta_dense_mean)} {_interval(r.delta_dense_ci_low, r.delta_dense_ci_high, True)}"
    )
    retraining = "-"
    if r.retraining_regime is not None:
        lr = f" lr {r.lr:g}" if r.lr is not None else ""
        retraining = f"{r.retraining_regime}; {r.optimizer}{lr} {r.lr_schedule}"
    method = r.method
    if r.selected_variant is not None:
        method += f" [val-selected: {r.selected_variant}]"
    elif r.retrain_variant is not None and r.kind == "method":
        method += f" [{r.retrain_variant}]"
    return [
        _rank_cell(r),
        method,
        "0" if r.kind == "dense" else f"{r.sparsity_target:g}",
        top1,
        _interval(r.top1_ci_low, r.top1_ci_high),
        f"{r.n_seeds}/{len(r.expected_seeds)}",
        delta,
        _vs_above_cell(r),
        "-" if r.achieved_sparsity_mean is None else f"{r.achieved_sparsity_mean:.4f}",
        "-" if r.kind == "dense" else _times(r.flops_speedup),
        "-" if r.kind == "dense" else _times(r.compression),
        _budget_cell(r),
        retraining,
        r.comparison or "-",
        r.status,
    ]


AUDIT_HEADERS = ["kind", "method", "sparsity", "seed", "reason", "file"]


def audit_cells(i: Issue) -> list[str]:
    return [
        i.kind,
        i.method or "-",
        "-" if i.sparsity is None else f"{i.sparsity:g}",
        "-" if i.seed is None else str(i.seed),
        i.reason,
        i.file or "-",
    ]


# ---- export formats -----------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def row_dict(r: Row) -> dict[str, Any]:
    return {k: _plain(v) for k, v in asdict(r).items()}


def to_json(c: Comparison) -> str:
    """Every column of every row, the audit and what each table is; `pd.DataFrame(doc["rows"])`."""
    doc = {
        "prunebench_leaderboard": 1,
        "confidence": CONFIDENCE,
        "definitions": {"caption": CAPTION, "tied": TIED_DEFINITION, "audit_kinds": AUDIT_KINDS},
        "notices": c.notices,
        "tables": [
            {
                "protocol": b.protocol,
                "setup_hash": b.setup_hash,
                "protocol_hashes": b.protocol_hashes,
                "mixed_protocols": b.mixed,
                "retrain_variant": b.variant,
                "expected_seeds": b.expected_seeds,
                "title": b.title,
                "notes": b.notes,
                "dense_checkpoints": {str(k): v for k, v in b.dense_checkpoints.items()},
                "n_issues": len(b.issues),
            }
            for b in c.boards
        ],
        "rows": [row_dict(r) for b in c.boards for r in b.rows],
        "audit": [asdict(i) for b in c.boards for i in b.issues],
    }
    return json.dumps(doc, indent=1, allow_nan=False) + "\n"


def to_csv(c: Comparison) -> str:
    """One line per row with every column (lists joined by ' | '), for pandas.read_csv."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for b in c.boards:
        for r in b.rows:
            writer.writerow(
                {
                    k: (" | ".join(map(str, v)) if isinstance(v, list) else ("" if v is None else v))
                    for k, v in row_dict(r).items()
                }
            )
    return buffer.getvalue()


def _md_escape(text: str) -> str:
    # "|" would end the cell, "<" could open an HTML tag on GitHub.
    return text.replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def to_markdown(c: Comparison) -> str:
    lines: list[str] = []
    for notice in c.notices:
        lines += [f"> **Note:** {_md_escape(notice)}", ""]
    for b in c.boards:
        lines += [f"### {_md_escape(b.title)}", ""]
        for note in b.notes:
            lines += [f"> **{_md_escape(note)}**", ""]
        lines.append("| " + " | ".join(HUMAN_HEADERS) + " |")
        lines.append("|" + "|".join("---" for _ in HUMAN_HEADERS) + "|")
        for r in b.rows:
            lines.append("| " + " | ".join(_md_escape(c_) for c_ in human_cells(r)) + " |")
        lines += ["", f"*{CAPTION}*", "", f"**Fairness audit ({len(b.issues)})**", ""]
        if b.issues:
            lines.append("| " + " | ".join(AUDIT_HEADERS) + " |")
            lines.append("|" + "|".join("---" for _ in AUDIT_HEADERS) + "|")
            for i in b.issues:
                lines.append("| " + " | ".join(_md_escape(x) for x in audit_cells(i)) + " |")
        else:
            lines.append(
                "No fairness problems: every expected result is present, within budget, on target sparsity and "
                "from the shared dense checkpoints."
            )
        lines.append("")
    return "\n".join(lines)


_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "\u00d7": r"$\times$",  # multiplication sign
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in text)


def to_latex(c: Comparison) -> str:
    """One booktabs table per protocol (\\usepackage{booktabs}), the audit as a list below it."""
    out: list[str] = []
    for notice in c.notices:
        out.append(f"% Note: {notice}")
    for b in c.boards:
        out += [
            r"\begin{table}[t]",
            r"\centering",
            r"\scriptsize",
            rf"\caption{{{latex_escape(b.title)}. {latex_escape(' '.join(b.notes))} {latex_escape(CAPTION)}}}",
            r"\begin{tabular}{" + "l" * len(HUMAN_HEADERS) + "}",
            r"\toprule",
            " & ".join(latex_escape(h) for h in HUMAN_HEADERS) + r" \\",
            r"\midrule",
        ]
        for r in b.rows:
            out.append(" & ".join(latex_escape(x) for x in human_cells(r)) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
        out.append(rf"\paragraph{{Fairness audit ({len(b.issues)})}}")
        if b.issues:
            out.append(r"\begin{itemize}")
            for i in b.issues:
                out.append(r"\item " + latex_escape("; ".join(audit_cells(i))))
            out.append(r"\end{itemize}")
        else:
            out.append("No fairness problems.")
        out.append("")
    return "\n".join(out)


def to_html(c: Comparison) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"><title>prunebench leaderboard</title>',
        "<style>table{border-collapse:collapse;font:13px sans-serif}td,th{border:1px solid #ccc;padding:2px 6px}"
        ".audit td{color:#a00}caption{caption-side:bottom;text-align:left;max-width:80em}</style>",
        "</head><body>",
    ]
    for notice in c.notices:
        out.append(f'<p class="notice"><strong>Note:</strong> {e(notice)}</p>')
    for b in c.boards:
        out.append(f"<h2>{e(b.title)}</h2>")
        for note in b.notes:
            out.append(f'<p class="note"><strong>{e(note)}</strong></p>')
        out.append(f'<table class="leaderboard" data-protocol="{e(b.protocol)}"><caption>{e(CAPTION)}</caption>')
        out.append("<thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in HUMAN_HEADERS) + "</tr></thead><tbody>")
        for r in b.rows:
            out.append("<tr>" + "".join(f"<td>{e(x)}</td>" for x in human_cells(r)) + "</tr>")
        out.append("</tbody></table>")
        out.append(f"<h3>Fairness audit ({len(b.issues)})</h3>")
        if b.issues:
            out.append(
                '<table class="audit"><thead><tr>'
                + "".join(f"<th>{e(h)}</th>" for h in AUDIT_HEADERS)
                + "</tr></thead><tbody>"
            )
            for i in b.issues:
                out.append("<tr>" + "".join(f"<td>{e(x)}</td>" for x in audit_cells(i)) + "</tr>")
            out.append("</tbody></table>")
        else:
            out.append("<p>No fairness problems.</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def rich_tables(c: Comparison) -> list[Table]:
    tables: list[Table] = []
    for b in c.boards:
        t = Table(title=b.title, caption=" ".join([*b.notes, CAPTION]), show_lines=False)
        for h in HUMAN_HEADERS:
            t.add_column(h, justify="right" if h in ("rank", "sparsity", "top-1 %", "n") else "left")
        last: float | None = None
        for r in b.rows:
            if r.kind == "method" and last is not None and r.sparsity_target != last:
                t.add_section()
            style = (
                "dim" if r.kind == "dense" else ("red" if r.rank is None else ("yellow" if r.status != "ok" else None))
            )
            t.add_row(*(escape(c) for c in human_cells(r)), style=style)  # a `[variant]` suffix is no markup
            last = r.sparsity_target if r.kind == "method" else None
        tables.append(t)
        audit = Table(
            title=f"Fairness audit of {b.protocol}: {len(b.issues)} result(s) shown apart",
            title_style="bold red" if b.issues else "bold green",
        )
        for h in AUDIT_HEADERS:
            audit.add_column(h)
        for i in b.issues:
            audit.add_row(*audit_cells(i))
        if not b.issues:
            audit.add_row("none", "-", "-", "-", "every expected result is present and fair", "-")
        tables.append(audit)
    return tables


def to_rich_text(c: Comparison, width: int = 220) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    for notice in c.notices:
        console.print(f"note: {notice}", markup=False, highlight=False)
    for t in rich_tables(c):
        console.print(t)
    return console.file.getvalue()  # type: ignore[attr-defined]


def render(c: Comparison, fmt: str) -> str:
    if fmt == "markdown":
        return to_markdown(c)
    if fmt == "csv":
        return to_csv(c)
    if fmt == "json":
        return to_json(c)
    if fmt == "latex":
        return to_latex(c)
    if fmt == "html":
        return to_html(c)
    if fmt == "rich":
        return to_rich_text(c)
    raise ResultsError(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})")


def format_for(fmt: str | None, output: Path | None) -> str:
    """The format asked for, else the one the output file's suffix names, else the terminal table."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ResultsError(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})")
        return fmt
    if output is not None:
        return SUFFIX_FORMATS.get(output.suffix.lower(), "rich")
    return "rich"
