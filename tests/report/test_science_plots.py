"""The science figures (shedding curves, correlation bars, retraining-LR sweeps): built from
hand-written records with known values, the tables behind them checked number by number, and the
files produced, non-empty and of the asked format (also through the CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from prunebench.errors import ResultsError
from prunebench.report.science_plots import (
    correlation_table,
    lr_sweep_table,
    plot_correlation,
    plot_lr_sweep,
    plot_shedding,
    shedding_series,
)
from prunebench.results import ResultRecord, VariantRecord, load_records
from prunebench.testing import make_protocol, make_record, run_cli, write_run

MAGIC = {".png": b"\x89PNG", ".pdf": b"%PDF", ".svg": b"<?xml"}


def _with_analyses(record: ResultRecord, per_epoch: list[dict], start: dict | None = None) -> ResultRecord:
    curves = [c.model_copy(update={"analyses": a}) for c, a in zip(record.curves, per_epoch, strict=True)]
    analyses = {"retrain_start": start} if start is not None else {}
    return record.model_copy(update={"curves": curves, "analyses": analyses})


def _variant(record: ResultRecord, name: str, kind: str, *, lr: float | None = None, extra: int = 0) -> ResultRecord:
    label, rest = record.job_id.split("/", 1)
    variant = VariantRecord(name=name, kind=kind, recipe={"optimizer": {"lr": lr}}, extra_epochs=extra, lr=lr)
    return record.model_copy(update={"variant": variant, "job_id": f"{label}/{name}/{rest}"})


def _check(path: Path, suffix: str) -> None:
    data = path.read_bytes()
    assert len(data) > 1000 and data.startswith(MAGIC[suffix])


# ---- shedding ----------------------------------------------------------------------------------------
def _shedding_records() -> tuple[object, list[ResultRecord]]:
    proto = make_protocol()
    records = []
    for seed in range(2):
        for label, grow in (("a", 0.0), ("random", 0.1)):
            r = make_record(proto, label, 0.9, seed, 0.9, curves=3)
            per_epoch = [
                {"shedding": {"shed": 1, "shed_fraction": grow * e + 0.01 * seed, "effective_sparsity": 0.9 + grow * e}}
                for e in range(1, 4)
            ]
            start = {"shedding": {"shed": 0, "shed_fraction": 0.5 if label == "random" else 0.0}}
            records.append(_with_analyses(r, per_epoch, start))
    records.append(_variant(records[1], "lr-0.1", "sweep", lr=0.1))
    return proto, records


def test_shedding_series_has_known_values() -> None:
    _, records = _shedding_records()
    series = shedding_series(records, "shed_fraction")
    assert set(series) == {0.9}
    assert set(series[0.9]) == {"a", "random", "random [lr-0.1]"}
    random = series[0.9]["random"]
    assert random[0] == [50.0, 50.0]  # retraining start
    assert random[2] == pytest.approx([20.0, 21.0])  # epoch 2: 0.1 * 2 + 0.01 * seed, in percent
    assert sorted(series[0.9]["a"]) == [0, 1, 2, 3]
    # effective sparsity has no retraining-start value here: the curve begins at epoch 1
    assert sorted(shedding_series(records, "effective_sparsity")[0.9]["random"]) == [1, 2, 3]


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_shedding_plot_is_written(tmp_path: Path, suffix: str) -> None:
    proto, records = _shedding_records()
    write_run(tmp_path / "r", proto, records)
    path = plot_shedding(load_records([tmp_path / "r"], curves=True), tmp_path / f"shed{suffix}")
    _check(path, suffix)
    if suffix == ".svg":
        svg = path.read_text()
        assert "random [lr-0.1]" in svg and "effective sparsity" in svg and "target 90%" in svg


def test_shedding_plot_cli_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proto, records = _shedding_records()
    write_run(tmp_path / "r", proto, records)
    out = tmp_path / "cli.png"
    code, _, err = run_cli(
        capsys, "plot", "shedding", str(tmp_path / "r"), "-o", str(out), "--variants", "protocol", "--methods", "random"
    )
    assert code == 0, err
    _check(out, ".png")
    code, _, err = run_cli(capsys, "plot", "shedding", str(tmp_path / "r"), "-o", str(out), "--metrics", "nope")
    assert code == 2 and "unknown shedding metric" in err
    plain = tmp_path / "plain"
    write_run(plain, proto, [make_record(proto, "a", 0.9, 0, 0.9, curves=2)])
    with pytest.raises(ResultsError, match="no shedding curves"):
        plot_shedding(load_records([plain], curves=True), tmp_path / "x.png")


# ---- correlation -------------------------------------------------------------------------------------
def _correlation_records() -> tuple[object, list[ResultRecord]]:
    proto = make_protocol()
    records = []
    for seed in range(3):
        for label, level in (("a", 0.8), ("b", 0.3)):
            r = make_record(proto, label, 0.9, seed, 0.9, curves=2)
            final = {
                "init": {"0.1": level + 0.01 * seed, "0.5": level},
                "base": {"0.1": 1.0, "0.5": 1.0},
            }
            per_epoch = [{"correlation": {"init": {"0.1": 0.0, "0.5": 0.0}}}, {"correlation": final}]
            records.append(_with_analyses(r, per_epoch))
    return proto, records


def test_correlation_table_takes_the_final_epoch() -> None:
    _, records = _correlation_records()
    table = correlation_table(records)
    assert set(table[0.9]) == {"init", "base"}
    assert table[0.9]["init"]["a"]["0.1"] == pytest.approx([0.80, 0.81, 0.82])
    assert table[0.9]["init"]["b"]["0.5"] == [0.3, 0.3, 0.3]
    assert table[0.9]["base"]["b"]["0.1"] == [1.0, 1.0, 1.0]


def test_correlation_plot_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proto, records = _correlation_records()
    write_run(tmp_path / "r", proto, records)
    path = plot_correlation(load_records([tmp_path / "r"], curves=True), tmp_path / "corr.svg")
    _check(path, ".svg")
    svg = path.read_text()
    assert "p=0.1" in svg and "against init" in svg and "against base" in svg
    out = tmp_path / "corr.pdf"
    code, _, err = run_cli(capsys, "plot", "correlation", str(tmp_path / "r"), "-o", str(out))
    assert code == 0, err
    _check(out, ".pdf")


# ---- retraining-LR sweep -----------------------------------------------------------------------------
def _sweep_records() -> tuple[object, list[ResultRecord]]:
    proto = make_protocol()  # the protocol's own retraining LR is its retrain.optimizer.lr
    records = []
    for seed in range(2):
        base = make_record(proto, "a", 0.5, seed, 0.90 + 0.01 * seed)
        records.append(base)
        records.append(_variant(make_record(proto, "a", 0.5, seed, 0.95), "lr-0.5", "sweep", lr=0.5))
        records.append(_variant(make_record(proto, "a", 0.5, seed, 0.96), "ext-10", "extension", extra=10))
        records[-1] = records[-1].model_copy(
            update={"variant": records[-1].variant.model_copy(update={"recipe": {"optimizer": {"lr": 0.05}}})}
        )
        records.append(
            _variant(make_record(proto, "a", 0.5, seed, 0.97), "lr-0.5_ext-10", "extension", lr=0.5, extra=10)
        )
        records.append(_variant(make_record(proto, "a", 0.5, seed, 0.10), "recipe-a", "swap", lr=None))
    return proto, records


def test_lr_sweep_table_separates_extensions_and_drops_swaps() -> None:
    proto, records = _sweep_records()
    table = lr_sweep_table(records, "test_top1")
    own = proto.retrain.optimizer.lr
    assert set(table[0.5]) == {"a", "a +10 epochs"}
    assert table[0.5]["a"][own] == pytest.approx([90.0, 91.0])
    assert table[0.5]["a"][0.5] == pytest.approx([95.0, 95.0])
    assert table[0.5]["a +10 epochs"][0.05] == pytest.approx([96.0, 96.0])
    assert table[0.5]["a +10 epochs"][0.5] == pytest.approx([97.0, 97.0])
    assert all(10.0 not in v for pts in table[0.5].values() for v in pts.values())  # the swap run is left out
    with pytest.raises(ResultsError, match="unknown metric"):
        lr_sweep_table(records, "nope")


def test_lr_sweep_plot_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proto, records = _sweep_records()
    write_run(tmp_path / "r", proto, records)
    path = plot_lr_sweep(load_records([tmp_path / "r"]), tmp_path / "sweep.svg")
    _check(path, ".svg")
    assert "a +10 epochs" in path.read_text()
    out = tmp_path / "sweep.png"
    code, _, err = run_cli(capsys, "plot", "lr-sweep", str(tmp_path / "r"), "-o", str(out), "--metric", "val_top1")
    assert code == 0, err
    _check(out, ".png")
