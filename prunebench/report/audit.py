"""The fairness audit of a group of records: every result that may not be ranked, and why.

Each rule is derived from a record's measurements, not only from its status: a hand-edited or older record
marked ok is audited all the same. Every kind keeps its result out of the ranking but the kept ones (KEPT_KINDS):
a missing seed is a result that is not there, and what a method's zeros did to its network (a collapsed layer, a
disconnected network, an accuracy at chance) is its result; a copy repeats a result that is counted once.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prunebench.fairness import EPS, off_target, over_effective
from prunebench.report.load import ProtocolInfo
from prunebench.report.metric import base_value, ranked_value
from prunebench.results import ResultSummary, SparsityRecord
from prunebench.results.targets import Target

AUDIT_KINDS = {
    "failed": "the job failed",
    "budget": "over the budget",
    "sparsity": "achieved sparsity off the target beyond the protocol's tolerance",
    "cost_target": "the compacted model's FLOPs or parameter reduction off the target beyond the tolerance",
    "violation": "marked a violation by the runner",
    "base_checkpoint": "started from another dense checkpoint than the other results of its seed",
    "method_config": "another method version or configuration under the same label",
    "duplicate": "conflicting results of one job (none is ranked)",
    "copy": "a copy of a result that is counted once",
    "incomplete_record": "a result without the measurements a ranking needs",
    "missing_seed": "no result for a seed of the protocol",
    "shared_engine": "the method's code ran in the engine's process (code inside the training step): shown apart",
    "collapsed": "a prunable layer left with no kept weight (layer collapse)",
    "disconnected": "no path from the input to the output survives: every kept weight is ineffective",
    "cut_block": "a block with a layer on no input-output path, the network carried by its other branch",
    "effective_sparsity": "effective sparsity above the target by more than the protocol's margin",
    "degenerate": "test top-1 within the protocol's margin of chance: a collapsed model",
}
# Kinds that leave a result in its row: a missing seed, and a method that shared its engine's process, whose row
# is shown (apart: unranked) and which the gate refuses unless the reference's maintainer allows its label; and what
# a method's own zeros did to its network (docs/analyses.md): its result, kept in its mean and ranked.
CONNECTIVITY_KINDS = frozenset({"collapsed", "disconnected", "cut_block", "effective_sparsity", "degenerate"})
KEPT_KINDS = frozenset({"missing_seed", "shared_engine"}) | CONNECTIVITY_KINDS


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
        return self.kind not in KEPT_KINDS

    def short(self) -> str:
        seed = f"seed {self.seed}: " if self.seed is not None else ""
        return f"{seed}{self.kind}: {self.reason}"


def target_of(record: ResultSummary) -> float | None:
    """The value of the job's target (recorded also for failed jobs, which have no sparsity record): its sparsity,
    or for a cost target its reduction factor (a protocol states one kind of target)."""
    return record.target_of().value


def same_target(a: float | None, b: float | None) -> bool:
    """Whether two target sparsities are the same (as written in a protocol, read back from JSON)."""
    return a is not None and b is not None and abs(a - b) < EPS


@dataclass
class Entry:
    """A record on its way to a board, with the protocol it ran under and the issues the audit finds."""

    path: Path
    record: ResultSummary
    info: ProtocolInfo
    target: float | None
    issues: list[Issue] = field(default_factory=list)

    def copy(self) -> Entry:
        """A fresh entry of the same record: boards audit their entries in place, so a record shown on several
        boards gets one on each."""
        return Entry(self.path, self.record, self.info, self.target)

    @property
    def label(self) -> str:
        return self.record.method.label

    @property
    def variant(self) -> str | None:
        """The retraining variant the record ran (None: the protocol's own recipe)."""
        return self.record.variant.name if self.record.variant is not None else None

    @property
    def clean(self) -> bool:
        return self.record.status == "ok" and not any(i.excludes for i in self.issues)


def record_issues(e: Entry, protocol: str, setup: str) -> list[Issue]:
    """The fairness rules a single record breaks, derived from its measurements (not only from
    its status: a hand-edited or older record marked ok is audited all the same)."""
    r = e.record

    def issue(kind: str, reason: str) -> Issue:
        return Issue(protocol, setup, r.method.label, e.target, r.seed, kind, reason, str(e.path))

    if r.status == "failed":
        return [issue("failed", "; ".join(r.reasons) or "failed (no reason recorded)")]
    out: list[Issue] = []
    if r.limit is not None:
        out.append(issue("smoke_run", f"a smoke run (--limit {r.limit}: {r.limit} batches a stage), for testing only"))
    if r.provenance.in_process:
        out.append(issue("in_process", "method code ran in the runner's process (run --in-process), for debugging"))
    elif r.provenance.confined is False:
        out.append(
            issue(
                "unconfined",
                "the job's process ran unconfined (no sandbox: another OS, bwrap missing, namespaces forbidden, "
                "PRUNEBENCH_CONFINE=off or --nproc): its method could read and write anything, for testing only",
            )
        )
    if r.provenance.method_process is False and not r.provenance.in_process:
        out.append(
            issue(
                "shared_engine",
                "the method's code ran in the engine's process (it has code inside the training step: loss_term, "
                "own_parameters; or PRUNEBENCH_SHARED_ENGINE=1): shown apart, unranked",
            )
        )
    explained: set[str] = set()
    if r.budget is not None:
        for v in r.budget.violations:
            out.append(issue("budget", v))
            explained.add(v)
    if r.target is not None and not r.target.met and r.status != "failed":
        counted = f"{r.target.achieved:.3g}x" if r.target.achieved is not None else "not counted (not compacted)"
        out.append(
            issue(
                "cost_target",
                f"{Target(r.target.kind, r.target.value).label()} target: {counted}, tolerance "
                f"{100 * r.target.tolerance:g} %",
            )
        )
        explained.update(x for x in r.reasons if "target" in x)
    if (
        r.sparsity is not None
        and r.sparsity.target is not None
        and off_target(r.sparsity.achieved, r.sparsity.target, r.sparsity.tolerance)
    ):
        out.append(
            issue(
                "sparsity",
                f"achieved {r.sparsity.achieved:.4f}, target {r.sparsity.target:g}, tolerance {r.sparsity.tolerance:g}",
            )
        )
        explained.update(x for x in r.reasons if "sparsity" in x)
    out.extend(issue(kind, reason) for kind, reason in connectivity_findings(r))
    missing = [n for n in ("metrics", "sparsity", "base", "cost", "budget") if getattr(r, n) is None]
    if missing:
        out.append(issue("incomplete_record", f"no {', '.join(missing)} in the record"))
    if r.status == "violation":
        rest = [x for x in r.reasons if x not in explained]
        if rest or not out:
            out.append(issue("violation", "; ".join(rest) or "marked a violation (no reason recorded)"))
    return out


def connectivity_findings(r: ResultSummary) -> list[tuple[str, str]]:
    """(kind, reason) of what a record's zeros did to its network and its accuracy (CONNECTIVITY_KINDS), from its
    measurements; nothing for a record written before they were measured."""
    out: list[tuple[str, str]] = []
    s, m = r.sparsity, r.metrics
    c = s.connectivity if s is not None else None
    if c is not None and c.collapsed:
        out.append(("collapsed", f"no kept weight in {_layers(c.collapsed)}"))
    if c is not None and c.disconnected:
        out.append(("disconnected", "no path from the input to the output survives (SynFlow's objective is 0)"))
    elif c is not None and c.cut_blocks:
        cut = _layers(c.collapsed + c.cut_off)
        out.append(("cut_block", f"{_layers(c.cut_blocks)}: no path through {cut}; the network lives on around it"))
    over = _over_effective(s) if s is not None else None
    if over is not None:
        out.append(("effective_sparsity", over))
    if m is not None and m.degenerate and m.chance is not None:
        chance = f"test top-1 {100 * m.test_top1:.2f} % against chance {100 * m.chance:.2f} %"
        out.append(("degenerate", f"{chance}; kept in the mean"))
    return out


def _over_effective(s: SparsityRecord) -> str | None:
    """Why an effective sparsity is above its target by more than the protocol's margin; None when it is not, or
    when it is not judged (no effective sparsity, a cost target, no margin)."""
    if s.effective is None or s.target is None or s.effective_margin is None:
        return None
    if not over_effective(s.effective, s.target, s.effective_margin):
        return None
    return (
        f"effective sparsity {s.effective:.4f} (achieved {s.achieved:.4f}), target {s.target:g}, "
        f"margin {s.effective_margin:g}"
    )


def _layers(names: list[str], shown: int = 3) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def majority(counts: Counter[Any]) -> Any | None:
    """The most common value, or None when two values tie for it."""
    top = counts.most_common(2)
    if not top or (len(top) == 2 and top[0][1] == top[1][1]):
        return None
    return top[0][0]


def audit_duplicates(entries: list[Entry], protocol: str, setup: str) -> None:
    jobs: dict[tuple[str, float | None, int], list[Entry]] = defaultdict(list)
    for e in entries:
        jobs[(e.label, e.target, e.record.seed)].append(e)
    for same in jobs.values():
        if len(same) < 2:
            continue
        same.sort(key=lambda e: str(e.path))

        def outcome(e: Entry) -> tuple[Any, ...]:
            return (
                e.record.status,
                ranked_value(e.record),
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


def method_config(r: ResultSummary) -> tuple[str, str, str]:
    """What a method label ran: the method's name, version and configuration."""
    return (r.method.name, r.method.version, json.dumps(r.method.config, sort_keys=True))


def audit_configs(entries: list[Entry], protocol: str, setup: str) -> None:
    by_label: dict[str, list[Entry]] = defaultdict(list)
    for e in entries:
        by_label[e.label].append(e)
    for label, group in by_label.items():
        counts = Counter(method_config(e.record) for e in group)
        if len(counts) < 2:
            continue
        winner = majority(counts)
        for e in group:
            v = method_config(e.record)
            if v == winner:
                continue
            name, version, config = v
            why = f"ran {name} {version} with config {config}; the other results of {label!r} ran " + (
                f"{winner[0]} {winner[1]} with config {winner[2]}" if winner else "other versions or configs"
            )
            e.issues.append(Issue(protocol, setup, label, e.target, e.record.seed, "method_config", why, str(e.path)))


def audit_bases(entries: list[Entry], protocol: str, setup: str) -> dict[int, tuple[str, float | None]]:
    """Per seed, the dense checkpoint most results started from; the others are flagged.
    Returns each seed's agreed checkpoint and its value of the ranked metric (test top-1, perplexity)."""
    by_seed: dict[int, list[Entry]] = defaultdict(list)
    for e in entries:
        if e.record.base is not None:
            by_seed[e.record.seed].append(e)
    agreed: dict[int, tuple[str, float | None]] = {}
    for seed, group in sorted(by_seed.items()):
        counts = Counter(e.record.base.checkpoint_sha256 for e in group)  # type: ignore[union-attr]
        winner = majority(counts)
        if winner is not None:
            first = next(e.record for e in group if e.record.base.checkpoint_sha256 == winner)  # type: ignore[union-attr]
            agreed[seed] = (winner, base_value(first))
        majority_machines = {machine(e.record) for e in group if e.record.base.checkpoint_sha256 == winner}  # type: ignore[union-attr]
        for e in group:
            sha = e.record.base.checkpoint_sha256  # type: ignore[union-attr]
            if sha == winner:
                continue
            if winner is None:
                seen = ", ".join(f"{h[:12]} ({n})" for h, n in counts.most_common())
                why = f"seed {seed} has dense checkpoints {seen} and none is the majority"
            else:
                why = f"dense checkpoint {sha[:12]} differs from the other results of seed {seed} ({winner[:12]})"
            if majority_machines and machine(e.record) not in majority_machines:
                why += f": trained on {machine(e.record)}, the others on {', '.join(sorted(majority_machines))}"
            e.issues.append(Issue(protocol, setup, e.label, e.target, seed, "base_checkpoint", why, str(e.path)))
    return agreed


def machine(record: ResultSummary) -> str:
    """Where a result was computed, as far as its numbers depend on it: the device and torch's CPU threads (another
    count orders the sums of a kernel otherwise, and the last bits of every number change)."""
    p = record.provenance
    threads = f", {p.threads} thread(s)" if p.threads is not None else ""
    # "cpu: x86_64 x2 threads": the last " x" starts the thread count (the first may be the architecture's)
    return f"{p.device.rsplit(' x', 1)[0]}{threads}"
