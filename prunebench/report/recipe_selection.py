"""Selection of a retraining recipe on the validation split: the rule of the validation-selected boards.

Only validation values reach `select` (validation top-1; a causal LM's validation perplexity, lower being better):
the test split cannot influence the choice. (The selection of data, class-balanced subsets and the validation split,
is prunebench.data.selection.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prunebench.report.metric import DEFAULT_TASK, format_value, ranking_metric, validation_value, word

if TYPE_CHECKING:
    from prunebench.tasks import Metric


def _rule(value: str) -> str:
    return (
        f"each method at the retraining recipe with the best mean final validation {value} among the candidates, "
        "chosen per method and sparsity over the seeds every candidate has (ties: the earlier candidate); the test "
        "split is never read for the choice. Methods are ranked each at its own selected recipe."
    )


SELECTION_RULE = _rule("top-1")  # classification's selection_rule


def selection_rule(metric: Metric) -> str:
    """How a validation-selected board chose each method's recipe, for a board ranked by `metric`."""
    return _rule(word(metric))


@dataclass(frozen=True)
class Selection:
    """The candidate with the best mean validation value over `seeds` (ties: the earlier candidate)."""

    chosen: str
    scores: Mapping[str, float]  # candidate -> mean validation top-1 or perplexity (only candidates with results)
    seeds: tuple[int, ...]  # the seeds every scored candidate has; () when they share none
    missing: tuple[str, ...] = ()  # candidates without any result
    task: str = DEFAULT_TASK  # whose metric the scores are (prunebench.report.metric)

    def describe(self) -> list[str]:
        metric = ranking_metric(self.task)
        return [f"{c}={format_value(metric, s)}" for c, s in self.scores.items()] + [f"{c}=n/a" for c in self.missing]


def select(val_top1: Mapping[str, Mapping[int, float]], task: str = DEFAULT_TASK) -> Selection | None:
    """Choose among candidates (in order) by validation value per seed (top-1, the higher the better; the metric
    of `task`'s ranking: a causal LM's perplexity, the lower the better); None when none has a result.

    The score of a candidate is its mean validation top-1 over the seeds all candidates with results share
    (paired, so a seed that failed for one candidate does not tilt the choice); over its own seeds when they
    share none. Only validation accuracies reach this function: the test split cannot influence it."""
    scored = {c: dict(v) for c, v in val_top1.items() if v}
    if not scored:
        return None
    shared = set.intersection(*(set(v) for v in scored.values()))
    scores = {c: math.fsum(v[s] for s in (shared or v)) / len(shared or v) for c, v in scored.items()}
    best = (max if ranking_metric(task).higher_is_better else min)(scores.values())
    chosen = next(c for c, s in scores.items() if s == best)
    missing = tuple(c for c in val_top1 if c not in scored)
    return Selection(chosen, scores, tuple(sorted(shared)), missing, task)


def validation_accuracies(records: Iterable[Any]) -> dict[int, float]:
    """Per seed, the final validation value of the usable records (status ok): validation top-1, or the validation
    counterpart of another task's ranked metric (prunebench.report.metric.validation_value), the one number
    selection reads. The first record of a seed counts (a conflicting copy is for the leaderboard's audit)."""
    out: dict[int, float] = {}
    for r in records:
        if r.status == "ok" and r.metrics is not None and r.seed not in out:
            value = validation_value(r)
            if value is not None:
                out[r.seed] = value
    return out
