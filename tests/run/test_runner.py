"""The runner on real data: exact sparsity, masks through retraining, shared base models,
resume, interruption, determinism, failing methods."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from prunebench.protocol import load_protocol
from prunebench.results import ResultRecord, load_result
from prunebench.run import Runner, plan
from prunebench.testing import TINY

BAD_METHODS = textwrap.dedent(
    """\
    import torch
    from prunebench.methods import Method, Taxonomy

    TAX = Taxonomy(when="after_training", granularity="unstructured", scope="global",
                   schedule="one_shot", retraining="fine_tune")

    class Raises(Method):
        name = "raises"
        taxonomy = TAX
        def prune(self, ctx):
            raise RuntimeError("scoring exploded")

    class Diverges(Method):
        name = "diverges"
        taxonomy = TAX
        def prune(self, ctx):
            return ctx.masks_from_scores({k: w.abs() for k, w in ctx.weights().items()}, scope="global")
        def loss_term(self, model):
            return torch.tensor(float("nan"))

    class WrongShape(Method):
        name = "wrong_shape"
        taxonomy = TAX
        def prune(self, ctx):
            return {k: torch.ones(3, dtype=torch.bool) for k in ctx.weights()}

    class Tamperer(Method):
        '''Prunes by magnitude but also scales the weights it keeps: retraining off the books.'''
        name = "tamperer"
        taxonomy = TAX
        def prune(self, ctx):
            with torch.no_grad():
                for w in ctx.weights().values():
                    w.mul_(1.5)
            return ctx.masks_from_scores({k: w.abs() for k, w in ctx.weights().items()}, scope="global")

    class SelfTrainer(Method):
        '''Claims the model's weights as its own, to train them outside the protocol's optimizer.'''
        name = "self_trainer"
        taxonomy = TAX
        def prune(self, ctx):
            self.mine = list(ctx.model.parameters())
            return ctx.masks_from_scores({k: w.abs() for k, w in ctx.weights().items()}, scope="global")
        def own_parameters(self):
            return self.mine

    class Liar(Method):
        '''Claims nothing: returns all-ones masks; the engine must measure 0 sparsity, not the target.'''
        name = "liar"
        taxonomy = TAX
        def prune(self, ctx):
            return {k: torch.ones_like(w, dtype=torch.bool) for k, w in ctx.weights().items()}
    """
)


def run_all(protocol: Path, results: Path, cache: Path, **kwargs: object) -> list[ResultRecord]:
    p = load_protocol(protocol)
    runner = Runner(p, results_dir=results, cache_dir=cache, device="cpu", **kwargs)  # type: ignore[arg-type]
    return runner.run(plan(p))


def records(results: Path) -> dict[str, ResultRecord]:
    out = {}
    for f in results.rglob("*.json"):
        if f.name != "protocol.json":
            r = load_result(f)
            out[r.job_id] = r
    return out


def test_grid_exact_sparsity_shared_base_and_masks_survive(tiny_protocol: Path, tmp_path: Path, shared_cache: Path):
    ran = run_all(tiny_protocol, tmp_path / "r", shared_cache)
    assert len(ran) == 6
    got = records(tmp_path / "r")
    assert set(got) == {
        f"{m}/sparsity-{s}_seed-0" for m in ("global_magnitude", "layerwise_magnitude", "random") for s in (0.5, 0.9)
    }
    assert len({r.base.checkpoint_sha256 for r in got.values() if r.base}) == 1, "every method shares the base"
    for r in got.values():
        assert r.status == "ok", r.reasons
        assert r.sparsity is not None and r.metrics is not None
        total = sum(layer.numel for layer in r.sparsity.per_layer.values())
        zeros = sum(layer.zeros for layer in r.sparsity.per_layer.values())
        # Measured after retraining: the pruned weights stayed exactly zero, and nothing else is zero.
        if r.method.name == "layerwise_magnitude":
            for layer in r.sparsity.per_layer.values():
                assert layer.zeros == round(r.sparsity.target * layer.numel)
        else:
            assert zeros == round(r.sparsity.target * total), r.job_id
        assert r.ledger.retrain.epochs == pytest.approx(1.0)
        assert r.ledger.retrain.steps == 11  # ceil(1294 training examples / 128)
        assert r.ledger.base.epochs == pytest.approx(2.0)
        assert r.cost is not None and r.cost.flops_effective < r.cost.flops_dense
        assert r.curves and r.curves[-1].stage == "retrain" and r.curves[-1].test_top1 is None
        assert r.provenance.torch == torch.__version__
    # Global magnitude prunes the layers unevenly; layerwise does not.
    g = got["global_magnitude/sparsity-0.9_seed-0"].sparsity
    assert g is not None and len({round(layer.sparsity, 2) for layer in g.per_layer.values()}) > 1


def test_method_claims_are_not_trusted(tmp_path: Path, shared_cache: Path):
    (tmp_path / "bad.py").write_text(BAD_METHODS)
    (tmp_path / "p.yaml").write_text(_tiny_with_methods(["bad.py:Liar"], sparsities="[0.9]"))
    (r,) = run_all(tmp_path / "p.yaml", tmp_path / "r", shared_cache)
    assert r.sparsity is not None and r.sparsity.achieved == 0.0
    assert r.status == "violation"
    assert any("off the target 0.9" in reason for reason in r.reasons)


def _tiny_with_methods(methods: list[str], sparsities: str = "[0.5]") -> str:
    head = TINY.split("methods:")[0].replace("[0.5, 0.9]", sparsities)
    return head + "methods:\n" + "".join(f"  - name: {m}\n" for m in methods)


def test_failing_methods_are_recorded_and_the_grid_goes_on(tmp_path: Path, shared_cache: Path):
    (tmp_path / "bad.py").write_text(BAD_METHODS)
    methods = ["bad.py:Raises", "bad.py:Diverges", "bad.py:WrongShape", "global_magnitude"]
    (tmp_path / "p.yaml").write_text(_tiny_with_methods(methods))
    ran = {r.method.name: r for r in run_all(tmp_path / "p.yaml", tmp_path / "r", shared_cache)}
    assert ran["raises"].status == "failed"
    assert "RuntimeError: scoring exploded" in ran["raises"].reasons[0]
    assert ran["diverges"].status == "failed" and "diverged" in ran["diverges"].reasons[0]
    assert ran["wrong_shape"].status == "failed" and "invalid masks" in ran["wrong_shape"].reasons[0]
    assert ran["global_magnitude"].status == "ok"
    # Failed jobs still have a valid record on disk, with their status and reason.
    on_disk = {r.method.name: r for r in records(tmp_path / "r").values()}
    assert {name: r.status for name, r in on_disk.items()} == {
        "raises": "failed",
        "diverges": "failed",
        "wrong_shape": "failed",
        "global_magnitude": "ok",
    }
    assert on_disk["raises"].reasons == ran["raises"].reasons and on_disk["raises"].metrics is None


@pytest.mark.slow
def test_resume_skips_finished_jobs_and_force_reruns(tiny_protocol: Path, tmp_path: Path, shared_cache: Path):
    results = tmp_path / "r"
    assert len(run_all(tiny_protocol, results, shared_cache)) == 6
    files = sorted(f for f in results.rglob("*.json") if f.name != "protocol.json")
    before = {f: f.read_bytes() for f in files}
    assert run_all(tiny_protocol, results, shared_cache) == []
    assert {f: f.read_bytes() for f in files} == before
    files[0].unlink()
    files[1].write_text('{"schema_version": 1, "truncated')  # a corrupt file is re-run, not trusted
    with pytest.warns(UserWarning, match="not a valid result; it will be re-run"):
        rerun = run_all(tiny_protocol, results, shared_cache)
    assert len(rerun) == 2
    assert len(run_all(tiny_protocol, results, shared_cache, force=True)) == 6


def test_same_seed_gives_bit_identical_results(tiny_protocol: Path, tmp_path: Path):
    p = load_protocol(tiny_protocol)
    jobs = plan(p, methods=["random", "global_magnitude"], sparsities=[0.9])
    a = Runner(p, results_dir=tmp_path / "a", cache_dir=tmp_path / "ca", device="cpu").run(jobs)
    b = Runner(p, results_dir=tmp_path / "b", cache_dir=tmp_path / "cb", device="cpu").run(jobs)
    for x, y in zip(a, b, strict=True):
        assert x.base == y.base  # the dense model retrained from scratch, bit for bit
        assert x.metrics == y.metrics
        assert x.sparsity == y.sparsity
        assert [c.model_dump() for c in x.curves] == [c.model_dump() for c in y.curves]
    other_seed = Runner(p, results_dir=tmp_path / "c", cache_dir=tmp_path / "cc", device="cpu")
    (z,) = other_seed.run([replace(jobs[0], seed=7)])
    assert z.base is not None and a[0].base is not None
    assert z.base.checkpoint_sha256 != a[0].base.checkpoint_sha256


def test_corrupt_cached_base_model_is_retrained(tiny_protocol: Path, tmp_path: Path):
    p = load_protocol(tiny_protocol)
    jobs = plan(p, methods=["global_magnitude"], sparsities=[0.5])
    runner = Runner(p, results_dir=tmp_path / "r", cache_dir=tmp_path / "c", device="cpu")
    (first,) = runner.run(jobs)
    path, _ = runner.cache.locate(0)
    path.write_bytes(path.read_bytes()[:100])
    again = Runner(p, results_dir=tmp_path / "r", cache_dir=tmp_path / "c", device="cpu", force=True)
    with pytest.warns(UserWarning, match="unreadable"):
        (second,) = again.run(jobs)
    assert second.base == first.base


@pytest.mark.slow
def test_killed_run_loses_at_most_the_job_in_flight(tmp_path: Path, shared_cache: Path):
    # Longer retraining than the tiny protocol's, so that the kill lands mid-grid however busy the machine is.
    tiny_protocol = tmp_path / "slow.yaml"
    tiny_protocol.write_text(TINY.replace("retrain: {epochs: 1,", "retrain: {epochs: 6,"))
    results = tmp_path / "r"
    cmd = [
        sys.executable,
        "-m",
        "prunebench.cli",
        "run",
        str(tiny_protocol),
        "--results",
        str(results),
        "--cache",
        str(shared_cache),
        "--device",
        "cpu",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
    deadline = time.time() + 300
    while time.time() < deadline and len(list(results.rglob("sparsity-*.json"))) < 1:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = list(results.rglob("sparsity-*.json"))
    assert 1 <= len(finished) < 6, "the run should be killed mid-grid"
    for f in finished:
        load_result(f)  # never half-written
    rerun = run_all(tiny_protocol, results, shared_cache)
    assert len(rerun) == 6 - len(finished)
    assert len(records(results)) == 6
    assert not list(results.rglob("*.tmp"))


def test_protocol_json_records_the_resolved_protocol(tiny_protocol: Path, tmp_path: Path, shared_cache: Path):
    run_all(tiny_protocol, tmp_path / "r", shared_cache)
    p = load_protocol(tiny_protocol)
    saved = json.loads((tmp_path / "r" / p.run_name / "protocol.json").read_text())
    assert saved["hash"] == p.hash
    assert saved["protocol"]["retrain"]["optimizer"]["weight_decay"] == 0.0001


def test_weights_changed_outside_the_engine_have_no_effect_or_are_a_violation(
    tmp_path: Path, shared_cache: Path, monkeypatch: pytest.MonkeyPatch
):
    (tmp_path / "bad.py").write_text(BAD_METHODS)
    (tmp_path / "p.yaml").write_text(_tiny_with_methods(["bad.py:Tamperer", "global_magnitude"]))
    # In a process of its own, the method scales its copy of the model: the engine's never changes.
    ran = {r.method.name: r for r in run_all(tmp_path / "p.yaml", tmp_path / "own", shared_cache)}
    assert ran["tamperer"].status == "ok" and ran["tamperer"].provenance.method_process
    assert ran["tamperer"].weights_sha256 == ran["global_magnitude"].weights_sha256
    # In the engine's process, the seal undoes the change and makes it a violation.
    monkeypatch.setenv("PRUNEBENCH_SHARED_ENGINE", "1")
    ran = {r.method.name: r for r in run_all(tmp_path / "p.yaml", tmp_path / "r", shared_cache)}
    assert ran["tamperer"].status == "violation"
    assert "changed features.0.0.weight and 3 more outside the engine in prune() (undone)" in ran["tamperer"].reasons[0]
    assert ran["global_magnitude"].status == "ok"


def test_a_method_cannot_take_the_models_weights_out_of_the_shared_optimizer(tmp_path: Path, shared_cache: Path):
    (tmp_path / "bad.py").write_text(BAD_METHODS)
    (tmp_path / "p.yaml").write_text(_tiny_with_methods(["bad.py:SelfTrainer"]))
    (r,) = run_all(tmp_path / "p.yaml", tmp_path / "r", shared_cache)
    assert r.status == "failed" and "own_parameters() names weights of the model itself" in r.reasons[0]


def test_the_runner_leaves_the_job_processes_imports_to_the_fork_server(tmp_path: Path) -> None:
    # What only job processes need (prunebench.run.sandbox.child: its optimizer warm-up imports torch's compiler
    # stack, a second) is imported in the fork server; the runner names the job's entry point without importing it.
    quickstart = Path(__file__).resolve().parents[2] / "protocols" / "quickstart.yaml"
    script = textwrap.dedent(
        f"""
        import sys
        from prunebench.protocol import load_protocol
        from prunebench.run.sandbox import describe
        methods = describe(load_protocol({str(quickstart)!r}))
        assert [m.name for m in methods][:2] == ["global_magnitude", "layerwise_magnitude"], methods
        print(sorted(m for m in sys.modules if m.startswith("prunebench.run.sandbox.")))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "prunebench.run.sandbox.entry" in out.stdout and "prunebench.run.sandbox.child" not in out.stdout
