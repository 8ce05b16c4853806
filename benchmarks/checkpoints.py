"""Benchmark: what checkpointing a stage after every epoch costs, in the engine itself (no process start-up or
run-to-run noise): retraining epochs of the quickstart's model on digits, and of CIFAR ResNet-20
(protocols/cifar10_cpu.yaml, with CIFAR10_ROOT set), with and without a checkpoint after every epoch. A
checkpoint here is what a job's is: the engine's TrainState serialized, wrapped with the reports, written by
prunebench.run.checkpoints (rotated, verified on load).

    [CIFAR10_ROOT=...] .venv/bin/python benchmarks/checkpoints.py [--epochs 6] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def epochs_time(protocol: str, epochs: int, checkpoints: bool, folder: Path) -> float:
    from prunebench.data import load_data
    from prunebench.engine import TrainState
    from prunebench.protocol import load_protocol
    from prunebench.run.checkpoints import Progress
    from prunebench.run.setup import build_engine, seeded_model

    p = load_protocol(ROOT / "protocols" / protocol)
    data = load_data(p.data)
    model = seeded_model(p, data, 0)
    engine = build_engine(p, model, data, device=torch.device("cpu"), seed=0, saved={})
    progress = Progress(folder)

    def save(state: TrainState) -> None:
        blob = torch.frombuffer(bytearray(state.to_bytes()), dtype=torch.uint8)
        progress.save("job-bench", {"messages": [], "child": {"header": {}, "state": blob}})

    spec = p.retrain.model_copy(update={"epochs": epochs})
    start = time.perf_counter()
    engine.train(spec, stage="retrain", checkpoint=save if checkpoints else None)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = [("quickstart.yaml", "quickstart small_cnn on digits")]
    if os.environ.get("CIFAR10_ROOT"):
        cases.append(("cifar10_cpu.yaml", "CIFAR ResNet-20 (width 8, 1,800 training images)"))
    print(
        f"machine: {os.cpu_count()} CPU(s), {args.threads} torch thread(s); "
        f"{args.epochs} epochs, {args.repeats} repeats"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for protocol, name in cases:
            with_ckpt, without = [], []
            for _ in range(args.repeats):  # alternating, so that drift hits both alike
                without.append(epochs_time(protocol, args.epochs, False, Path(tmp)))
                with_ckpt.append(epochs_time(protocol, args.epochs, True, Path(tmp)))
            a, b = statistics.median(with_ckpt), statistics.median(without)
            print(
                f"{name}: {1000 * b / args.epochs:.0f} ms an epoch; with a checkpoint after each "
                f"{1000 * a / args.epochs:.0f} ms: {100 * (a - b) / b:+.1f}%"
            )


if __name__ == "__main__":
    main()
