"""Selection of a retraining recipe on the validation split: the rule of the validation-selected boards.

Only validation accuracies reach `select`: the test split cannot influence the choice. (The selection of data,
class-balanced subsets and the validation split, is prunebench.data.selection.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SELECTION_RULE = (
    "each method at the retraining recipe with the best mean final validation top-1 among the candidates, chosen "
    "per method and sparsity over the seeds every candidate has (ties: the earlier candidate); the test split is "
    "never read for the choice. Methods are ranked each at its own selected recipe."
)


@dataclass(frozen=True)
class Selection:
    """The candidate with the best mean validation top-1 over `seeds` (ties: the earlier candidate)."""

    chosen: str
    scores: Mapping[str, float]  # candidate -> mean validation top-1 (only candidates with results)
    seeds: tuple[int, ...]  # the seeds every scored candidate has; () when they share none
    missing: tuple[str, ...] = ()  # candidates without any result

    def describe(self) -> list[str]:
        return [f"{c}={100 * s:.2f}" for c, s in self.scores.items()] + [f"{c}=n/a" for c in self.missing]


def select(val_top1: Mapping[str, Mapping[int, float]]) -> Selection | None:
    """Choose among candidates (in order) by validation top-1 per seed; None when none has a result.

    The score of a candidate is its mean validation top-1 over the seeds all candidates with results share
    (paired, so a seed that failed for one candidate does not tilt the choice); over its own seeds when they
    share none. Only validation accuracies reach this function: the test split cannot influence it."""
    scored = {c: dict(v) for c, v in val_top1.items() if v}
    if not scored:
        return None
    shared = set.intersection(*(set(v) for v in scored.values()))
    scores = {c: math.fsum(v[s] for s in (shared or v)) / len(shared or v) for c, v in scored.items()}
    best = max(scores.values())
    chosen = next(c for c, s in scores.items() if s == best)
    return Selection(chosen, scores, tuple(sorted(shared)), tuple(c for c in val_top1 if c not in scored))


def validation_accuracies(records: Iterable[Any]) -> dict[int, float]:
    """Per seed, the final validation top-1 of the usable records (status ok): the one number selection
    reads. The first record of a seed counts (a conflicting copy is for the leaderboard's audit)."""
    out: dict[int, float] = {}
    for r in records:
        if r.status == "ok" and r.metrics is not None and r.seed not in out:
            out[r.seed] = r.metrics.val_top1
    return out
