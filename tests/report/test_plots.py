"""Figures: the files are produced, non-empty and of the asked format."""

from __future__ import annotations

from pathlib import Path

import pytest

from prunebench.errors import ResultsError
from prunebench.report import compare
from prunebench.report.plots import plot_accuracy, plot_curves
from prunebench.results import load_records
from prunebench.testing import make_protocol, make_record, run_cli, standard_records, write_run

MAGIC = {".png": b"\x89PNG", ".pdf": b"%PDF", ".svg": b"<?xml"}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    proto = make_protocol()
    records = standard_records(proto)
    records += [make_record(proto, "a", 0.9, 0, 0.5, status="failed", reasons=("boom",))]  # shown apart, not drawn
    write_run(tmp_path / "results", proto, records)
    return tmp_path / "results"


@pytest.mark.parametrize("suffix", [".png", ".pdf", ".svg"])
def test_accuracy_plot_is_written(results: Path, tmp_path: Path, suffix: str) -> None:
    path = plot_accuracy(compare(load_records([results])), tmp_path / f"fig{suffix}")
    data = path.read_bytes()
    assert len(data) > 1000 and data.startswith(MAGIC[suffix])


def test_accuracy_plot_draws_density_on_a_log_axis(results: Path, tmp_path: Path) -> None:
    path = plot_accuracy(compare(load_records([results])), tmp_path / "fig.svg")
    svg = path.read_text()
    assert "weights remaining (log scale)" in svg and "dense (96.00%)" in svg
    assert "10%" in svg and "50%" in svg  # ticks at the densities of the sparsities 0.9 and 0.5


def test_curves_plot_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proto = make_protocol()
    write_run(tmp_path / "r", proto, [make_record(proto, "a", 0.9, s, 0.9, curves=4) for s in range(3)])
    path = plot_curves(load_records([tmp_path / "r"], curves=True), tmp_path / "curves.png")
    assert path.read_bytes().startswith(MAGIC[".png"]) and path.stat().st_size > 1000
    out = tmp_path / "cli.pdf"
    code, _, err = run_cli(capsys, "plot", "curves", str(tmp_path / "r"), "-o", str(out), "--metrics", "val_top1,lr")
    assert code == 0, err
    assert out.read_bytes().startswith(MAGIC[".pdf"])


def test_compare_plot_option(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fig = tmp_path / "board.png"
    code, _, err = run_cli(capsys, "compare", str(results), "--format", "markdown", "--plot", str(fig))
    assert code == 0, err
    assert fig.stat().st_size > 1000


def test_plot_errors_are_user_errors(results: Path, tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="a figure is written as"):
        plot_accuracy(compare(load_records([results])), tmp_path / "fig.jpg")
    with pytest.raises(ResultsError, match="no per-epoch curves"):
        plot_curves(load_records([results], curves=True), tmp_path / "c.png")
    with pytest.raises(ResultsError, match="unknown curve metric"):
        plot_curves(load_records([results], curves=True), tmp_path / "c.png", metrics=["accuracy"])


def test_twenty_methods_never_share_a_look() -> None:
    from prunebench.report.plots import styles

    looks = [(s["color"], s["marker"], s["linestyle"]) for s in styles(20)]
    assert len(set(looks)) == 20 and len({c for c, _, _ in looks}) == 20


def test_one_sparsity_is_a_bar_chart_titled_without_hashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import prunebench.report.plots as plots

    proto = make_protocol()
    write_run(tmp_path, proto, [r for r in standard_records(proto) if r.target_sparsity == 0.9])
    drawn: list = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: drawn.append(fig))  # the figure, not its file
    plot_accuracy(compare(load_records([tmp_path])), tmp_path / "bars.png")
    (ax,) = drawn[0].axes
    bars = [c for c in ax.containers if type(c).__name__ == "BarContainer"]
    assert len(bars) == 3 and ax.get_xscale() == "linear"  # a bar per method, no sparsity axis
    assert ax.get_title() == "tiny" and ax.get_legend() is not None
    assert ax.get_legend().get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1  # outside the data
