"""The language-model track as a user runs it: a causal_lm protocol through `prunebench run` (text data as token
windows, a tiny LLaMA trained as the dense model, calibration drawn by the runner, Wanda, SparseGPT and magnitude
through the engine's layer-by-layer pass in their own processes), its records, its bad input, the dense check, and
methods that try to change the weights they keep outside the engine's solver."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from prunebench.results import ResultRecord, load_result

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures"
TINY_LM = textwrap.dedent(
    """\
    name: tiny_lm
    task: causal_lm
    data:
      name: python_topics
      text: {seqlen: 32, vocab_size: 300}
      eval_batch_size: 128
    model: {name: tiny_llama, args: {layers: 2, hidden: 32, heads: 2, kv_heads: 1, intermediate: 64, positions: 32}}
    base: {epochs: 1, batch_size: 64, optimizer: {name: adamw, lr: 0.003, weight_decay: 0.0}}
    pruning:
      sparsities: [0.5]
      prunable: {layer_types: [linear], include_last: false}
      calibration: {source: train, nsamples: 8}
    retrain: {epochs: 0, batch_size: 64}
    comparison: S4.1
    seeds: [0]
    runtime: {job_timeout: 120}
    methods:
    """
)
HONEST = ["  - name: lm_magnitude", "  - name: wanda", "  - {name: sparsegpt, config: {blocksize: 16}}"]


def run(tmp: Path, cache: Path, methods: list[str], *extra: str, text: str = TINY_LM) -> tuple[int, str, dict]:
    """`prunebench run` in a process of its own: (exit code, its output, records by method label)."""
    protocol = tmp / "tiny_lm.yaml"
    protocol.write_text(text + "\n".join(methods) + "\n")
    command = [sys.executable, "-m", "prunebench.cli", "run", str(protocol), "--results", str(tmp / "r")]
    done = subprocess.run(
        [*command, "--cache", str(cache), "--device", "cpu", *extra],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    records: dict[str, ResultRecord] = {}
    for path in sorted((tmp / "r").rglob("sparsity-*.json")):
        record = load_result(path)
        records[record.method.label] = record
    return done.returncode, done.stderr + done.stdout, records


def cheat(label: str) -> str:
    return f"  - {{name: '{FIXTURES / label}.py:Cheat', label: {label}}}"


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, dict]:
    cache = tmp_path_factory.mktemp("cache")
    labels = ["reconstruct_itself", "solver_then_edit", "scores_shaped_wrong", "score_edits_weights"]
    return run(tmp_path_factory.mktemp("grid"), cache, [*HONEST, *map(cheat, labels)])


def test_the_records_hold_the_tasks_metrics_and_what_they_depend_on(grid: tuple[int, str, dict]) -> None:
    _, output, records = grid
    for label in ("lm_magnitude", "wanda", "sparsegpt"):
        record = records[label]
        assert record.status == "ok" and record.task == "causal_lm", (label, record.reasons, output[-2000:])
        metrics, base = record.metrics, record.base
        assert metrics is not None and base is not None and base.test_perplexity is not None
        assert metrics.test_perplexity == pytest.approx(math.exp(metrics.test_loss), rel=1e-12)
        assert metrics.val_perplexity == pytest.approx(math.exp(metrics.val_loss), rel=1e-12)
        # One epoch of training takes the dense model well below a uniform guess over the vocabulary (300).
        assert base.test_perplexity < 200, base.test_perplexity
        assert record.sparsity is not None and record.sparsity.achieved >= 0.5 - 1e-9
        language = record.language
        assert language is not None and language.transformers and language.tokenizers
        assert language.data_sha256 == "71f2ff5d99bdc1f9c48c5c2353ad138201c5ca1c377e0226857ef8fa89b8bcee"
        assert language.model_sha256 is None  # trained here: its weights' hash is base.checkpoint_sha256
        assert language.calibration == {"source": "train", "nsamples": 8, "seqlen": 32, "files_sha256": None}
        assert record.retraining.epochs == 0 and record.ledger.retrain.steps == 0
    # The calibration windows are counted where they went through the model: not for magnitude, which gathers nothing.
    assert records["lm_magnitude"].ledger.pruning.forward_examples == 0
    assert records["wanda"].ledger.pruning.forward_examples == 8
    assert records["sparsegpt"].ledger.pruning.forward_examples == 8
    # Wanda compares each output row: every row of every layer loses exactly int(in * 0.5) weights.
    assert records["wanda"].sparsity.achieved == 0.5
    # Each method's own result, not one model thrice.
    assert len({records[label].weights_sha256 for label in ("lm_magnitude", "wanda", "sparsegpt")}) == 3


def test_weights_change_only_through_the_engines_solver(grid: tuple[int, str, dict]) -> None:
    _, _, records = grid
    refused = "asked to load weights that are neither a saved state"
    for label in ("reconstruct_itself", "solver_then_edit"):
        assert records[label].status == "violation", records[label].reasons
        assert any(refused in reason for reason in records[label].reasons), records[label].reasons
    wrong = records["scores_shaped_wrong"]
    assert wrong.status == "failed"
    shaped = "the scores of model.layers.0.self_attn.q_proj.weight must be a float tensor"
    assert any(shaped in reason for reason in wrong.reasons), wrong.reasons
    # What a score function does to the tensors it sees stays in the method's process: Wanda's model, bit for bit.
    edits = records["score_edits_weights"]
    assert edits.method.notes["layers_edited"] == 14  # the attack ran: every linear of the 2 decoder layers
    assert edits.status == "ok" and edits.weights_sha256 == records["wanda"].weights_sha256


def test_the_dense_check_fails_the_run_in_one_line(tmp_path: Path) -> None:
    untrained = TINY_LM.replace("base: {epochs: 1,", "base: {epochs: 0, expect: {test_perplexity: 5.12},")
    code, output, records = run(tmp_path, tmp_path / "cache", HONEST[:1], text=untrained)
    lines = [line for line in output.strip().splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in output, output[-3000:]
    assert "base.expect.test_perplexity: the dense model's test perplexity is" in lines[0]
    assert "not the 5.12 that base.expect states" in lines[0]
    assert not records  # no pruned result of a dense model that is not the one the protocol describes
    measured = float(lines[0].split("perplexity is ")[1].split(",")[0])
    # Stated within the tolerance, the same dense model passes.
    agreed = untrained.replace("test_perplexity: 5.12}", f"test_perplexity: {measured}}}")
    (tmp_path / "agreed").mkdir()
    code, output, records = run(tmp_path / "agreed", tmp_path / "cache", HONEST[:1], text=agreed)
    assert code == 0 and records["lm_magnitude"].status == "ok", output[-3000:]


def test_the_engines_pass_is_the_references_loop(tmp_path: Path) -> None:
    """Through the method API, Wanda's scores and SparseGPT's solver give what prunebench.language's loop gives with
    the kernels tests/language checks against the authors' code: Wanda's masks and SparseGPT's weights identical."""
    from prunebench.language import InputStats, layerwise, sparsegpt_prune, wanda_mask
    from prunebench.language.layerwise import Statistic
    from prunebench.methods import Layerwise, SparseGPTSolver
    from prunebench.models import build_model
    from prunebench.protocol import ModelSpec

    torch.manual_seed(0)
    spec = ModelSpec(name="tiny_llama", args={"layers": 2, "hidden": 32, "heads": 2, "kv_heads": 1, "positions": 32})
    model = build_model(spec, num_classes=300, input_shape=(32,)).eval()
    windows = torch.randint(0, 300, (8, 32), generator=torch.Generator().manual_seed(1))
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and "layers" in n]

    def reference(prune, statistic):
        copy = build_model(spec, num_classes=300, input_shape=(32,)).eval()
        copy.load_state_dict(model.state_dict())
        return copy, layerwise(copy, windows, prune, statistic)

    def wanda(name, weight, stats):
        assert isinstance(stats, InputStats)
        keep = wanda_mask(weight, stats.sq_norm, 0.5)
        return weight * keep, keep

    def sparsegpt(name, weight, hessian):
        solved = sparsegpt_prune(weight, hessian.matrix, 0.5, None, 16, 0.01)
        return solved.weight, solved.keep

    def engine_pass(declared, score):
        from prunebench.engine.layerwise import prune_layerwise

        copy = build_model(spec, num_classes=300, input_shape=(32,)).eval()
        copy.load_state_dict(model.state_dict())
        host = Host(copy, windows, [f"{n}.weight" for n in names])
        return copy, prune_layerwise(host, declared, score, 0.5), host

    def wanda_score(name, weight, statistic):
        return weight.abs() * statistic.sqrt().reshape(1, -1)

    ref_model, ref = reference(wanda, Statistic.INPUT_STATS)
    _, masks, host = engine_pass(Layerwise(statistic=Statistic.INPUT_STATS, selection="row"), wanda_score)
    assert set(masks) == set(ref.masks) and all(torch.equal(masks[n], ref.masks[n]) for n in masks)
    assert host.counted == [(8, 2.0 * 8 * host.dense_forward_flops)]

    ref_model, ref = reference(sparsegpt, Statistic.HESSIAN)
    solver = Layerwise(statistic=Statistic.HESSIAN, solver=SparseGPTSolver(blocksize=16))
    ours, masks, host = engine_pass(solver, None)
    assert all(torch.equal(masks[n], ref.masks[n]) for n in masks)
    assert all(
        torch.equal(a, b) for a, b in zip(ours.state_dict().values(), ref_model.state_dict().values(), strict=True)
    )
    assert host.reconstructed == sorted(masks)


