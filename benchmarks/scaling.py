"""Benchmark: what workers gain and what per-epoch checkpoints cost, on the embedded quickstart end to end
(dense models trained too: fresh cache, run from an empty folder so no shipped dense model is used).

1. `--workers 1` against `--workers 2` (one torch thread each), alternating, `--repeats` times each.
2. DDP: one job (quickstart, seed 0, global magnitude at 0.9: dense training dominates) with `--nproc 1` against
   `--nproc 2` (gloo, one thread per process); with CIFAR10_ROOT set, also one CIFAR ResNet-20 job
   (protocols/cifar10_cpu.yaml, global magnitude).
3. Checkpoints: this checkout against a checkout of `--baseline` (the last commit before checkpoints) in a git
   worktree, alternating, one worker; the cost is the difference of the medians over the baseline's median.

    [CIFAR10_ROOT=...] .venv/bin/python benchmarks/scaling.py [--baseline ab7113d] [--repeats 3]

With CIFAR10_ROOT set, the checkpoints' cost is also measured on one CIFAR ResNet-20 job
(protocols/cifar10_cpu.yaml, global magnitude).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from prunebench.testing import timed_run

ROOT = Path(__file__).resolve().parent.parent


def quickstart(source: Path, *extra: str, protocol: str = "quickstart.yaml") -> float:
    """One worker thread per process (one torch thread each), as the figures are stated."""
    return timed_run(source, ROOT / "protocols" / protocol, *extra, env={**os.environ, "OMP_NUM_THREADS": "1"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="ab7113d", help="git ref of the checkout without checkpoints")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parts", default="workers,ddp,checkpoints", help="which of the measurements to make")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    print(f"machine: {os.cpu_count()} CPU(s), one torch thread per worker")

    one, two = [], []
    for _ in range(args.repeats if "workers" in parts else 0):
        one.append(quickstart(ROOT, "--workers", "1"))
        two.append(quickstart(ROOT, "--workers", "2"))
    if one:
        m1, m2 = statistics.median(one), statistics.median(two)
        print(f"quickstart, 1 worker: median {m1:.1f} s ({', '.join(f'{t:.1f}' for t in one)})")
        print(
            f"quickstart, 2 workers: median {m2:.1f} s ({', '.join(f'{t:.1f}' for t in two)}); {m2 / m1:.2f}x the time"
        )

    job = ("--seeds", "0", "--methods", "global_magnitude", "--sparsities", "0.9")
    ddp1, ddp2 = [], []
    for _ in range(args.repeats if "ddp" in parts else 0):
        ddp1.append(quickstart(ROOT, *job, "--nproc", "1"))
        ddp2.append(quickstart(ROOT, *job, "--nproc", "2"))
    cifar_job = ("--methods", "global_magnitude")
    c1, c2 = [], []
    for _ in range(args.repeats if "ddp" in parts and os.environ.get("CIFAR10_ROOT") else 0):
        c1.append(quickstart(ROOT, *cifar_job, "--nproc", "1", protocol="cifar10_cpu.yaml"))
        c2.append(quickstart(ROOT, *cifar_job, "--nproc", "2", protocol="cifar10_cpu.yaml"))
    if c1:
        a, b = statistics.median(c1), statistics.median(c2)
        print(
            f"one CIFAR ResNet-20 job, 1 process: median {a:.1f} s; 2 processes (DDP, gloo): median {b:.1f} s; "
            f"{b / a:.2f}x the time"
        )
    if ddp1:
        d1, d2 = statistics.median(ddp1), statistics.median(ddp2)
        print(
            f"one job, 1 process: median {d1:.1f} s; 2 processes (DDP, gloo): median {d2:.1f} s; "
            f"{d2 / d1:.2f}x the time"
        )

    if "checkpoints" not in parts:
        return
    with tempfile.TemporaryDirectory() as tmp:
        worktree = Path(tmp) / "baseline"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), args.baseline], check=True
        )
        try:
            with_ckpt, without, cifar_with, cifar_without = [], [], [], []
            cifar = os.environ.get("CIFAR10_ROOT")
            job = ("--methods", "global_magnitude")
            for _ in range(args.repeats):
                with_ckpt.append(quickstart(ROOT))
                without.append(quickstart(worktree))
                if cifar:  # CIFAR ResNet-20 (protocols/cifar10_cpu.yaml): 12 dense epochs, 3 of retraining
                    cifar_with.append(quickstart(ROOT, *job, protocol="cifar10_cpu.yaml"))
                    cifar_without.append(quickstart(worktree, *job, protocol="cifar10_cpu.yaml"))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], check=True)
    a, b = statistics.median(with_ckpt), statistics.median(without)
    print(f"quickstart with per-epoch checkpoints: median {a:.1f} s; without ({args.baseline}): median {b:.1f} s")
    print(f"checkpoint cost: {100 * (a - b) / b:+.1f}%")
    if cifar_with:
        a, b = statistics.median(cifar_with), statistics.median(cifar_without)
        print(f"CIFAR ResNet-20 job with checkpoints: median {a:.1f} s; without: {b:.1f} s")
        print(f"checkpoint cost on CIFAR ResNet-20: {100 * (a - b) / b:+.1f}%")


if __name__ == "__main__":
    main()
