"""Statistics over seeds: the mean with its standard deviation and t-interval, paired differences, and the one
ranking rule of every leaderboard (`rank_against_leader`).

The ranking rule. With fewer than MIN_SEEDS seeds a method is not ranked at all: two seeds cannot tell methods
apart. Among the methods with enough seeds the *leader* has the best mean (the highest accuracy; the lowest
of a metric where less is better, such as perplexity); every other method is compared
with the leader by a paired t-test over the seeds they share, and the p-values are Holm-corrected across the
comparisons of the table (Holm 1979), so that the family of claims "m is worse than the leader" holds at
ALPHA as a whole. The methods not significantly worse than the leader share rank 1 with it; the rest are
ranked by their place in the order of means. (Chaining ties between neighbours, a method tied with the one
above it, let a method 10 points below the leader share its rank.) A paired difference whose values do not
vary (two identical gaps) has no spread to test with: its standard deviation is taken to be at least the
resolution of the metric (one test example), never zero.

scipy.special is the backend of scipy.stats.t and imports in a fraction of the time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy import special

CONFIDENCE = 0.95
MIN_SEEDS = 3  # fewer, and a leaderboard ranks nothing
ALPHA = 0.05  # the family-wise error rate of the claims "worse than the leader"


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


def paired_difference(
    a: Mapping[int, float],
    b: Mapping[int, float],
    confidence: float = CONFIDENCE,
    resolution: float | None = None,
    degenerate: float | None = None,
) -> Paired:
    """a - b per shared seed. `resolution` (one test example's share of the accuracy) is the smallest standard
    deviation the test and the interval assume; `degenerate` stands in for a standard deviation of exactly 0 only
    (an estimate of the resolution). Without either, a difference that does not vary cannot be tested."""
    seeds = tuple(sorted(a.keys() & b.keys()))
    est = estimate([a[s] - b[s] for s in seeds], confidence)
    p: float | None = None
    low, high = est.low, est.high
    if est.n >= 2 and est.std is not None and est.mean is not None:
        std = max(est.std, resolution or 0.0)
        if std == 0.0 and degenerate:
            std = degenerate
        if std == 0.0:
            p = 1.0 if est.mean == 0.0 else None
        else:
            t = est.mean / (std / math.sqrt(est.n))
            p = float(2 * special.stdtr(est.n - 1, -abs(t)))
            half = t_quantile(est.n - 1, confidence) * std / math.sqrt(est.n)
            low, high = est.mean - half, est.mean + half
    return Paired(est.n, est.mean, est.std, low, high, p, seeds)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (monotone, at most 1); None (untestable) stays None."""
    order = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(order)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for k, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - k) * p))
        out[i] = running
    return out


def clipped(low: float | None, high: float | None, lo: float, hi: float) -> tuple[float | None, float | None, bool]:
    """An interval cut to what the quantity can be ([0, 1] for an accuracy), and whether it was cut."""
    if low is None or high is None:
        return low, high, False
    return max(low, lo), min(high, hi), low < lo or high > hi


@dataclass(frozen=True)
class Standing:
    """Where one method stands in its table: its rank (None: not ranked), whether it shares rank 1 with the
    leader, and its paired comparison with the leader (p Holm-corrected)."""

    rank: int | None
    shared: bool
    leader: str | None = None
    versus: Paired | None = None
    p_holm: float | None = None
    why_unranked: str | None = None


def rank_against_leader(
    accuracy: Mapping[str, Mapping[int, float]],
    *,
    min_seeds: int = MIN_SEEDS,
    alpha: float = ALPHA,
    resolution: float | None = None,
    degenerate: float | None = None,
    higher_is_better: bool = True,
) -> dict[str, Standing]:
    """The standing of every method of one table (a score per seed, by method: accuracy, or a metric of which
    less is better, such as perplexity, with `higher_is_better` False); see the module's docstring. The direction
    decides only who leads and the order of means: the paired test is two-sided."""
    means = {m: math.fsum(v.values()) / len(v) for m, v in accuracy.items() if v}
    sign = -1.0 if higher_is_better else 1.0
    eligible = sorted((m for m in means if len(accuracy[m]) >= min_seeds), key=lambda m: (sign * means[m], m))
    out = {
        m: Standing(None, False, why_unranked=f"{len(accuracy[m])} seed(s); ranks need {min_seeds}")
        for m in means
        if m not in eligible
    }
    if not eligible:
        return out
    leader, others = eligible[0], eligible[1:]
    versus = {
        m: paired_difference(accuracy[m], accuracy[leader], resolution=resolution, degenerate=degenerate)
        for m in others
    }
    testable = [m for m in others if versus[m].n >= min_seeds]
    adjusted = dict(zip(testable, holm([versus[m].p for m in testable]), strict=True))
    group = {leader} | {m for m in testable if adjusted[m] is None or adjusted[m] >= alpha}  # type: ignore[operator]
    for place, m in enumerate(eligible, start=1):
        if m != leader and m not in testable:
            why = f"{versus[m].n} seed(s) shared with the leader {leader}; the comparison needs {min_seeds}"
            out[m] = Standing(None, False, leader, versus[m], why_unranked=why)
            continue
        rank = 1 if m in group else place
        out[m] = Standing(rank, m in group and len(group) > 1, leader, versus.get(m), adjusted.get(m))
    return out
