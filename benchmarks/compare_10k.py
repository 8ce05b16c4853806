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

from prunebench.report import compare, render
from prunebench.results import load_records
from prunebench.testing import make_protocol, make_record, write_run

SPARSITIES = (0.5, 0.8, 0.9, 0.95, 0.98)
METHODS = 20


def write_records(root: Path, files: int, epochs: int) -> None:
    """`files` records of one protocol (20 methods x 5 sparsities x as many seeds as needed), 8 prunable layers
    and `epochs`-epoch curves each, with plausible accuracies; where the runner writes them."""
    methods = "".join(f"  - {{name: random, label: method_{m:02d}}}\n" for m in range(METHODS))
    sparsities = ", ".join(map(str, SPARSITIES))
    seeds = max(1, -(-files // (METHODS * len(SPARSITIES))))
    text = (
        "name: bench\ndata: {name: digits}\nmodel: {name: small_cnn}\nbase: {epochs: 20}\n"
        f"pruning: {{sparsities: [{sparsities}]}}\nretrain: {{epochs: {epochs}}}\n"
        f"seeds: [{', '.join(map(str, range(seeds)))}]\nmethods:\n{methods}"
    )
    proto = make_protocol(text)
    records = []
    for seed in range(seeds):
        for m in range(METHODS):
            for s in SPARSITIES:
                if len(records) == files:
                    break
                acc = 0.95 - 0.1 * s**4 - 0.001 * m + 0.002 * ((seed * 7919 + m) % 5 - 2)
                base = 0.95 + 0.01 * (seed % 5)  # make_record's default (0.95 + 0.01 * seed) passes 1 from seed 6
                records.append(
                    make_record(proto, f"method_{m:02d}", s, seed, acc, base_top1=base, curves=epochs, layers=8)
                )
    # A plain write: fsync per file (save_result) would only slow the set-up down.
    write_run(root, proto, records, durable=False)


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
