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

Comparing with a published figure (prunebench.report.reproduction), whose seeds are not ours: Welch's unpaired
t-test from two summaries (`welch`), the spread of a median/min/max summary estimated from its range
(`range_summary`), and the smallest true difference a test detects (`detectable_difference`).

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


# ---- comparing with summaries: Welch's test, spread from a range, the detectable difference -----------------------
POWER = 0.8  # the power at which a detectable difference is stated

# d2(n): the expected range of n standard normal values, E[R_n] = integral of 1 - Phi^n - (1 - Phi)^n (Tippett
# 1925; the d2 constants of control charts): 2/sqrt(pi) for n = 2, 3/sqrt(pi) = 1.693 for n = 3. A range over n
# values estimates the standard deviation as R / d2(n).
D2 = {2: 2 / math.sqrt(math.pi), 3: 3 / math.sqrt(math.pi), 4: 2.058751, 5: 2.325929}
# The variance of the median of n standard normal values: what the median's standard error is sigma times the root
# of. n = 3: the integral of x^2 * 6 phi(x) Phi(x) (1 - Phi(x)), 0.4487 (David & Nagaraja 2003, Order Statistics);
# n = 2: the median is the mean, 1/2. Larger n are not supported: no published file here needs them.
MEDIAN_VARIANCE = {2: 0.5, 3: 0.448671}


@dataclass(frozen=True)
class Summary:
    """An estimate of a mean as a test needs it: the center, its standard error and the degrees of freedom of that
    error (se 0: a value taken as exact, such as a published point value)."""

    center: float
    se: float
    df: float


def mean_summary(mean: float, std: float, n: int) -> Summary:
    """A mean and standard deviation (n - 1 in the denominator) of n values."""
    return Summary(mean, std / math.sqrt(n), n - 1)


def range_summary(median: float, low: float, high: float, n: int) -> Summary:
    """A median, minimum and maximum of n values from a normal distribution (symmetric: its median estimates its
    mean): sigma estimated as (high - low) / d2(n), the median's standard error sigma * sqrt(MEDIAN_VARIANCE[n]),
    with n - 1 degrees of freedom (Patnaik 1950 gives the range of 3 an equivalent 1.98)."""
    if n not in MEDIAN_VARIANCE:
        raise ValueError(f"a median/min/max summary of {n} values: supported for {sorted(MEDIAN_VARIANCE)}")
    sigma = (high - low) / D2[n]
    return Summary(median, sigma * math.sqrt(MEDIAN_VARIANCE[n]), n - 1)


@dataclass(frozen=True)
class Welch:
    """a - b with its standard error, Welch-Satterthwaite degrees of freedom and two-sided p (None: no spread on
    either side, nothing to test with)."""

    delta: float
    se: float
    df: float | None
    p: float | None


def welch(a: Summary, b: Summary) -> Welch:
    """Welch's unpaired t-test of a's and b's means from their summaries (Welch 1947): t = (a - b) / sqrt(se_a^2 +
    se_b^2), df = (se_a^2 + se_b^2)^2 / (se_a^4 / df_a + se_b^4 / df_b). A side with se 0 adds nothing (a one-sample
    test of the other side against that value, on its own degrees of freedom)."""
    va, vb = a.se**2, b.se**2
    delta = a.center - b.center
    if va + vb == 0.0:
        return Welch(delta, 0.0, None, None)
    df = (va + vb) ** 2 / sum(v * v / d for v, d in ((va, a.df), (vb, b.df)) if v > 0)
    se = math.sqrt(va + vb)
    return Welch(delta, se, df, float(2 * special.stdtr(df, -abs(delta) / se)))


def detectable_difference(se: float, df: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true difference that a two-sided t-test at `alpha`, with this standard error and these degrees
    of freedom, detects with probability `power`: exactly, from the noncentral t distribution (the power at a true
    difference d is P(|T| > t_crit) with T noncentral t of df, noncentrality d / se), solved by bisection."""
    crit = float(special.stdtrit(df, 1 - alpha / 2))

    def power_at(nc: float) -> float:
        return float(1 - special.nctdtr(df, nc, crit) + special.nctdtr(df, nc, -crit))

    low, high = 0.0, 1.0
    while power_at(high) < power:
        low, high = high, 2 * high
    for _ in range(100):
        mid = (low + high) / 2
        low, high = (mid, high) if power_at(mid) < power else (low, mid)
    return high * se
