"""Helpers shared by the tests and the benchmarks: small real protocols, result records with chosen numbers
written where the runner writes them, an engine and a pruning context on real data, the CLI in-process.

Nothing here is used by prunebench itself.
"""

from __future__ import annotations

import os
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import torch

from prunebench.data import DataBundle, load_data
from prunebench.efficiency import compact
from prunebench.engine import Engine, EnginePruningAccess
from prunebench.masks import MaskSet, prunable_parameters
from prunebench.methods import PruningContext
from prunebench.models import build_model, channel_parameters, layer_macs
from prunebench.protocol import BudgetSpec, DataSpec, ModelSpec, Protocol, PrunableSpec, parse_protocol
from prunebench.results import (
    BaseModelRecord,
    BudgetRecord,
    CostRecord,
    EpochRecord,
    LayerSparsity,
    Ledger,
    MethodRecord,
    Metrics,
    ProtocolRef,
    Provenance,
    ResultRecord,
    RetrainingRecord,
    RunDirectory,
    SparsityRecord,
    StageLedger,
    Taxonomy,
    VariantRecord,
    save_result,
)
from prunebench.results.targets import Target
from prunebench.run.measurement.measure import scattered_zeros

# A tiny real protocol: UCI digits, a narrow CNN, two base epochs; its dense model trains in about a second.
TINY = textwrap.dedent(
    """\
    name: tiny
    data: {name: digits}
    model: {name: small_cnn, args: {width: 0.25}}
    base: {epochs: 2, batch_size: 128, optimizer: {lr: 0.1}}
    pruning: {sparsities: [0.5, 0.9]}
    retrain: {epochs: 1, batch_size: 128, optimizer: {lr: 0.05}}
    seeds: [0]
    methods:
      - name: global_magnitude
      - name: layerwise_magnitude
      - name: random
    """
)

# The smallest valid protocol: its hash is pinned by the tests.
MINIMAL = textwrap.dedent(
    """\
    name: tiny
    data:
      name: digits
    model:
      name: small_cnn
    base:
      epochs: 3
    pruning:
      sparsities: [0.9, 0.5]
    retrain:
      epochs: 2
    methods:
      - name: global_magnitude
    """
)

# The protocol of the reporter's fixtures: three methods (labels a, b, c), three seeds.
BOARD = textwrap.dedent(
    """\
    name: tiny
    data: {name: digits}
    model: {name: small_cnn}
    base: {epochs: 3}
    pruning: {sparsities: [0.5, 0.9]}
    retrain: {epochs: 2}
    seeds: [0, 1, 2]
    methods:
      - {name: global_magnitude, label: a}
      - {name: layerwise_magnitude, label: b}
      - {name: random, label: c}
    """
)

# Accuracies at sparsity 0.9 (seeds 0, 1, 2), chosen so that b is significantly below a and c is tied with b.
A = [0.90, 0.92, 0.94]
B = [0.89, 0.91, 0.935]
C = [0.80, 0.95, 0.88]


def make_protocol(text: str = BOARD, **replace: str) -> Protocol:
    for old, new in replace.items():
        text = text.replace(old, new)
    return parse_protocol(text, "tiny.yaml")


