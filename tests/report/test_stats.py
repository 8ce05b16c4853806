"""The one ranking rule (prunebench.report.stats): Holm's correction by hand, the leader's group, no rank below
MIN_SEEDS, a zero-spread gap tested at the metric's resolution, intervals cut to what an accuracy can be."""

from __future__ import annotations

import pytest

from prunebench.report.stats import MIN_SEEDS, clipped, holm, paired_difference, rank_against_leader


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
