"""`prunebench launch slurm` on a real SLURM cluster (tests/launch/conftest.py): the grid as a job array of
workers; one task requeued mid-job (`scontrol requeue`) resumes its job from the checkpoint, every job runs once,
and `prunebench status` shows the array's state. Bad input gets one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from prunebench.errors import PrunebenchError
from prunebench.launch.slurm import minutes
from prunebench.testing import TINY

METHODS = Path(__file__).parents[1] / "methods" / "fixtures"  # the test methods, loaded by path as a user's are
GRID = (
    TINY.replace("sparsities: [0.5, 0.9]", "sparsities: [0.5, 0.7, 0.9]")
    .replace("seeds: [0]", "seeds: [0, 1]")
    .replace("retrain: {epochs: 1,", "retrain: {epochs: 60,")
    .replace(
        "  - name: global_magnitude\n  - name: layerwise_magnitude\n  - name: random\n",
        f"  - name: {METHODS / 'counted.py'}:Counted\n",
    )
    + "runtime: {checkpoint_every: 0}\n"  # a checkpoint after every epoch: the requeue lands after one
)
JOBS = 6


def _prunebench(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prunebench", *map(str, args)], capture_output=True, text=True, env=env, timeout=300
    )


def _tasks(env: dict[str, str], job_id: str) -> dict[str, str]:
    out = subprocess.run(
        ["squeue", "-h", "-r", "-t", "all", "-j", job_id, "-o", "%i %T"], env=env, capture_output=True, text=True
    )
    return dict(line.split() for line in out.stdout.splitlines() if line.strip())


def _finished(env: dict[str, str], job_id: str, tasks: int | None = None) -> dict[str, str]:
    """The array's task states once every task (at least `tasks` of them) has ended, or after 10 minutes."""
    deadline = time.time() + 600
    states = _tasks(env, job_id)
    while time.time() < deadline:
        states = _tasks(env, job_id)
        if len(states) >= (tasks or 1) and all(s in ("COMPLETED", "FAILED", "CANCELLED") for s in states.values()):
            break
        time.sleep(0.5)
    return states


@pytest.mark.slow
def test_an_array_of_workers_finishes_the_grid_and_a_requeued_task_resumes(
    slurm: dict[str, str], tmp_path: Path
) -> None:
    protocol, results, cache, counts = tmp_path / "grid.yaml", tmp_path / "r", tmp_path / "c", tmp_path / "counts"
    protocol.write_text(GRID)
    assert "counted.py" in GRID
    # The counter is a file each job appends to, which a confined job cannot write: these tasks run unconfined.
    env = {**slurm, "OMP_NUM_THREADS": "1", "PRUNEBENCH_TEST_COUNTS": str(counts), "PRUNEBENCH_CONFINE": "off"}
    submitted = _prunebench(
        env, "launch", "slurm", protocol, "--results", results, "--cache", cache, "--workers", "2", "--time", "20"
    )
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    job_id = submitted.stdout.split("submitted SLURM array ")[1].split(":")[0]
    assert "2 worker(s) for 6 job(s)" in submitted.stdout

    # Wait until a task is retraining a job (its checkpoint is there), then requeue that task.
    deadline = time.time() + 300
    holder = None
    while time.time() < deadline and holder is None:
        if list((cache / "progress").glob("job-*.prev.pt")):
            for lease in results.rglob("*.lease"):
                try:
                    holder = json.loads(lease.read_text())["slurm"]
                except (OSError, ValueError, KeyError):
                    continue
        time.sleep(0.05)
    assert holder is not None, _tasks(env, job_id)
    requeued = subprocess.run(["scontrol", "requeue", holder], env=env, capture_output=True, text=True)
    assert requeued.returncode == 0, requeued.stderr

    tasks = _finished(env, job_id, tasks=2)
    assert set(tasks.values()) == {"COMPLETED"}, tasks
    records = [json.loads(p.read_text()) for p in results.rglob("sparsity-*.json")]
    assert len(records) == JOBS and all(r["status"] == "ok" for r in records)
    starts = Counter(counts.read_text().splitlines())
    # Every job pruned once: the requeued task's job went on from its checkpoint rather than starting over.
    assert len(starts) == JOBS and set(starts.values()) == {1}, starts
    logs = " ".join(p.read_text() for p in results.rglob("slurm/*/*_log.out"))
    assert "resumed from its checkpoint after epoch" in logs, logs[-3000:]
    shown = subprocess.run(["scontrol", "show", "job", holder], env=env, capture_output=True, text=True).stdout
    assert "Restarts=1" in shown, shown

    status = _prunebench(env, "status", protocol, "--results", results, "--cache", cache)
    flat = " ".join(status.stdout.split())
    assert status.returncode == 0 and f"{JOBS} job(s): {JOBS} done" in flat, status.stdout + status.stderr
    assert f"SLURM array {job_id} (2 task(s)): 2 COMPLETED" in flat, flat


