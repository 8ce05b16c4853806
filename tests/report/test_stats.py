"""The one ranking rule (prunebench.report.stats): Holm's correction by hand, the leader's group, no rank below
MIN_SEEDS, a zero-spread gap tested at the metric's resolution, intervals cut to what an accuracy can be; and the
comparison with published summaries: Welch's test against scipy's, the spread of a range, the detectable
difference at its power."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from prunebench.report.stats import (
    D2,
    MEDIAN_VARIANCE,
    MIN_SEEDS,
    Summary,
    clipped,
    detectable_difference,
    holm,
    mean_summary,
    paired_difference,
    range_summary,
    rank_against_leader,
    welch,
)


def test_holm_by_hand() -> None:
    # Sorted 0.01, 0.02, 0.04 of m = 3: 3 x 0.01 = 0.03, 2 x 0.02 = 0.04, 1 x 0.04 = 0.04 (monotone), None kept.
    assert holm([0.04, None, 0.01, 0.02]) == pytest.approx([0.04, None, 0.03, 0.04])
    assert holm([0.6, 0.5]) == [1.0, 1.0]  # capped at 1, and monotone: 2 x 0.5 = 1.0 first


def test_a_method_far_below_the_leader_never_shares_its_rank() -> None:
    accuracy = {
        "leader": {0: 0.986, 1: 0.984, 2: 0.988},
        "close": {0: 0.983, 1: 0.985, 2: 0.986},  # within the noise of the leader
        "far": {0: 0.880, 1: 0.875, 2: 0.890},  # ten points below, on every seed
    }
    standing = rank_against_leader(accuracy, resolution=1 / 359)
    assert (standing["leader"].rank, standing["close"].rank, standing["far"].rank) == (1, 1, 3)
    assert standing["close"].shared and not standing["far"].shared
    assert standing["far"].p_holm is not None and standing["far"].p_holm < 0.05


def test_a_metric_of_which_less_is_better_ranks_the_lowest_first() -> None:
    # Perplexity (the language-model track): the lowest mean leads; the same paired test and Holm correction.
    perplexity = {
        "sparsegpt": {0: 6.51, 1: 6.49, 2: 6.55},
        "wanda": {0: 6.52, 1: 6.47, 2: 6.58},  # within the noise of the leader
        "magnitude": {0: 14.9, 1: 15.2, 2: 14.6},  # far above on every seed
    }
    standing = rank_against_leader(perplexity, resolution=0.01, higher_is_better=False)
    assert standing["sparsegpt"].leader == "sparsegpt" and standing["sparsegpt"].rank == 1
    assert (standing["wanda"].rank, standing["magnitude"].rank) == (1, 3) and standing["wanda"].shared
    # Read as an accuracy, the same numbers crown the worst method: the direction is the task's, never assumed.
    assert rank_against_leader(perplexity, resolution=0.01)["magnitude"].rank == 1


def test_nothing_is_ranked_below_the_minimum_of_seeds() -> None:
    two = {"a": {0: 0.986, 1: 0.984}, "b": {0: 0.88, 1: 0.87}}
    standing = rank_against_leader(two)
    assert all(s.rank is None for s in standing.values()) and MIN_SEEDS == 3
    assert standing["b"].why_unranked == "2 seed(s); ranks need 3"


def test_a_gap_that_does_not_vary_is_tested_at_the_resolution_not_declared_certain() -> None:
    a = {0: 0.90, 1: 0.91, 2: 0.92}
    b = {s: v - 1 / 359 for s, v in a.items()}  # one test image below on every seed: zero spread
    bare = paired_difference(b, a)
    assert bare.std == pytest.approx(0.0, abs=1e-12) and bare.p is None  # no spread: cannot be tested
    floored = paired_difference(b, a, resolution=1 / 359)
    assert floored.p is not None and floored.p > 0.05  # one image on three seeds is no evidence
    assert floored.low < 0 < floored.high


def test_intervals_are_cut_to_what_an_accuracy_can_be() -> None:
    assert clipped(0.8445, 1.1276, 0.0, 1.0) == (0.8445, 1.0, True)
    assert clipped(0.2, 0.4, 0.0, 1.0) == (0.2, 0.4, False)
    assert clipped(None, None, 0.0, 1.0) == (None, None, False)


# ---- comparing with published summaries -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("a", "b"),
    [((92.0, 0.5, 3), (93.0, 0.3, 5)), ((0.9354, 0.0031, 3), (0.9351, 0.0009, 7)), ((6.42, 0.02, 2), (6.9, 0.4, 3))],
)
def test_welch_from_summaries_is_scipys(a: tuple[float, float, int], b: tuple[float, float, int]) -> None:
    ours = welch(mean_summary(*a), mean_summary(*b))
    theirs = stats.ttest_ind_from_stats(*a, *b, equal_var=False)
    assert ours.p == pytest.approx(theirs.pvalue, rel=1e-9)
    assert ours.delta / ours.se == pytest.approx(theirs.statistic, rel=1e-12)


def test_a_side_without_spread_leaves_a_one_sample_test_of_the_other() -> None:
    run = [6.40, 6.44, 6.45]
    point = Summary(6.42, 0.0, math.inf)
    test = welch(mean_summary(float(np.mean(run)), float(np.std(run, ddof=1)), 3), point)
    assert test.df == pytest.approx(2.0)
    assert test.p == pytest.approx(stats.ttest_1samp(run, 6.42).pvalue, rel=1e-9)
    assert welch(Summary(1.0, 0.0, 2), point).p is None  # no spread on either side: nothing to test with


def test_the_range_of_n_normal_values_and_the_median_of_three() -> None:
    # d2(n) = E[range of n standard normal values] = the integral of 1 - Phi^n - (1 - Phi)^n (Tippett 1925).
    for n, d2 in D2.items():
        expected = integrate.quad(lambda x, n=n: 1 - stats.norm.cdf(x) ** n - stats.norm.sf(x) ** n, -np.inf, np.inf)
        assert d2 == pytest.approx(expected[0], abs=2e-6)
    assert D2[3] == pytest.approx(1.693, abs=5e-4)
    # The median of 3 has density 6 phi Phi (1 - Phi): its variance.
    density = lambda x: x * x * 6 * stats.norm.pdf(x) * stats.norm.cdf(x) * stats.norm.sf(x)  # noqa: E731
    assert MEDIAN_VARIANCE[3] == pytest.approx(integrate.quad(density, -np.inf, np.inf)[0], abs=1e-6)
    s = range_summary(0.9335, 0.9300, 0.9360, 3)
    assert s.center == 0.9335 and s.df == 2
    assert s.se == pytest.approx(0.006 / 1.6926 * math.sqrt(0.44867), rel=1e-4)
    with pytest.raises(ValueError, match="supported for"):
        range_summary(1.0, 0.0, 2.0, 7)


def test_the_range_rule_estimates_sigma_without_bias() -> None:
    # Simulated: 3 normal values of sigma 2, the range over d2(3), and the median's spread about the mean.
    rng = np.random.default_rng(0)
    draws = rng.normal(10.0, 2.0, size=(200_000, 3))
    ranges = draws.max(axis=1) - draws.min(axis=1)
    assert np.mean(ranges / D2[3]) == pytest.approx(2.0, rel=0.01)
    assert np.std(np.median(draws, axis=1)) == pytest.approx(2.0 * math.sqrt(MEDIAN_VARIANCE[3]), rel=0.01)


@pytest.mark.parametrize(("se", "df"), [(0.3, 2.0), (0.01, 4.0), (1.0, 9.3), (0.2, 60.0)])
def test_the_detectable_difference_has_80_percent_power(se: float, df: float) -> None:
    d = detectable_difference(se, df)
    crit = stats.t.ppf(0.975, df)
    power = stats.nct.sf(crit, df, d / se) + stats.nct.cdf(-crit, df, d / se)
    assert power == pytest.approx(0.8, abs=1e-6)
    # Close to the usual approximation (t_{1 - alpha/2} + t_{power}) x se, and to the normal one for many df.
    assert d == pytest.approx((crit + stats.t.ppf(0.8, df)) * se, rel=0.08)
    if df > 50:
        assert d == pytest.approx((1.95996 + 0.84162) * se, rel=0.02)