def make_record(
    proto: Protocol,
    label: str,
    target: float,
    seed: int,
    top1: float,
    *,
    base_top1: float | None = None,
    base_sha: str | None = None,
    status: str = "ok",
    reasons: tuple[str, ...] = (),
    achieved: float | None = None,
    violations: tuple[str, ...] = (),
    config: dict[str, Any] | None = None,
    curves: int = 0,
    measured: bool = True,
    name: str | None = None,
    layers: int = 1,
    perplexity: float | None = None,
    base_perplexity: float | None = None,
    variant: VariantRecord | None = None,
) -> ResultRecord:
    """A record as the runner writes it, with chosen numbers (`layers` prunable layers of 1,000 weights). With a
    `perplexity`, a causal LM's (task causal_lm): `top1` is then its next-token accuracy, and its dense base
    model's perplexity `base_perplexity` (default 30 + seed). With a `variant`, a job of that retraining variant
    or sanity ablation."""
    base_top1 = 0.95 + 0.01 * seed if base_top1 is None else base_top1
    achieved = target if achieved is None else achieved
    ok = status != "failed" and measured
    lm = None if perplexity is None else (perplexity, 30.0 + seed if base_perplexity is None else base_perplexity)
    return ResultRecord(
        job_id=RunDirectory.job_id(label, variant.name if variant is not None else None, target, seed),
        task="classification" if lm is None else "causal_lm",
        protocol=ProtocolRef(name=proto.name, hash=proto.hash, comparison=proto.comparison, source="tiny.yaml"),
        method=MethodRecord(
            name=name or {"a": "global_magnitude", "b": "layerwise_magnitude"}.get(label, "random"),
            label=label,
            version="1.0",
            source="entry point",
            config=config or {},
            taxonomy=Taxonomy(
                when="after_training",
                granularity="unstructured",
                scope="global",
                schedule="one_shot",
                retraining="fine_tune",
            ),
            citation="-",
        ),
        seed=seed,
        target_sparsity=target,
        status=status,  # type: ignore[arg-type]
        reasons=list(reasons),
        retraining=RetrainingRecord(
            regime="fine_tune",
            epochs=2,
            optimizer=proto.retrain.optimizer.model_dump(),
            schedule=proto.retrain.schedule.model_dump(),
        ),
        ledger=Ledger(
            base=StageLedger(epochs=3.0), retrain=StageLedger(epochs=2.0, steps=20, examples=2000, train_flops=6e8)
        ),
        curves=_curves(top1, achieved, curves),
        provenance=_provenance(),
        variant=variant,
        **(_measured(proto, target, seed, top1, achieved, base_top1, base_sha, violations, layers, lm) if ok else {}),
    )