@pytest.mark.slow
def test_a_partition_that_does_not_exist_is_one_line(
    slurm: dict[str, str], tiny_protocol: Path, tmp_path: Path
) -> None:
    done = _prunebench(slurm, "launch", "slurm", tiny_protocol, "--results", tmp_path / "r", "--partition", "nowhere")
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0] == "error: --partition: 'nowhere' is not a partition of this cluster (it has debug)"
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").rglob("launches/*"))  # nothing submitted


def test_a_machine_without_sbatch_is_one_line(tiny_protocol: Path, tmp_path: Path, cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # no SLURM on any machine
    done = cli("launch", "slurm", tiny_protocol, "--results", tmp_path / "r")
    lines = [line for line in done.err.splitlines() if line.strip()]
    assert done.code == 2 and len(lines) == 1 and "Traceback" not in done.err, done.err
    assert lines[0].startswith("error: launch slurm: sbatch is not on PATH"), lines


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("sbatch") is None, reason="sbatch is not installed (Debian package slurm-wlm)")
def test_an_unreachable_slurm_is_one_line(tiny_protocol: Path, tmp_path: Path) -> None:
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=x\nSlurmctldHost=nowhere-host\nSlurmctldPort=1\n")
    env = {**os.environ, "SLURM_CONF": str(conf), "PATH": os.environ["PATH"]}
    done = _prunebench(env, "launch", "slurm", tiny_protocol, "--results", tmp_path / "r")
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("error: launch slurm: SLURM does not answer:"), lines


@pytest.mark.slow
def test_a_task_of_two_processes_trains_each_job_with_ddp(slurm: dict[str, str], tmp_path: Path) -> None:
    protocol, results, cache = tmp_path / "tiny.yaml", tmp_path / "r", tmp_path / "c"
    protocol.write_text(TINY.replace("sparsities: [0.5, 0.9]", "sparsities: [0.5]"))
    env = {**slurm, "OMP_NUM_THREADS": "1"}
    submitted = _prunebench(
        env,
        "launch",
        "slurm",
        protocol,
        "--results",
        results,
        "--cache",
        cache,
        "--workers",
        "1",
        "--processes-per-job",
        "2",
        "--time",
        "20",
    )
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    job_id = submitted.stdout.split("submitted SLURM array ")[1].split(":")[0]
    tasks = _finished(env, job_id)
    assert set(tasks.values()) == {"COMPLETED"}, tasks
    records = [json.loads(p.read_text()) for p in results.rglob("sparsity-*.json")]
    assert len(records) == 3 and all(r["status"] == "ok" and r["provenance"]["processes"] == 2 for r in records)


def test_time_limits_read_as_slurm_reads_them() -> None:
    assert minutes("24:00:00") == 1440 and minutes("1-00:00:00") == 1440 and minutes("2-12") == 3600
    assert minutes("90") == 90 and minutes("05:30") == 6 and minutes("0:10:00") == 10
    for bad in ("abc", "0", "1:2:3:4"):
        with pytest.raises(PrunebenchError, match="--time"):
            minutes(bad)


@pytest.mark.slow
def test_tasks_load_the_overrides_and_log_to_the_trackers(slurm: dict[str, str], tmp_path: Path) -> None:
    protocol, results, cache = tmp_path / "tiny.yaml", tmp_path / "r", tmp_path / "c"
    protocol.write_text(TINY)
    env = {**slurm, "OMP_NUM_THREADS": "1"}
    overrides = ["pruning.sparsities=[0.5]", "retrain.epochs=2"]
    args = ["--results", results, "--cache", cache, "--workers", "2", "--time", "20", "--log", "tensorboard"]
    submitted = _prunebench(env, "launch", "slurm", protocol, *overrides, *args)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert "retrain.epochs=2 --results" in submitted.stdout  # the status command it suggests names them too
    job_id = submitted.stdout.split("submitted SLURM array ")[1].split(":")[0]
    tasks = _finished(env, job_id)
    assert set(tasks.values()) == {"COMPLETED"}, tasks
    (run_dir,) = results.iterdir()
    records = [json.loads(p.read_text()) for p in run_dir.rglob("sparsity-*.json")]
    assert len(records) == 3  # the overridden grid: one sparsity, three methods
    assert all(r["provenance"]["overrides"] == overrides and r["retraining"]["epochs"] == 2 for r in records)
    assert sorted(p.name for p in (run_dir / "tensorboard").iterdir()) == sorted(
        r["job_id"].split("/")[0] for r in records
    )
