"""The one way a run starts (prunebench.run.execute), the in-process debug mode, and the run wing's parts that
must not need a runner: `status` reads files, a job gets a frozen environment."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from prunebench.protocol import load_protocol
from prunebench.results import load_records
from prunebench.run import JobEnvironment, RunRequest, execute, plan, prepare
from prunebench.run.runner import run_name
from prunebench.testing import TINY, run_cli


def test_a_request_gives_back_its_own_command_line(tmp_path: Path) -> None:
    """What `--workers` processes and torchrun ranks are started with: every choice of the request, and parsed
    back by `prunebench run` into the same request."""
    request = RunRequest(
        protocol=tmp_path / "p.yaml",
        overrides=("retrain.epochs=3",),
        results=tmp_path / "r",
        cache=tmp_path / "c",
        device="cpu",
        methods=("global_magnitude", "random"),
        sparsities=(0.5, 0.123456789),
        seeds=(0, 2),
        shard=(1, 3),
        variants=("protocol",),
        force=True,
        retry_failed=True,
        save_models=True,
        dense_from=(tmp_path / "d",),
        threads=2,
        update_references=True,
        keep_checkpoints=True,
        limit=4,
        in_process=True,
        log=("tensorboard",),
    )
    argv = request.argv()
    assert argv[:3] == ["run", str(tmp_path / "p.yaml"), "retrain.epochs=3"]
    assert argv[argv.index("--sparsities") + 1] == "0.5,0.123456789"  # no digit lost on the way
    assert argv[argv.index("--threads") : argv.index("--threads") + 2] == ["--threads", "2"]
    assert "--threads" not in request.argv(threads=False)  # workers get their share of the cores instead
    every_field = {f.name for f in dataclasses.fields(RunRequest)} - {"protocol", "overrides"}
    spelled = {a.removeprefix("--").replace("-", "_") for a in argv if a.startswith("--")}
    assert every_field - {"shard", "dense_from", "log"} <= spelled | {"results", "cache", "device"}
    assert {"--shard", "--dense-from", "--log", "--in-process"} <= set(argv)


def test_a_filter_that_selects_nothing_is_one_error(tiny_protocol: Path, tmp_path: Path) -> None:
    from prunebench.errors import PrunebenchError

    request = RunRequest(protocol=tiny_protocol, results=tmp_path / "r", device="cpu", seeds=(0,), shard=(6, 7))
    with pytest.raises(PrunebenchError, match="no job to run"):
        prepare(request)


@pytest.mark.needs_confinement
def test_in_process_mode_runs_the_same_steps_and_is_never_ranked(cli, tiny_protocol: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`run --in-process` runs the method's code here (for a debugger): the same numbers as in a job process, in
    a run directory of its own, marked in every record, shown apart by `compare` and failed by `check`."""
    results, cache = tmp_path / "r", tmp_path / "c"
    common = [tiny_protocol, "seeds=[0,1,2]", "--results", results, "--cache", cache, "--device", "cpu"]
    common += ["--methods", "global_magnitude,random", "--sparsities", "0.9"]
    assert cli("run", *common).code == 0
    debugged = cli("run", *common, "--in-process")
    assert debugged.code == 0, debugged.err
    proto = load_protocol(tiny_protocol, ["seeds=[0,1,2]"])
    isolated_dir, debug_dir = results / run_name(proto), results / run_name(proto, in_process=True)
    assert debug_dir.name.endswith("-in-process") and debug_dir.is_dir()
    isolated = {x.record.job_id: x.record for x in load_records([isolated_dir])}
    debug = {x.record.job_id: x.record for x in load_records([debug_dir])}
    assert set(debug) == set(isolated) and len(debug) == 6
    for job_id, record in isolated.items():
        twin = debug[job_id]
        assert twin.provenance.in_process and not record.provenance.in_process
        assert twin.metrics == record.metrics and twin.weights_sha256 == record.weights_sha256
        assert twin.ledger == record.ledger
    written = json.loads(next(isolated_dir.rglob("sparsity-*.json")).read_text())
    assert "in_process" not in written["provenance"]  # every other record stays as it was

    ranked = cli("compare", isolated_dir, "--format", "json")
    shown_apart = cli("compare", debug_dir, "--format", "json")

    def rows(board: str) -> list[dict[str, object]]:
        ran = ("global_magnitude", "random")
        return [r for r in json.loads(board)["rows"] if r["method"] in ran and r["sparsity_target"] == 0.9]

    assert [r["rank"] for r in rows(ranked.out)] == [1, 1]  # the same results, run isolated, are ranked
    assert len(rows(shown_apart.out)) == 2 and all(r["rank"] is None for r in rows(shown_apart.out))
    assert "runner's process (run --in-process)" in shown_apart.out
    gate = cli("check", debug_dir, "--reference", isolated_dir)
    assert gate.code == 1 and "in-process" in gate.out + gate.err


def test_a_job_gets_a_frozen_environment_not_the_runner(tiny_protocol: Path, tmp_path: Path, shared_cache: Path):
    execution = prepare(RunRequest(protocol=tiny_protocol, results=tmp_path / "r", cache=shared_cache, device="cpu"))
    job = execution.jobs[0]
    run = execution.runner.job_run(job)
    assert isinstance(run.env, JobEnvironment)
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.env.limit = 3  # type: ignore[misc]
    assert not any(type(v).__name__ == "Runner" for v in vars(run).values())
    assert not any(type(v).__name__ == "Runner" for v in vars(run.env).values())


def test_status_reads_files_without_a_runner(
    tiny_protocol: Path, tmp_path: Path, shared_cache: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    """`prunebench status` builds no Runner (which would resolve devices, set threads, and load what a run
    needs): it reads the run directory and the cache."""
    execute(RunRequest(protocol=tiny_protocol, results=tmp_path / "r", cache=shared_cache, device="cpu", seeds=(0,),
                       methods=("random",), sparsities=(0.5,)))  # fmt: skip
    import prunebench.run.runner as runner_module

    def no_runner(*args: object, **kwargs: object) -> None:
        raise AssertionError("status built a Runner")

    monkeypatch.setattr(runner_module.Runner, "__init__", no_runner)
    code, out, err = run_cli(
        capsys, "status", str(tiny_protocol), "--results", str(tmp_path / "r"), "--cache", str(shared_cache)
    )
    assert code == 0, out + err
    jobs = plan(load_protocol(tiny_protocol))
    assert f"{len(jobs)} job(s): 1 done, {len(jobs) - 1} pending" in out


def test_a_regime_without_a_recipe_is_refused_before_anything_runs(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Learning-rate rewinding into a base training of 0 epochs has no recipe: one line naming the method's field
    at validation, not a job that silently retrains under another recipe."""
    protocol = tmp_path / "p.yaml"
    protocol.write_text(
        TINY.replace("base: {epochs: 2", "base: {epochs: 0").replace("- name: random", "- name: lr_rewinding")
    )
    done = cli("run", protocol, "--results", tmp_path / "r", "--cache", tmp_path / "c", "--device", "cpu")
    assert done.code == 2
    (line,) = done.err.strip().splitlines()
    assert "p.yaml:" in line and "methods[2].name" in line and "lr_rewinding has no retraining recipe here" in line
    assert not (tmp_path / "r").exists()
