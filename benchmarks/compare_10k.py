"""Benchmark: `prunebench compare` over many result files.

Writes N synthetic but valid result records (by default 10,000: 20 methods x 5 sparsities x 100
seeds of one protocol, with 10-epoch curves like the quickstart's) into a temporary directory,
then times loading, building the leaderboards and rendering them, in-process and through the CLI.

    .venv/bin/python benchmarks/compare_10k.py [--files 10000] [--epochs 10] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from prunebench.leaderboard import compare, load_records, render
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
    SparsityRecord,
    StageLedger,
)

SPARSITIES = (0.5, 0.8, 0.9, 0.95, 0.98)
TAXONOMY = {
    "when": "after_training",
    "granularity": "unstructured",
    "scope": "global",
    "schedule": "one_shot",
    "retraining": "fine_tune",
}


def synthetic_record(method: int, sparsity: float, seed: int, epochs: int) -> ResultRecord:
    """A record shaped like the runner's, with plausible numbers (an 8-layer model)."""
    label = f"method_{method:02d}"
    acc = 0.95 - 0.1 * sparsity**4 - 0.001 * method + 0.002 * ((seed * 7919 + method) % 5 - 2)
    layers = {f"layer{i}.weight": LayerSparsity(numel=4096, zeros=round(4096 * sparsity)) for i in range(8)}
    retrain = StageLedger(epochs=epochs, steps=25 * epochs, examples=1600 * epochs, train_flops=3e9 * epochs)
    return ResultRecord(
        job_id=f"{label}/sparsity-{sparsity:g}_seed-{seed}",
        protocol=ProtocolRef(name="bench", hash="b" * 64, comparison="S3.2", source="protocols/bench.yaml"),
        method=MethodRecord(
            name=label, label=label, version="1.0", source="bench", config={}, taxonomy=TAXONOMY, citation="-"
        ),
        seed=seed,
        target_sparsity=sparsity,
        status="ok",
        sparsity=SparsityRecord(target=sparsity, achieved=sparsity, tolerance=0.005, per_layer=layers),
        metrics=Metrics(test_top1=acc, test_top5=0.99, test_loss=0.2, val_top1=acc, val_loss=0.2),
        base=BaseModelRecord(
            checkpoint_sha256=f"{seed:064x}", key=f"{seed:064x}", test_top1=0.96, test_top5=0.999, val_top1=0.96
        ),
        cost=CostRecord(
            params_dense=40_000,
            params_effective=round(40_000 * (1 - sparsity * 0.8)),
            flops_dense=1e6,
            flops_effective=1e6 * (1 - sparsity * 0.9),
        ),
        retraining=RetrainingRecord(
            regime="fine_tune",
            epochs=epochs,
            optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": False, "weight_decay": 5e-4},
            schedule={"name": "cosine", "milestones": [], "step_size": None, "gamma": 0.1, "warmup_epochs": 0.0},
        ),
        ledger=Ledger(base=StageLedger(epochs=20.0), retrain=retrain),
        budget=BudgetRecord(
            comparison="S3.2",
            stated_by="protocol",
            limits={
                "pruning_epochs": 0.0,
                "scoring_examples": 1024.0,
                "retrain_epochs": float(epochs),
                "total_epochs": float(epochs),
                "total_train_flops": 3.2e9 * epochs,
            },
            violations=[],
        ),
        curves=[
            EpochRecord(
                stage="retrain",
                epoch=e + 1,
                lr=0.05,
                train_loss=0.1,
                train_top1=0.97,
                val_loss=0.2,
                val_top1=acc,
                sparsity=sparsity,
            )
            for e in range(epochs)
        ],
        provenance=Provenance(
            prunebench_version="0.1.0",
            python="3.11",
            torch="2.14.1",
            torchvision="0.29.1",
            platform="linux",
            device="cpu",
            code_revision=None,
            command="benchmark",
            started_at="2026-01-01T00:00:00+00:00",
            finished_at="2026-01-01T00:01:00+00:00",
            duration_s=60.0,
        ),
    )


def write_records(root: Path, files: int, epochs: int) -> None:
    run = root / "bench-bbbbbbbbbb"
    methods = 20
    seeds = max(1, -(-files // (methods * len(SPARSITIES))))
    n = 0
    for seed in range(seeds):
        for m in range(methods):
            for s in SPARSITIES:
                if n == files:
                    return
                record = synthetic_record(m, s, seed, epochs)
                path = run / record.method.label / f"sparsity-{s:g}_seed-{seed}.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                # A plain write: fsync per file (save_result) would only slow the set-up down.
                path.write_text(record.model_dump_json(indent=1), encoding="utf-8")
                n += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=10, help="per-epoch curve entries per record")
    parser.add_argument("--keep", type=Path, default=None, help="write the records here and keep them")
    args = parser.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="prunebench-bench-"))
    try:
        t0 = time.perf_counter()
        write_records(root, args.files, args.epochs)
        size = sum(p.stat().st_size for p in root.rglob("*.json"))
        took = time.perf_counter() - t0
        print(f"wrote {args.files} records ({size / 1e6:.1f} MB, {args.epochs}-epoch curves) in {took:.1f} s")

        t0 = time.perf_counter()
        loaded = load_records([root])
        t_load = time.perf_counter() - t0
        t0 = time.perf_counter()
        comparison = compare(loaded)
        t_build = time.perf_counter() - t0
        t0 = time.perf_counter()
        render(comparison, "json")
        render(comparison, "rich")
        t_render = time.perf_counter() - t0
        rows = sum(len(b.rows) for b in comparison.boards)
        print(
            f"in-process: load {t_load:.2f} s, leaderboards {t_build:.2f} s ({rows} rows), render json+rich "
            f"{t_render:.2f} s; total {t_load + t_build + t_render:.2f} s"
        )

        exe = Path(sys.executable).with_name("prunebench")
        cmd = [str(exe) if exe.exists() else "prunebench", "compare", str(root), "--format", "json"]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        t_cli = time.perf_counter() - t0
        status = "ok" if done.returncode == 0 else f"exit {done.returncode}: {done.stderr.strip()[-300:]}"
        print(f"CLI `prunebench compare DIR --format json` (interpreter start-up included): {t_cli:.2f} s ({status})")
        print(f"machine: {os.cpu_count()} CPU cores, Python {sys.version.split()[0]}")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
