"""A newcomer's first hour, as the README has them type it: the quickstart command trains (it does not find the
references and stop), the references are never overwritten by accident, results pair with the references'
dense models, a submitted method is ranked beside them and checked, and the small things that cost time
(threads, failed jobs, empty selections, unknown formats, typos, --version, flags) say what they should."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from prunebench.results import load_result

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "protocols" / "quickstart.yaml"
WEAKENED = Path(__file__).parents[1] / "methods" / "fixtures" / "weakened_magnitude.py"


def prunebench(cwd: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it, in a checkout-like folder (`cwd`, with the references in results/)."""
    return subprocess.run(
        [sys.executable, "-m", "prunebench.cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120"},
    )


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            h.update(f.relative_to(folder).as_posix().encode() + f.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the committed references, as a fresh clone has them."""
    where = tmp_path_factory.mktemp("clone")
    shutil.copytree(ROOT / "results", where / "results")
    return where


def reference_of(checkout: Path, label: str, sparsity: float, seed: int):  # type: ignore[no-untyped-def]
    (path,) = checkout.glob(f"results/quickstart-*/{label}/sparsity-{sparsity:g}_seed-{seed}.json")
    return load_result(path)


@pytest.mark.slow
def test_the_quickstart_command_trains_and_pairs_with_the_references(checkout: Path) -> None:
    before = digest(checkout / "results")
    done = prunebench(checkout, "run", QUICKSTART, "--methods", "random", "--sparsities", "0.9", "--seeds", "0")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "1 job(s) run, 0 already done" in done.stdout
    assert "dense base model, seed 0: results/quickstart-" in done.stdout  # shipped, not trained again
    (record_file,) = (checkout / "runs").rglob("sparsity-0.9_seed-0.json")
    record, reference = load_result(record_file), reference_of(checkout, "random", 0.9, 0)
    assert record.base.checkpoint_sha256 == reference.base.checkpoint_sha256  # type: ignore[union-attr]
    assert abs(record.metrics.test_top1 - reference.metrics.test_top1) <= 0.02  # type: ignore[union-attr]
    assert record.provenance.threads == 1  # the default on the CPU, recorded
    assert digest(checkout / "results") == before


@pytest.mark.slow
def test_the_references_are_not_overwritten_without_the_flag(checkout: Path) -> None:
    before = digest(checkout / "results")
    for extra in ([], ["--force"]):
        refused = prunebench(checkout, "run", QUICKSTART, "--results", "results", "--methods", "random", *extra)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        assert "holds the committed references" in refused.stderr and "--update-references" in refused.stderr
    assert digest(checkout / "results") == before


@pytest.mark.slow
@pytest.mark.needs_confinement
def test_a_submitted_method_is_ranked_beside_the_references_and_checked(checkout: Path, tmp_path: Path) -> None:
    """The documented flow, end to end: a new method file in the quickstart protocol, run, compare, check."""
    mine = tmp_path / "mine.py"
    mine.write_text(
        "from prunebench_baselines.magnitude import GlobalMagnitude\n\n"
        "class Mine(GlobalMagnitude):\n    name = 'mine'\n    citation = 'Me et al. 2026'\n"
    )
    protocol = tmp_path / "quickstart.yaml"
    protocol.write_text(QUICKSTART.read_text() + f"  - name: {mine}:Mine\n")
    ran = prunebench(checkout, "run", protocol, "--methods", "mine,global_magnitude", "--sparsities", "0.9")
    assert ran.returncode == 0, ran.stderr[-2000:]
    board = prunebench(checkout, "compare", "runs", "results", "--methods", "mine,global_magnitude", "-f", "json")
    assert board.returncode == 0, board.stderr[-2000:]
    doc = json.loads(board.stdout)
    rows = {r["method"]: r for r in doc["rows"] if r["kind"] == "method" and r["sparsity_target"] == 0.9}
    assert rows["mine"]["n_seeds"] == 5 and rows["mine"]["rank"] is not None  # paired with the references
    assert not [i for i in doc["audit"] if i["kind"] == "base_checkpoint"]
    checked = prunebench(checkout, "check", "runs")  # --reference defaults to results/
    assert checked.returncode == 0 and "PASS" in checked.stdout, checked.stdout[-3000:]


@pytest.mark.slow
@pytest.mark.needs_confinement
def test_a_two_point_regression_fails_the_gate_and_the_references_pass(checkout: Path, tmp_path: Path) -> None:
    assert prunebench(checkout, "check", "results", "--reference", "results").returncode == 0
    protocol = tmp_path / "weakened.yaml"
    text = QUICKSTART.read_text()
    protocol.write_text(
        text[: text.index("methods:")] + f"methods:\n  - {{name: '{WEAKENED}:Weakened', label: global_magnitude}}\n"
    )
    ran = prunebench(checkout, "run", protocol, "--sparsities", "0.9", "--results", tmp_path / "weak")
    assert ran.returncode == 0, ran.stderr[-2000:]
    checked = prunebench(checkout, "check", tmp_path / "weak")
    flat = " ".join(checked.stdout.split())
    assert checked.returncode == 1 and "REGRESSION" in flat
    (record,) = [load_result(f) for f in (tmp_path / "weak").rglob("sparsity-0.9_seed-0.json")]
    reference = reference_of(checkout, "global_magnitude", 0.9, 0)
    assert reference.metrics.test_top1 - record.metrics.test_top1 > 0.01  # type: ignore[union-attr]


@pytest.mark.slow
def test_threads_are_set_and_recorded(tiny_protocol: Path, tmp_path: Path, shared_cache: Path, cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("run", tiny_protocol, "--results", tmp_path / "r", "--cache", shared_cache, "--threads", "2")
    assert result.code == 0, result.err
    assert {load_result(f).provenance.threads for f in (tmp_path / "r").rglob("sparsity-*.json")} == {2}


def test_a_failed_job_is_reported_with_the_way_to_run_it_again(tmp_path: Path, shared_cache: Path, cli) -> None:  # type: ignore[no-untyped-def]
    from prunebench.testing import TINY

    (tmp_path / "bad.py").write_text(
        "from prunebench_baselines.magnitude import GlobalMagnitude\n\n"
        "class Bad(GlobalMagnitude):\n    name = 'bad'\n    def prune(self, ctx):\n        raise ValueError('no')\n"
    )
    (tmp_path / "p.yaml").write_text(TINY.replace("  - name: random\n", "  - name: bad.py:Bad\n"))
    args = ("run", tmp_path / "p.yaml", "--results", tmp_path / "r", "--cache", shared_cache)
    first = cli(*args)
    assert first.code == 1 and "FAILED" in first.out
    again = cli(*args)
    flat = " ".join(again.out.split())
    assert "2 job(s) failed in an earlier run and were not run again" in flat and "--retry-failed runs them" in flat


def test_filters_that_select_nothing_say_so(tiny_protocol: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("run", tiny_protocol, "--results", tmp_path / "r", "--methods", "random", "--sparsities", "0.5",
                 "--shard", "1/2")  # fmt: skip
    assert result.code == 2 and "no job to run" in result.err and "--shard 1/2" in result.err


def test_the_small_things(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    version = cli("--version")
    assert version.code == 0 and version.out.startswith("prunebench ")
    xlsx = cli("compare", ROOT / "results", "-o", tmp_path / "board.xlsx")
    assert xlsx.code == 2 and ".xlsx names no format" in xlsx.err and not (tmp_path / "board.xlsx").exists()
    jpg = cli("compare", ROOT / "results", "-o", tmp_path / "board.md", "--plot", tmp_path / "plot.jpg")
    assert jpg.code == 2 and "a figure is written as .png" in jpg.err
    assert not (tmp_path / "board.md").exists() and not (tmp_path / "plot.jpg").exists()  # nothing written first
    typo = cli("compare", ROOT / "results", "--methods", "globl_magnitude")
    assert typo.code == 2 and "did you mean 'global_magnitude'" in typo.err
    helped = cli("run", "--help")
    assert "--force " in helped.out and "<bool>" not in helped.out  # flags shown as flags


@pytest.mark.slow
def test_a_log_gets_a_line_per_epoch_with_the_time(tiny_protocol: Path, tmp_path: Path, shared_cache: Path) -> None:
    done = prunebench(tmp_path, "run", tiny_protocol, "--methods", "random", "--cache", shared_cache)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert any(" random/sparsity-0.5_seed-0: retraining epoch 1/1: train loss " in ln for ln in lines)
    assert any(ln[2] == ":" and "[1/2] random/sparsity-0.5_seed-0: test top-1" in ln for ln in lines)
