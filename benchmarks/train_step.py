"""Benchmark: the engine's training step, dense and under masks.

Mask enforcement (zeroing pruned gradients before the step, re-masking weights after it) runs on
every optimizer step; this measures what it costs on the quickstart's model and on CIFAR ResNet-20.

    .venv/bin/python benchmarks/train_step.py [--steps 50]
"""

from __future__ import annotations

import argparse
import time

import torch

from prunebench.data import load_data
from prunebench.engine import Engine
from prunebench.methods import masks_from_scores
from prunebench.protocol import DataSpec, TrainingSpec
from prunebench.testing import engine_for


def seconds_per_step(engine: Engine, batch_size: int, steps: int) -> float:
    n = engine.data.train.num_examples
    epochs = max(1, -(-steps * batch_size // n))
    spec = TrainingSpec(epochs=epochs, batch_size=batch_size)
    start = time.perf_counter()
    engine.train(spec, stage="retrain")
    return (time.perf_counter() - start) / (epochs * -(-n // batch_size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for model_name, data_name, batch in (("small_cnn", "digits", 64), ("cifar_resnet20", "synthetic", 128)):
        engine = engine_for(load_data(DataSpec(name=data_name)), model_name=model_name)
        seconds_per_step(engine, batch, 1)  # warm-up: allocator, kernels
        dense = seconds_per_step(engine, batch, args.steps)
        scores = {k: w.abs() for k, w in engine.masks.params.items()}
        engine.set_masks(masks_from_scores(scores, 0.9, scope="global"))
        masked = seconds_per_step(engine, batch, args.steps)
        print(
            f"{model_name:>15} batch {batch}: dense {1000 * dense:.1f} ms/step (incl. per-epoch validation), "
            f"masked {1000 * masked:.1f} ms/step ({100 * (masked / dense - 1):+.0f}%)"
        )


if __name__ == "__main__":
    main()