def _measured(
    proto: Protocol,
    target: float,
    seed: int,
    top1: float,
    achieved: float,
    base_top1: float,
    base_sha: str | None,
    violations: tuple[str, ...],
    layers: int,
    lm: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """The fields of a record that the runner measures: none of them on a failed or unmeasured job; `lm`: a causal
    LM's (perplexity, its dense base model's perplexity), with no top-5."""
    ppl, base_ppl = lm if lm is not None else (None, None)
    top5 = None if lm is not None else 0.99
    per_layer = {f"layer{i}.weight": LayerSparsity(numel=1000, zeros=round(1000 * achieved)) for i in range(layers)}
    if layers == 1:
        per_layer = {"conv.weight": per_layer["layer0.weight"]}
    return {
        "sparsity": SparsityRecord(
            target=target, achieved=achieved, tolerance=proto.pruning.tolerance, per_layer=per_layer
        ),
        "metrics": Metrics(
            test_top1=top1,
            test_top5=top5,
            test_loss=0.3,
            val_top1=top1,
            val_loss=0.3,
            test_perplexity=ppl,
            val_perplexity=ppl,
        ),
        "base": BaseModelRecord(
            checkpoint_sha256=base_sha or f"base-of-seed-{seed}",
            key=f"key-{seed}",
            test_top1=base_top1,
            test_top5=None if lm is not None else 0.999,
            val_top1=base_top1,
            test_perplexity=base_ppl,
        ),
        "cost": CostRecord(
            params_dense=10_000,
            params_effective=round(10_000 * (1 - target)),
            flops_dense=2e6,
            flops_effective=2e6 * (1 - target),
        ),
        "budget": BudgetRecord(
            comparison=proto.comparison,
            stated_by="protocol",
            limits={
                "pruning_epochs": 0.0,
                "scoring_examples": 1024.0,
                "retrain_epochs": 2.0,
                "total_epochs": 2.0,
                "total_train_flops": 1.2e9,
            },
            violations=list(violations),
        ),
    }


def _curves(top1: float, achieved: float, epochs: int) -> list[EpochRecord]:
    return [
        EpochRecord(
            stage="retrain",
            epoch=e + 1,
            lr=0.1 / (e + 1),
            train_loss=1.0 / (e + 1),
            train_top1=top1 - 0.01 * (epochs - e),
            val_loss=1.0 / (e + 1),
            val_top1=top1 - 0.01 * (epochs - e),
            sparsity=achieved,
        )
        for e in range(epochs)
    ]


def _provenance() -> Provenance:
    return Provenance(
        prunebench_version="0.1.0",
        python="3.11",
        torch="2",
        torchvision="0",
        platform="test",
        device="cpu",
        code_revision=None,
        command="pytest",
        started_at="2026-01-01T00:00:00+00:00",
        finished_at="2026-01-01T00:00:01+00:00",
        duration_s=1.0,
    )


def write_run(
    root: Path,
    proto: Protocol,
    records: list[ResultRecord],
    *,
    protocol_json: bool = True,
    durable: bool = True,
    sanity: dict[str, dict[str, str | None]] | None = None,
) -> Path:
    """Save records where the runner would, with its protocol.json (and in it `sanity`, which sanity ablation
    applied to which method, as a runner writes it); `durable=False` skips the atomic, fsynced write (for
    benchmarks that write thousands of files)."""
    directory = RunDirectory.of(root, proto.run_name)
    directory.path.mkdir(parents=True, exist_ok=True)
    if protocol_json:
        directory.write_protocol(proto.hash, proto.model_dump(mode="json"), sanity=sanity)
    for r in records:
        path = directory.path_of(r)
        if durable:
            save_result(path, r)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(r.model_dump_json(indent=1), encoding="utf-8")
    return directory.path


def standard_records(proto: Protocol) -> list[ResultRecord]:
    """Three methods (a, b, c) at sparsities 0.5 and 0.9, three seeds, with the accuracies A, B, C."""
    out = []
    for seed in range(3):
        for label, accs in (("a", A), ("b", B), ("c", C)):
            out.append(make_record(proto, label, 0.9, seed, accs[seed]))
            out.append(make_record(proto, label, 0.5, seed, accs[seed] + 0.03))
    return out


def engine_for(
    data: DataBundle,
    *,
    model: torch.nn.Module | None = None,
    model_name: str = "small_cnn",
    seed: int = 0,
    prunable: PrunableSpec | None = None,
    whole_filters: bool = False,
    **args: Any,
) -> Engine:
    """An engine on the CPU over `data`, every conv/linear weight prunable (a protocol's defaults, or `prunable`);
    the model is `model_name` with `args`, freshly initialized from `seed`, unless one is given. `whole_filters`:
    as in a filter-granularity job, a filter pruned whole takes its channel's bias and BatchNorm entries."""
    if model is None:
        torch.manual_seed(seed)
        spec = ModelSpec(name=model_name, args=args)
        model = build_model(spec, num_classes=data.num_classes, input_shape=data.input_shape)
    macs = layer_macs(model, data.input_shape)
    params = prunable_parameters(model, prunable or PrunableSpec(), macs.keys())
    channels = {}
    if whole_filters:
        by_name = dict(model.named_parameters())
        for layer, names in channel_parameters(model, data.input_shape).items():
            channels[f"{layer}.weight"] = [by_name[n] for n in names]
    return Engine(
        model,
        data,
        device=torch.device("cpu"),
        masks=MaskSet(params, {name: macs[name.removesuffix(".weight")] for name in params}, channels),
        all_macs=macs,
        seed=seed,
        eval_batch_size=128,
    )


def pruning_context(
    engine: Engine,
    sparsity: float | None,
    *,
    seed: int = 0,
    scoring_examples: int = 256,
    target: Target | None = None,
    budget: BudgetSpec | None = None,
    invert: bool = False,
) -> PruningContext:
    """The context a method's `prune` gets, on `engine`, at a target sparsity (or another `target`), under the
    protocol's default budget or `budget`; `invert`: in a job of the invert sanity ablation."""
    return PruningContext(
        EnginePruningAccess(engine),
        target_sparsity=sparsity,
        generator=torch.Generator().manual_seed(seed),
        scoring_examples=scoring_examples,
        target=target,
        budget=budget,
        invert=invert,
    )


def filter_job_measures(engine: Engine, data: DataBundle) -> tuple[float, float, float]:
    """(weight sparsity, FLOPs reduction, parameter reduction) of the engine's model as the runner measures a filter
    method's: zeros of the prunable weights, and the physically compacted model's counts. Raises AssertionError
    when a zero is where compaction does not remove it (the runner's violation)."""
    params = engine.masks.params
    sparsity = sum(int((p == 0).sum()) for p in params.values()) / sum(p.numel() for p in params.values())
    x = torch.randn(8, *data.input_shape, generator=torch.Generator().manual_seed(0))
    out = compact(engine.model, x)
    scattered = scattered_zeros(dict(params), out.inputs_removed)
    assert scattered == {}, f"zeros compaction does not remove: {sorted(scattered)}"
    dense_params = sum(p.numel() for p in engine.model.parameters())
    return sparsity, sum(engine.all_macs.values()) / out.macs, dense_params / out.params


def seeded_model(
    name: str, input_shape: tuple[int, int, int], *, seed: int = 0, num_classes: int = 10, **args: Any
) -> torch.nn.Module:
    """A registered (or torchvision) model initialized from `seed`, in evaluation mode, with BatchNorm scales,
    shifts and running statistics drawn as a trained model's are spread (an initialization's are all 1 and 0,
    which no criterion could tell apart)."""
    torch.manual_seed(seed)
    model = build_model(ModelSpec(name=name, args=args), num_classes=num_classes, input_shape=input_shape)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.weight is not None:
                m.weight.uniform_(0.2, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                if m.running_mean is not None and m.running_var is not None:
                    m.running_mean.uniform_(-0.5, 0.5)
                    m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def digits() -> DataBundle:
    """UCI digits as a protocol with default data settings loads it (1x8x8 images, 10 classes)."""
    return load_data(DataSpec(name="digits"))


def write_image_folder(root: Path, classes: int, train: int, test: int, *, seed: int = 0) -> Path:
    """A generated ImageFolder tree of 32x32 PNGs of random pixels, `train` and `test` images per class (class000,
    class001, ...): what a CIFAR protocol's `data.root` can point at where the real data are not."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for part, count in (("train", train), ("test", test)):
        for c in range(classes):
            folder = root / part / f"class{c:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")
    return root


def run_cli(capsys: Any, *args: str) -> tuple[int, str, str]:
    """prunebench's main() in-process (a subprocess would spend seconds importing): exit code, stdout, and
    stderr with the console's line wrapping undone. `capsys` is pytest's fixture."""
    import pytest

    from prunebench.cli import main

    saved_argv, saved_show = sys.argv, warnings.showwarning
    sys.argv = ["prunebench", *args]
    try:
        with pytest.raises(SystemExit) as exited:
            main()
    finally:
        sys.argv, warnings.showwarning = saved_argv, saved_show
    captured = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 0), captured.out, captured.err.replace("\n", "")


__all__ = [
    "BOARD",
    "MINIMAL",
    "TINY",
    "A",
    "B",
    "C",
    "digits",
    "engine_for",
    "make_protocol",
    "make_record",
    "pruning_context",
    "run_cli",
    "seeded_model",
    "standard_records",
    "write_image_folder",
    "write_run",
]


def timed_run(source: Path, protocol: Path, *extra: str, env: dict[str, str] | None = None) -> float:
    """Seconds of wall time of `prunebench run PROTOCOL` with the checkout at `source` (PYTHONPATH), from an empty
    folder (so no shipped dense model is used) into a fresh results folder and cache: what the benchmarks time."""
    import subprocess
    import tempfile
    import time

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "prunebench.cli", "run", str(protocol), "--results", f"{tmp}/r"]
        cmd += ["--cache", f"{tmp}/c", "--device", "cpu", *extra]
        run_env = {**(env if env is not None else os.environ), "PYTHONPATH": str(source)}
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env=run_env, cwd=tmp, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start
