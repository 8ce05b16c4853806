"""Workers that share a results directory and a cache (local `--workers`, array tasks, any scheduler): every job
runs once, every dense model is trained once, and a worker killed with SIGKILL has its job taken over once its
lease is stale. Real processes, real kills."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from prunebench.results.files import HOST
from prunebench.run.leases import Claims, seal
from prunebench.testing import TINY

METHODS = Path(__file__).parents[1] / "methods" / "fixtures"  # the test methods, loaded by path as a user's are
COUNTED = (
    TINY.replace("sparsities: [0.5, 0.9]", "sparsities: [0.5, 0.7, 0.9]")
    .replace("seeds: [0]", "seeds: [0, 1]")
    .replace(
        "  - name: global_magnitude\n  - name: layerwise_magnitude\n  - name: random\n",
        f"  - name: {METHODS / 'counted.py'}:Counted\n",
    )
)
JOBS = 6
assert "counted.py" in COUNTED


def _protocol(tmp_path: Path, text: str = COUNTED) -> Path:
    path = tmp_path / "counted.yaml"
    path.write_text(text)
    return path


def _env(counts: Path, **extra: str) -> dict[str, str]:
    # The method counts its runs in files of `counts`, which a confined job process cannot write: unconfined
    # (what is tested here is how the workers share the grid, not the confinement: tests/hostile/test_confinement.py)
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PRUNEBENCH_TEST_COUNTS": str(counts),
        "PRUNEBENCH_CONFINE": "off",
        **extra,
    }


def _start(protocol: Path, results: Path, cache: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "prunebench", "run", str(protocol), "--results", str(results), "--cache", str(cache)]
    return subprocess.Popen(
        [*cmd, "--device", "cpu", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )


def _records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(results.rglob("sparsity-*.json"))]


def test_a_lease_is_held_by_one_worker_until_it_is_stale(tmp_path: Path) -> None:
    first, second = Claims(tmp_path, ttl=30), Claims(tmp_path, ttl=30)
    lease = first.claim("m/sparsity-0.5_seed-0")
    assert lease is not None and second.claim("m/sparsity-0.5_seed-0") is None
    holder = second.holder("m/sparsity-0.5_seed-0")
    assert holder is not None and not holder.stale and str(os.getpid()) in holder.owner
    old = time.time() - 60  # no heartbeat for a minute: its holder is gone
    os.utime(lease.path, (old, old))
    taken = second.claim("m/sparsity-0.5_seed-0")
    assert taken is not None and taken.token != lease.token
    assert first.lost("m/sparsity-0.5_seed-0")  # the first holder learns it lost the job ...
    first.release("m/sparsity-0.5_seed-0")
    assert taken.path.exists() and not second.lost("m/sparsity-0.5_seed-0")  # ... and cannot release the new lease
    second.release_all()
    assert not taken.path.exists() and not list(tmp_path.rglob("*.stale"))


def test_a_lease_whose_holder_is_gone_is_taken_over_at_once(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    claims = Claims(tmp_path, ttl=3600)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lease = claims.path("a")
    info = {"owner": "x", "host": HOST, "pid": int(dead.stdout), "slurm": None, "restart": 0, "since": 0, "token": "t"}
    lease.write_text(json.dumps(seal(lease, info, claims.key)))  # a process of this host that no longer runs
    assert claims.claim("a") is not None
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    earlier = {**info, "host": "elsewhere", "pid": 1, "slurm": "77_3", "restart": 0}
    # This array task before SLURM requeued it.
    claims.path("b").write_text(json.dumps(seal(claims.path("b"), earlier, claims.key)))
    assert claims.claim("b") is not None
    same = {**earlier, "restart": 1}  # another worker of this very run of the task (local --workers)
    claims.path("c").write_text(json.dumps(seal(claims.path("c"), same, claims.key)))
    assert claims.claim("c") is None
    claims.path("d").write_text(json.dumps(same))  # the same, not sealed (written by a job's code): no claim
    assert claims.claim("d") is not None
    claims.release_all()


@pytest.mark.slow
def test_four_workers_on_one_results_directory_run_every_job_once(tmp_path: Path) -> None:
    protocol, results, cache, counts = _protocol(tmp_path), tmp_path / "r", tmp_path / "c", tmp_path / "counts"
    workers = [_start(protocol, results, cache, _env(counts)) for _ in range(4)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0] * 4, outputs
    records = _records(results)
    assert len(records) == JOBS and all(r["status"] == "ok" for r in records)
    starts = Counter(counts.read_text().splitlines())
    assert len(starts) == JOBS and set(starts.values()) == {1}, starts  # every job once
    log = "\n".join(outputs)
    for seed in (0, 1):  # every dense model trained by one worker, once
        assert log.count(f"dense base model, seed {seed}: training epoch 1/") == 1, log[-3000:]
    assert len(list((cache / "base").glob("*.pt"))) == 2
    assert not list(results.rglob("*.tmp")) and not list(results.rglob("*.lease")) and not list(cache.rglob("*.lease"))


@pytest.mark.slow
def test_workers_option_runs_the_grid_with_worker_processes(tmp_path: Path) -> None:
    protocol, results, cache, counts = _protocol(tmp_path), tmp_path / "r", tmp_path / "c", tmp_path / "counts"
    launcher = _start(protocol, results, cache, _env(counts), "--workers", "2")
    out = launcher.communicate(timeout=600)[0]
    assert launcher.returncode == 0, out
    assert "2 workers on 6 job(s)" in out and f"{JOBS}/{JOBS} job(s) done" in out
    assert len(_records(results)) == JOBS
    assert set(Counter(counts.read_text().splitlines()).values()) == {1}
    logs = sorted(results.glob("*/workers/*.log"))
    assert len(logs) == 2  # each worker's output: between them, one line per finished job
    assert sum(log.read_text().count(": test top-1 ") for log in logs) == JOBS
    # The summary once, by the launcher when every worker has ended; a worker's log ends with its own one line.
    assert out.count("Test top-1 %") == 1 and not any("Test top-1 %" in log.read_text() for log in logs)
    assert all("job(s) run" in log.read_text().splitlines()[-1] for log in logs)
    # Run again: nothing is pending, so auto starts no worker beside the launcher (on any machine: the rule is
    # one worker per core, never more than the jobs left).
    again = _start(protocol, results, cache, _env(counts), "--workers", "auto")
    out = again.communicate(timeout=600)[0]
    assert again.returncode == 0 and "workers on" not in out and f"{JOBS} already done" in out, out[-2000:]


@pytest.mark.slow
def test_a_killed_workers_job_is_taken_over(tmp_path: Path) -> None:
    slow = COUNTED.replace("retrain: {epochs: 1,", "retrain: {epochs: 6,")
    protocol, results, cache, counts = _protocol(tmp_path, slow), tmp_path / "r", tmp_path / "c", tmp_path / "counts"
    env = _env(counts, PRUNEBENCH_LEASE_TTL="3")
    doomed = _start(protocol, results, cache, env)
    deadline = time.time() + 300
    while time.time() < deadline and not (counts.exists() and counts.read_text().count("\n") >= 2):
        time.sleep(0.05)  # the second job has pruned: it is retraining, under its lease
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.communicate(timeout=60)
    leases = list(results.rglob("*.lease"))
    assert len(leases) == 1  # the killed worker's claim is left behind ...
    resumable = bool(list((cache / "progress").glob("job-*.pt")))  # killed after a retraining epoch's checkpoint
    shown = subprocess.run(
        [sys.executable, "-m", "prunebench", "status", str(protocol), "--results", str(results), "--cache", str(cache)],
        capture_output=True,
        text=True,
        env=env,
    )
    flat = " ".join(shown.stdout.split())
    assert shown.returncode == 0 and "1 done" in flat and "1 stale" in flat, shown.stdout  # its holder is gone
    assert f":{doomed.pid}, since" in flat and "cached" in flat  # who held it; the dense model it trained
    survivor = _start(protocol, results, cache, env)
    out = survivor.communicate(timeout=600)[0]
    assert survivor.returncode == 0, out
    records = _records(results)
    assert len(records) == JOBS and all(r["status"] == "ok" for r in records)
    starts = Counter(counts.read_text().splitlines())
    # ... and its job was taken over: resumed from its checkpoint (pruned once), or run again from the start.
    expected = [1] * JOBS if resumable else [1] * (JOBS - 1) + [2]
    assert sorted(starts.values()) == expected, (starts, resumable)
    assert ("resumed from its checkpoint" in out) == resumable, out[-2000:]
    assert not list(results.rglob("*.lease"))


def test_auto_uses_every_core_on_the_cpu_but_for_a_run_that_times_its_models(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from prunebench.run.scheduling import workers

    monkeypatch.setattr(workers, "cpu_count", lambda: 2)
    assert workers.resolve_workers("auto", "cpu", threads=1, jobs=120) == 2  # both cores of the 2-core machine
    assert workers.resolve_workers("auto", "cpu", threads=2, jobs=120) == 1  # a worker of two threads fills them
    assert workers.resolve_workers("auto", "cpu", threads=1, jobs=1) == 1  # no more workers than jobs
    assert workers.resolve_workers("auto", "cpu", threads=1, jobs=120, quiet=workers.QUIET_MACHINE) == 1
    assert workers.resolve_workers("3", "cpu", threads=1, jobs=120, quiet=workers.QUIET_MACHINE) == 3  # as asked


@pytest.mark.slow
def test_by_default_the_grid_runs_on_both_cores_with_the_records_of_one_worker(tmp_path: Path) -> None:
    """Without --workers (and PRUNEBENCH_WORKERS), a 2-core machine runs two workers; each job's record is the one
    a single worker writes, bit for bit."""
    from prunebench.run.provenance import cpu_count

    protocol, counts = _protocol(tmp_path), tmp_path / "counts"
    env = {k: v for k, v in _env(counts).items() if k != "PRUNEBENCH_WORKERS"}
    auto = _start(protocol, tmp_path / "auto", tmp_path / "c", env)
    out = auto.communicate(timeout=600)[0]
    assert auto.returncode == 0, out
    if cpu_count() >= 2:
        assert "2 workers on 6 job(s)" in out
    one = _start(protocol, tmp_path / "one", tmp_path / "c", {**env, "PRUNEBENCH_WORKERS": "1"})
    assert one.communicate(timeout=600)[0] and one.returncode == 0

    def outcome(root: Path) -> dict:
        keys = ("weights_sha256", "metrics", "ledger", "curves", "sparsity")
        return {r["job_id"]: [r.get(k) for k in keys] for r in _records(root)}

    assert outcome(tmp_path / "auto") == outcome(tmp_path / "one") and len(outcome(tmp_path / "one")) == JOBS


@pytest.mark.slow
def test_a_protocol_that_times_its_models_keeps_one_worker_and_says_why(tmp_path: Path) -> None:
    protocol = tmp_path / "timed.yaml"
    protocol.write_text(TINY + "efficiency: {batch_sizes: [1], rounds: 1, min_run_time: 0.01}\n")
    env = {k: v for k, v in os.environ.items() if k != "PRUNEBENCH_WORKERS"}
    command = [sys.executable, "-m", "prunebench", "run", str(protocol), "--results", str(tmp_path / "r")]
    done = subprocess.run(
        [*command, "--cache", str(tmp_path / "c"), "--device", "cpu", "--limit", "2"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**env, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert "prunebench: one worker: the protocol's efficiency section times every job's model" in done.stderr
    assert "workers on" not in done.stdout + done.stderr
