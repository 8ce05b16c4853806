"""A causal LM's perplexity, lower being better, through the gate and the figures: a perplexity that rose beyond
the tolerance is a regression and one that fell is not; the floor is in perplexity points; the plots draw and
label perplexity; the swap test and validation selection pick the lower one."""

from __future__ import annotations

from pathlib import Path

import pytest

from prunebench.protocol import Protocol
from prunebench.report.check import check_markdown, run_check
from prunebench.report.efficiency_plots import pareto_front
from prunebench.report.recipe_selection import select
from prunebench.report.stats import paired_difference
from prunebench.report.swap import winner
from prunebench.testing import make_protocol, make_record, run_cli, write_run

REFERENCE = [30.0, 30.5, 31.0]  # the reference's test perplexities of method a, seeds 0-2 (std 0.5)


def lm_run(root: Path, proto: Protocol, perplexities: list[float], targets: tuple[float, ...] = (0.9,)) -> Path:
    """Method a's records at `targets` (perplexity + target: sparser, higher), written as a run."""
    records = [
        make_record(proto, "a", t, s, 0.4, perplexity=p + t) for t in targets for s, p in enumerate(perplexities)
    ]
    return write_run(root, proto, records).parent


@pytest.mark.parametrize(("shift", "verdict"), [(+3.0, "regression"), (-3.0, "pass"), (+0.5, "pass")])
def test_a_higher_perplexity_is_a_regression_and_a_lower_one_is_not(tmp_path: Path, shift: float, verdict: str) -> None:
    proto = make_protocol()
    ref = lm_run(tmp_path / "reference", proto, REFERENCE)
    sub = lm_run(tmp_path / "submitted", proto, [p + shift for p in REFERENCE])
    report = run_check([sub], [ref])
    (item,) = report.items
    assert item.delta == pytest.approx(shift)  # in perplexity points
    assert item.tolerance == pytest.approx(2 * 0.5 * (2 / 3) ** 0.5)  # 0.82 points: the reference's spread
    assert item.verdict == verdict and report.exit_code == (verdict == "regression")
    if verdict == "regression":
        assert "mean 34.40 is 3.00 above the reference 31.40 (tolerance 0.82)" in item.reasons[0]


def test_the_floor_is_in_perplexity_points(tmp_path: Path) -> None:
    proto = make_protocol()
    ref = lm_run(tmp_path / "reference", proto, [30.0, 30.0, 30.0])  # no spread: only the floor applies
    within = lm_run(tmp_path / "within", proto, [30.3, 30.3, 30.3])
    (item,) = run_check([within], [ref]).items  # the default floor: 0.5 perplexity points, not 0.005
    assert item.tolerance == pytest.approx(0.5) and item.verdict == "pass"
    beyond = lm_run(tmp_path / "beyond", proto, [30.8, 30.8, 30.8])
    report = run_check([beyond], [ref])
    assert report.items[0].verdict == "regression"
    text = check_markdown(report)
    assert "| reference perplexity | submitted perplexity | Δ | tolerance / detects |" in text
    assert "| 31.70 ± 0.00 (n=3) | +0.80 | 0.50 / 0.50 | **REGRESSION** |" in text
    assert "mean perplexity is above the reference mean" in text and "floor = 0.50 perplexity points" in text


def test_check_cli_fails_a_worse_perplexity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proto = make_protocol()
    ref = lm_run(tmp_path / "reference", proto, REFERENCE)
    worse = lm_run(tmp_path / "worse", proto, [p + 3 for p in REFERENCE])
    code, out, _ = run_cli(capsys, "check", str(worse), "--reference", str(ref))
    assert code == 1 and "REGRESSION" in out and "above the reference" in out
    better = lm_run(tmp_path / "better", proto, [p - 3 for p in REFERENCE])
    assert run_cli(capsys, "check", str(better), "--reference", str(ref))[0] == 0


@pytest.mark.parametrize("targets", [(0.5, 0.9), (0.9,)])  # lines over the densities; one sparsity: bars
def test_plot_accuracy_draws_perplexity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], targets: tuple[float, ...]
) -> None:
    results = lm_run(tmp_path / "lm", make_protocol(), REFERENCE, targets)
    figure = tmp_path / "fig.svg"
    code, _, err = run_cli(capsys, "plot", "accuracy", str(results), "-o", str(figure))
    assert code == 0, err
    svg = figure.read_text()
    assert "perplexity (mean ± std over seeds)" in svg and "dense (31.00)" in svg
    assert "top-1" not in svg and "dense (31.00%)" not in svg


def test_plot_lr_sweep_defaults_to_the_ranked_metric(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = lm_run(tmp_path / "lm", make_protocol(), REFERENCE)
    figure = tmp_path / "sweep.svg"
    code, _, err = run_cli(capsys, "plot", "lr-sweep", str(results), "-o", str(figure))
    assert code == 0, err
    assert "final test perplexity (mean ± std)" in figure.read_text()


def test_the_swap_test_and_selection_prefer_the_lower_perplexity() -> None:
    low, high = {0: 30.0, 1: 31.0, 2: 30.5}, {0: 35.0, 1: 36.5, 2: 35.2}
    diff = paired_difference(low, high)  # A - B < 0: A is better
    assert winner(diff, "A", "B", higher_is_better=False) == "A"
    assert winner(diff, "A", "B") == "B"  # were perplexity an accuracy
    chosen = select({"x": high, "y": low}, task="causal_lm")
    assert chosen is not None and chosen.chosen == "y" and chosen.describe() == ["x=35.57", "y=30.50"]
    assert select({"x": high, "y": low}).chosen == "x"  # type: ignore[union-attr]  # classification: the higher


def test_the_pareto_front_of_perplexity_keeps_the_faster_lower_points() -> None:
    points = [(1.0, 30.0), (2.0, 25.0), (3.0, 28.0), (4.0, 20.0)]  # (latency, perplexity)
    assert pareto_front(points, higher_is_better=False) == [(1.0, 30.0), (2.0, 25.0), (4.0, 20.0)]
    assert pareto_front(points) == [(1.0, 30.0)]  # were it an accuracy, nothing slower beats the first
