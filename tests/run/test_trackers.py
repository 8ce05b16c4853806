"""`run --log tensorboard --log mlflow`: every job logged as one run of each tracker, read back with the
trackers' own readers (TensorBoard's event accumulator, MLflow's client on its local file store)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from prunebench.results import load_records
from prunebench.testing import TINY


def test_jobs_are_logged_to_tensorboard_and_mlflow(cli, tmp_path: Path, shared_cache: Path) -> None:  # type: ignore[no-untyped-def]
    protocol = tmp_path / "tiny.yaml"
    protocol.write_text(TINY.replace("retrain: {epochs: 1,", "retrain: {epochs: 2,"))
    results = tmp_path / "r"
    done = cli(
        "run", protocol, "--results", results, "--cache", shared_cache, "--device", "cpu", "--sparsities", "0.5",
        "--log", "tensorboard", "--log", "mlflow",
    )  # fmt: skip
    assert done.code == 0, done.err
    (run_dir,) = results.iterdir()
    records = {x.record.job_id: x.record for x in load_records([run_dir], curves=True)}
    assert len(records) == 3

    for job_id, record in records.items():
        events = EventAccumulator(str(run_dir / "tensorboard" / job_id))
        events.Reload()
        val = [(e.step, e.value) for e in events.Scalars("retrain/val_top1")]
        assert val == [(i + 1, pytest.approx(c.val_top1)) for i, c in enumerate(record.curves)]
        assert record.metrics is not None
        assert events.Scalars("final/test_top1")[0].value == pytest.approx(record.metrics.test_top1)
        assert events.Scalars("final/sparsity_achieved")[0].value == pytest.approx(record.sparsity.achieved)  # type: ignore[union-attr]

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=(run_dir / "mlruns").resolve().as_uri())
    first = next(iter(records.values()))
    experiment = client.get_experiment_by_name(f"tiny-{first.protocol.hash[:10]}")  # grouped by protocol hash
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == sorted(records)
    for run in runs:
        record = records[run.info.run_name]
        assert run.data.params["method"] == record.method.name and run.data.params["seed"] == str(record.seed)
        assert run.data.params["protocol_hash"] == record.protocol.hash
        assert run.data.metrics["test_top1"] == pytest.approx(record.metrics.test_top1)  # type: ignore[union-attr]
        assert run.data.metrics["ledger.retrain.epochs"] == pytest.approx(record.ledger.retrain.epochs)
        history = client.get_metric_history(run.info.run_id, "retrain.val_top1")
        expected = [(i + 1, pytest.approx(c.val_top1)) for i, c in enumerate(record.curves)]
        assert [(m.step, m.value) for m in history] == expected
        assert run.info.status == "FINISHED"

    board = cli("compare", results)
    assert board.code == 0 and "warning" not in board.err  # the trackers' files are not read as records


def test_a_tracker_that_is_not_installed_is_one_line(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import prunebench.trackers.base as base

    monkeypatch.setitem(base.TRACKERS, "mlflow", ("mlflow", "mlflow_not_installed_here", "mlflow"))
    protocol = tmp_path / "tiny.yaml"
    protocol.write_text(TINY)
    missing = cli("run", protocol, "--results", tmp_path / "r", "--cache", tmp_path / "c", "--log", "mlflow")
    assert missing.code == 2
    assert missing.err.strip() == (
        "error: --log mlflow needs mlflow_not_installed_here, which is not installed: pip install 'prunebench[mlflow]'"
    )
    assert not (tmp_path / "r").exists() and not (tmp_path / "c").exists()  # checked before any work


def test_a_long_curve_is_logged_whole_in_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prunebench.results import EpochRecord
    from prunebench.testing import make_protocol, make_record
    from prunebench.trackers import make_trackers
    from prunebench.trackers.base import params_of

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    epoch = {"lr": 0.1, "train_loss": 0.5, "train_top1": 0.8, "val_loss": 0.6, "val_top1": 0.7, "sparsity": 0.9}
    curves = [EpochRecord(stage="retrain", epoch=e + 1, **epoch) for e in range(400)]  # 2,400 points: over 1,000
    record = make_record(make_protocol(), "a", 0.9, 0, 0.9).model_copy(update={"curves": curves})
    (tracker,) = make_trackers(["mlflow"], tmp_path, "tiny", record.protocol.hash)
    tracker.log(record)
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name(tracker.group)
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "retrain.val_top1")] == list(range(1, 401))
    assert set(run.data.params) == set(params_of(record))
