"""Benchmark: what pruning buys in measured speed, and what measuring it costs.

`table` (needs CIFAR10_ROOT): L1-filter pruning of CIFAR ResNet-20 (16 base channels) at several ratios, every
prunable convolution or (Li et al.'s choice for ResNets) the first of each block only, and global magnitude
pruning at the same targets, run as a user runs them (`prunebench run` with an `efficiency:` section, on a
2,000-image CIFAR-10 subset, briefly trained: the structure, not the accuracy, sets the speed). Prints the FLOPs
reduction counted from the compacted model against the speedup measured at batch 1 and 64, from the records.

`overhead`: the seconds the runner's measurement adds to one job at the quickstart's scale (its model on
digits, the section's defaults), for an unstructured and a filter-pruned model, and a compaction alone (which
every filter method's job pays, section or not).

    [CIFAR10_ROOT=...] OMP_NUM_THREADS=1 .venv/bin/python benchmarks/efficiency.py [--parts table,overhead]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
TARGETS = [0.3, 0.5, 0.7, 0.9]

BLOCK_FIRST_TARGETS = [0.3]  # whole filters of the blocks' first convolutions reach at most 0.44 of the weights


def table_protocol(name: str, targets: list[float], methods: str) -> str:
    return f"""\
name: {name}
data: {{name: cifar10, root: "${{CIFAR10_ROOT}}", train_subset: 2000, test_subset: 1000, augmentation: flip_crop}}
model: {{name: cifar_resnet20}}
base: {{epochs: 2, batch_size: 128, optimizer: {{name: sgd, lr: 0.1, momentum: 0.9}}, schedule: {{name: cosine}}}}
pruning: {{sparsities: {targets}, tolerance: 0.02}}
retrain: {{epochs: 1, batch_size: 128, optimizer: {{name: sgd, lr: 0.02, momentum: 0.9}}, schedule: {{name: cosine}}}}
seeds: [0]
methods:
{methods}efficiency: {{batch_sizes: [1, 64], threads: 1, rounds: 5}}
"""


# Two protocols, one dense model (the cache shares it): Li et al.'s first convolutions of the blocks cannot reach the
# larger targets, and a protocol they cannot reach is refused before any training.
TABLE_PROTOCOLS = {
    "efficiency_resnet20": table_protocol(
        "efficiency_resnet20", TARGETS, "  - name: l1_filter\n  - name: global_magnitude\n"
    ),
    "efficiency_resnet20_block_first": table_protocol(
        "efficiency_resnet20_block_first",
        BLOCK_FIRST_TARGETS,
        "  - name: l1_filter\n    label: l1_block_first\n    config: {layers: block_first}\n",
    ),
}


def table() -> None:
    if not os.environ.get("CIFAR10_ROOT"):
        print("table: skipped (set CIFAR10_ROOT to a CIFAR-10 folder)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        for name, text in TABLE_PROTOCOLS.items():
            protocol = Path(tmp) / f"{name}.yaml"
            protocol.write_text(text)
            cmd = [
                *(sys.executable, "-m", "prunebench", "run", str(protocol)),
                *("--results", f"{tmp}/r", "--cache", f"{tmp}/c"),
            ]
            done = subprocess.run(cmd, cwd=tmp, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
            if done.returncode != 0:
                print(f"table: {name} exited {done.returncode}")
        print(f"table: ran in {time.perf_counter() - start:.0f} s")
        rows = []
        for file in sorted(Path(tmp, "r").rglob("sparsity-*.json")):
            r = json.loads(file.read_text())
            if r["status"] == "failed":
                print(f"  {r['job_id']}: failed: {r['reasons'][0][:150]}")
                continue
            e, cost = r["efficiency"], r["cost"]
            speed = {s["batch_size"]: s for s in e["speedup"]}
            rows.append((r["method"]["label"], r["target_sparsity"], r["sparsity"]["achieved"], cost, e, speed))
    device = rows[0][4]
    print(
        f"measured on {device['device']} ({device['device_name']}), {device['threads']} thread(s), torch "
        f"{device['torch']}; speedup: median of {device['rounds']} paired rounds [lowest-highest]"
    )
    print(
        "| method | target | weights pruned | FLOPs reduction (counted) | kernel | speedup b1 | speedup b64 | "
        "latency b64 (ms) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, target, achieved, cost, e, speed in sorted(rows, key=lambda x: (x[0], x[1])):
        flops = cost["flops_dense"] / cost["flops_effective"]
        cells = [f"{s['median']:.2f}x [{s['low']:.2f}-{s['high']:.2f}]" for s in (speed[1], speed[64])]
        latency = next(t["median_s"] for t in e["pruned"]["timings"] if t["batch_size"] == 64)
        print(
            f"| {label} | {target:g} | {achieved:.3f} | {flops:.2f}x ({cost['counted']}) | {e['pruned']['kernel']} "
            f"| {cells[0]} | {cells[1]} | {1000 * latency:.2f} |"
        )


def overhead(repeats: int) -> None:
    from prunebench.data import load_data
    from prunebench.efficiency import compact
    from prunebench.masks import masks_from_scores
    from prunebench.protocol import EfficiencySpec, load_protocol
    from prunebench.run.measurement.efficiency import EfficiencyMeasurement
    from prunebench.run.setup import prunable_of, seeded_model

    p = load_protocol(ROOT / "protocols" / "quickstart.yaml")
    data = load_data(p.data)
    assert data.test is not None
    dense = seeded_model(p, data, 0).eval()
    unstructured = seeded_model(p, data, 0).eval()
    params, _ = prunable_of(p, unstructured, data)
    keep = masks_from_scores({k: w.abs() for k, w in params.items()}, 0.9, scope="global")
    with torch.no_grad():
        for k, w in params.items():
            w.mul_(keep[k])
    filters = seeded_model(p, data, 0).eval()
    with torch.no_grad():
        for m in filters.modules():  # half the filters of every conv, and their BatchNorm entries
            if isinstance(m, torch.nn.Conv2d):
                m.weight[: m.out_channels // 2] = 0
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight[: m.num_features // 2] = 0
                m.bias[: m.num_features // 2] = 0
    timing = EfficiencyMeasurement(EfficiencySpec(), test=data.test, device=torch.device("cpu"))
    batch = timing.x[:64]
    compactions, unstructured_s, filter_s = [], [], []
    for _ in range(repeats):
        start = time.perf_counter()
        compacted = compact(filters, batch)
        compactions.append(time.perf_counter() - start)
        start = time.perf_counter()
        timing.record(unstructured, dense, granularity="unstructured", compacted=None, why=None)
        unstructured_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        timing.record(filters, dense, granularity="filter", compacted=compacted, why=None)
        filter_s.append(time.perf_counter() - start)
    spec = EfficiencySpec()
    print(
        f"overhead (quickstart model on digits, section defaults: batch sizes {spec.batch_sizes}, {spec.rounds} "
        f"rounds of {spec.min_run_time} s, {spec.threads} thread; medians of {repeats}):"
    )
    print(
        f"  timing an unstructured job: {statistics.median(unstructured_s):.2f} s; a filter job (compacted): "
        f"{statistics.median(filter_s):.2f} s; compacting it: {1000 * statistics.median(compactions):.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="table,overhead")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPU(s), OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    parts = args.parts.split(",")
    if "overhead" in parts:
        overhead(args.repeats)
    if "table" in parts:
        table()


if __name__ == "__main__":
    main()
