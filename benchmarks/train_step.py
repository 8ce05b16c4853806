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
from prunebench.masks import MaskSet, masks_from_scores, prunable_parameters
from prunebench.models import build_model, layer_macs
from prunebench.protocol import DataSpec, ModelSpec, PrunableSpec, TrainingSpec
from prunebench.train import Engine


def engine_for(model_name: str, data_name: str) -> Engine:
    data = load_data(DataSpec(name=data_name))
    torch.manual_seed(0)
    model = build_model(ModelSpec(name=model_name), num_classes=data.num_classes, input_shape=data.input_shape)
    macs = layer_macs(model, data.input_shape)
    params = prunable_parameters(model, PrunableSpec(), macs.keys())
    masks = MaskSet(params, {n: macs[n.removesuffix(".weight")] for n in params})
    return Engine(model, data, device=torch.device("cpu"), masks=masks, all_macs=macs, seed=0, eval_batch_size=512)


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
        engine = engine_for(model_name, data_name)
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