class Host:
    """What the engine's pass reads of an engine (prunebench.engine.layerwise.Host), for the pass alone."""

    def __init__(self, model: torch.nn.Module, windows: torch.Tensor, prunable: list[str]) -> None:
        from prunebench.data import TextData

        params = dict(model.named_parameters())
        self.model, self.seed, self.device = model, 0, torch.device("cpu")
        self.data = type("Data", (), {"text": TextData(None, "", "", calibration={0: windows})})()
        self.masks = type("Masks", (), {"params": {name: params[name] for name in prunable}})()
        self.dense_forward_flops = 1000.0
        self.counted: list[tuple[int, float]] = []
        self.reconstructed: list[str] = []
        self.observer = type(
            "Observer", (), {"reconstructed": lambda _, names: self.reconstructed.extend(sorted(names))}
        )()

    def count_scoring(self, examples: int, flops: float) -> None:
        self.counted.append((examples, flops))


def test_a_pruned_language_model_is_timed_on_token_windows(tmp_path: Path) -> None:
    timed = TINY_LM.replace(
        "comparison: S4.1", "comparison: S4.1\nefficiency: {batch_sizes: [1, 4], min_run_time: 0.02}"
    )
    code, output, records = run(tmp_path, tmp_path / "cache", HONEST[1:2], "--limit", "1", text=timed)
    assert code == 0, output[-3000:]
    efficiency = records["wanda"].efficiency
    assert efficiency is not None and efficiency.not_measured is None, efficiency
    assert efficiency.pruned is not None and [t.batch_size for t in efficiency.pruned.timings] == [1, 4]
