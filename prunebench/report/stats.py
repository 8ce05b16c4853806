"""Statistics over seeds: the mean with its standard deviation and t-interval, and paired differences.

scipy.special is the backend of scipy.stats.t and imports in a fraction of the time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy import special

CONFIDENCE = 0.95


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
