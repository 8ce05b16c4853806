"""The one place the report decides what ranks a record: its task's ranking metric (prunebench.tasks), the
record's and its dense base model's value of it, which way is better, and how its values and differences read.

Classification ranks by test top-1, a fraction shown as a percentage (differences in percentage points); a causal
LM by test perplexity, shown as it is with two decimals (differences in perplexity points), lower being better.
Everything on a board (its rows' `top1_*` columns hold the ranked metric, whatever the task) reads it from here.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from prunebench.errors import ResultsError
from prunebench.results import ResultSummary
from prunebench.tasks import TASKS, Metric

DEFAULT_TASK: str = ResultSummary.model_fields["task"].default  # a record that names no task: classification


@functools.cache
def task_metric(task: str) -> Metric:
    """The ranking metric of the task named `task`."""
    if task not in TASKS:
        raise ResultsError(f"a result of task {task!r}, which prunebench does not know (tasks: {', '.join(TASKS)})")
    return TASKS[task].ranking


def ranking_metric(of: Any) -> Metric:
    """The ranking metric of a task name, or of anything with a `task` (a record, a row, a board)."""
    return task_metric(of if isinstance(of, str) else getattr(of, "task", DEFAULT_TASK))


def ranked_value(record: ResultSummary) -> float | None:
    """The record's value of its ranking metric (None without metrics)."""
    if record.metrics is None:
        return None
    value: float | None = getattr(record.metrics, ranking_metric(record).name)
    return value


def base_value(record: ResultSummary) -> float | None:
    """The ranking metric's value of the dense base model the record started from."""
    if record.base is None:
        return None
    value: float | None = getattr(record.base, ranking_metric(record).name)
    return value


def validation_value(record: ResultSummary) -> float | None:
    """The validation split's counterpart of the ranked value (val_top1, val_perplexity): what selection reads."""
    if record.metrics is None:
        return None
    value: float | None = getattr(record.metrics, "val_" + ranking_metric(record).name.removeprefix("test_"))
    return value


def shows_top5(task: str) -> bool:
    """Whether a task's boards keep the top-5 column: classification's; a next-token top-5 means nothing."""
    return task == DEFAULT_TASK


def best_first(metric: Metric, value: float | None) -> float:
    """A sort key putting the best values first and a missing one last."""
    if metric.higher_is_better:
        return -(value or 0.0)
    return math.inf if value is None else value


def worsening(metric: Metric, delta: float) -> float:
    """How much worse a difference new - old is (negative: better)."""
    return -delta if metric.higher_is_better else delta


def scale(metric: Metric) -> float:
    """What a value is multiplied by to be shown: 100 for a percentage."""
    return 100.0 if metric.percent else 1.0


def bounds(metric: Metric) -> tuple[float, float]:
    """What the metric can be, for cutting intervals: [0, 1] for a fraction; nothing cut otherwise."""
    return (0.0, 1.0) if metric.percent else (-math.inf, math.inf)


def format_value(metric: Metric, value: float | None, digits: int = 2) -> str:
    """A value as boards show it: 97.25 (a percentage, without its sign), 37.52 (perplexity)."""
    return "n/a" if value is None else f"{scale(metric) * value:.{digits}f}"


def format_delta(metric: Metric, value: float | None) -> str:
    """A signed difference in the metric's shown units (+1.25: pp, or perplexity points)."""
    return "n/a" if value is None else f"{scale(metric) * value:+.2f}"


def with_unit(metric: Metric, value: float) -> str:
    """A value in running text: 97.25% or 37.52."""
    return format_value(metric, value) + ("%" if metric.percent else "")


def unit(metric: Metric) -> str:
    """The unit of differences in column heads: pp for a percentage; none for a metric shown as it is."""
    return "pp" if metric.percent else ""


def unit_words(metric: Metric) -> str:
    """The unit of differences in captions: percentage points, perplexity points."""
    return "percentage points" if metric.percent else f"{word(metric)} points"


def word(metric: Metric) -> str:
    """The metric's short name: top-1, perplexity."""
    return metric.label.removeprefix("test ").removesuffix(" %")


def column(metric: Metric) -> str:
    """The head of a board's value column: top-1 %, perplexity."""
    return metric.label.removeprefix("test ")


def stem(metric: Metric) -> str:
    """The stem of the exported columns of the ranked value: top1 (top1_mean, ...), perplexity."""
    return metric.name.removeprefix("test_")


def quality(metric: Metric) -> str:
    """What the metric measures, in running text: accuracy (a percentage), perplexity."""
    return "accuracy" if metric.percent else metric.label


def capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]
