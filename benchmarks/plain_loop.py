"""Benchmark: the engine against a plain PyTorch loop doing the same training work, and the quickstart against it.

1. Engine vs plain loop, alternated in one process (`--repeats` pairs, medians): the same model, data batches
   (the split's own batching, same generator), optimizer, LR schedule and masks (global magnitude at 0.9), a
   validation pass after every epoch as the engine makes; the plain loop zeroes pruned gradients before and
   pruned weights after each step, as any masked training must. On the quickstart's model (digits, small CNN,
   the protocol's retraining recipe) and on CIFAR ResNet-20 (`--cifar-root`, an ImageFolder tree or torchvision's
   batches; a `--cifar-train` subset). The engine's figure includes all it does beyond the loop (its ledger,
   reports, curves); jobs add a checkpoint after every retraining epoch, measured here too (`--checkpoints`).
2. The quickstart's whole training work in the plain loop on one core: every epoch its records' ledgers count
   (pruning and retraining of every job) and its dense models' base epochs, at the plain loop's seconds per epoch
   of each stage's recipe. `benchmarks/quickstart.py` gives the quickstart's own wall time to set against it.

    .venv/bin/python benchmarks/plain_loop.py [--repeats 5] [--epochs 3] [--cifar-root DIR] [--records runs/...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from prunebench.data import load_data
from prunebench.engine import Engine, TrainState
from prunebench.engine.optim import build_optimizer, lr_factor
from prunebench.methods import masks_from_scores
from prunebench.protocol import TrainingSpec, load_protocol
from prunebench.testing import engine_for

ROOT = Path(__file__).resolve().parent.parent


def plain_epochs(engine: Engine, spec: TrainingSpec, epochs: int, generator: torch.Generator) -> None:
    """`epochs` epochs of masked training and a validation pass after each, in a plain loop over the engine's model."""
    model, data = engine.model, engine.data
    params = list(model.parameters())
    optimizer = build_optimizer(params, spec.optimizer)
    steps = -(-data.train.num_examples // spec.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(spec.schedule, epochs, steps, spec.optimizer.lr))
    masks = {engine.masks.params[n]: m.to(torch.float32) for n, m in engine.masks.masks.items()}
    for _ in range(epochs):
        model.train()
        for x, y in data.train.batches(spec.batch_size, shuffle=True, train=True, generator=generator, device="cpu"):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            for p, m in masks.items():
                p.grad.mul_(m)
            optimizer.step()
            scheduler.step()
            with torch.no_grad():
                for p, m in masks.items():
                    p.mul_(m)
        model.eval()
        with torch.no_grad():
            for x, y in data.val.batches(
                engine.eval_batch_size, shuffle=False, train=False, generator=None, device="cpu"
            ):
                F.cross_entropy(model(x), y)


def engine_epochs(engine: Engine, spec: TrainingSpec, epochs: int, checkpoints: bool) -> None:
    saved: list[TrainState] = []
    checkpoint = (lambda state: saved.append(TrainState.from_bytes(state.to_bytes()))) if checkpoints else None
    engine.train(spec.model_copy(update={"epochs": epochs}), stage="retrain", checkpoint=checkpoint)


def compare(name: str, engine: Engine, spec: TrainingSpec, epochs: int, repeats: int, checkpoints: bool) -> float:
    scores = {k: w.abs() for k, w in engine.masks.params.items()}
    engine.set_masks(masks_from_scores(scores, 0.9, scope="global"))
    plain, ours = [], []
    for i in range(repeats + 1):  # the first pair warms up
        t = time.perf_counter()
        plain_epochs(engine, spec, epochs, torch.Generator().manual_seed(i))
        p = time.perf_counter() - t
        t = time.perf_counter()
        engine_epochs(engine, spec, epochs, checkpoints)
        e = time.perf_counter() - t
        if i:
            plain.append(p / epochs)
            ours.append(e / epochs)
    p, e = statistics.median(plain), statistics.median(ours)
    what = "with a checkpoint every epoch" if checkpoints else "no checkpoints"
    print(f"{name}: plain loop {1000 * p:.1f} ms/epoch, engine ({what}) {1000 * e:.1f} ms/epoch: {e / p:.3f}x")
    return p


def quickstart_work(records: Path, protocol_path: Path, seconds: dict[str, float]) -> tuple[float, float]:
    """The single-core plain-loop seconds of a quickstart run's training work, without and with its dense models'
    base epochs (a run whose dense models come from the references trains none)."""
    protocol = load_protocol(protocol_path)
    epochs = {"pruning": 0.0, "retrain": 0.0}
    jobs = 0
    for path in records.rglob("sparsity-*.json"):
        ledger = json.loads(path.read_text())["ledger"]
        jobs += 1
        for stage in epochs:
            epochs[stage] += ledger[stage]["epochs"]
    base = len(protocol.seeds) * protocol.base.epochs
    work = (epochs["pruning"] + epochs["retrain"]) * seconds["retrain"]
    print(
        f"quickstart's training work ({jobs} jobs: {epochs['pruning']:g} pruning and {epochs['retrain']:g} "
        f"retraining epochs) in the plain loop on one core: {work:.1f} s; with the {base} base epochs of its dense "
        f"models: {work + base * seconds['base']:.1f} s"
    )
    return work, work + base * seconds["base"]


def quickstart_plain_seconds(records: Path, *, with_base: bool, repeats: int = 5, epochs: int = 3) -> float:
    """`quickstart_work` with this process's own plain-loop seconds an epoch (warm, medians of `repeats`)."""
    torch.set_num_threads(1)
    protocol = load_protocol(ROOT / "protocols" / "quickstart.yaml")
    data = load_data(protocol.data)
    seconds = {}
    for stage, spec in (("retrain", protocol.retrain), ("base", protocol.base)):
        engine = engine_for(data, model_name=protocol.model.name, **protocol.model.args)
        seconds[stage] = compare(f"quickstart {stage} recipe", engine, spec, epochs, repeats, False)
    work, with_base_work = quickstart_work(records, ROOT / "protocols" / "quickstart.yaml", seconds)
    return with_base_work if with_base else work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--checkpoints", action="store_true", help="the engine checkpoints every epoch, as jobs do")
    parser.add_argument("--records", type=Path, help="a quickstart run directory: its training work in the plain loop")
    parser.add_argument("--cifar-root", type=Path, default=os.environ.get("CIFAR10_ROOT"))
    parser.add_argument("--cifar-train", type=int, default=5000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{os.cpu_count()} CPUs, 1 thread")
    protocol = load_protocol(ROOT / "protocols" / "quickstart.yaml")
    data = load_data(protocol.data)
    seconds = {}
    for stage, spec in (("retrain", protocol.retrain), ("base", protocol.base)):
        engine = engine_for(data, model_name=protocol.model.name, **protocol.model.args)
        seconds[stage] = compare(
            f"quickstart {stage} recipe", engine, spec, args.epochs, args.repeats, args.checkpoints
        )
    if args.records is not None:
        quickstart_work(args.records, ROOT / "protocols" / "quickstart.yaml", seconds)
    if args.cifar_root is not None:
        cifar = load_protocol(ROOT / "protocols" / "cifar10_resnet20.yaml", [f"data.root={args.cifar_root}"])
        spec = cifar.data.model_copy(update={"train_subset": args.cifar_train})
        engine = engine_for(load_data(spec), model_name=cifar.model.name, **cifar.model.args)
        compare(
            "CIFAR-10 ResNet-20 retrain recipe", engine, cifar.retrain, 1, max(1, args.repeats // 2), args.checkpoints
        )


if __name__ == "__main__":
    main()
