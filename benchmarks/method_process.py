"""Benchmark: what running a method's code in a process apart from its engine costs.

The same checkout runs each protocol twice, alternating, `--repeats` times: as it is (every method in a process of its
own, its hooks and operations crossing the bridge: prunebench.run.sandbox.bridge) and with PRUNEBENCH_SHARED_ENGINE=1
(every method in its engine's process, as before). Both from an empty folder, fresh cache (dense models trained too).
The overhead is the difference of the medians over the shared median; the job's own cost is also compared from its
records (`duration_s` summed over the jobs, which leaves out the dense training both share).

1. The embedded quickstart, seeds 0 and 1 (48 jobs: six methods, gradual magnitude's per-step hook among them).
2. CIFAR-10 ResNet-20 (protocols/cifar10_resnet20.yaml) on the real JPEGs (../shared/data/cifar10-jpg.tgz, or
   $CIFAR10_TGZ), cut to `--cifar-train` training images, one base epoch, one retraining epoch; global magnitude,
   and gradual magnitude (one pruning epoch, a hook call every step) at one sparsity.

    .venv/bin/python benchmarks/method_process.py [--repeats 3] [--threads 1] [--cifar-train 5000] [--parts cifar]
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

ROOT = Path(__file__).resolve().parent.parent
CIFAR_TGZ = Path(os.environ.get("CIFAR10_TGZ", ROOT.parent / "shared" / "data" / "cifar10-jpg.tgz"))


def timed(protocol: Path, extra: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds of the run, the jobs' duration_s summed) of `prunebench run` into a fresh folder."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "prunebench.cli", "run", str(protocol), "--results", f"{tmp}/r"]
        cmd += ["--cache", f"{tmp}/c", "--device", "cpu", *extra]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, cwd=tmp, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        jobs = [json.loads(p.read_text()) for p in Path(tmp, "r").rglob("sparsity-*.json")]
        assert jobs and all(j["status"] == "ok" for j in jobs), [j.get("reasons") for j in jobs]
        return wall, sum(j["provenance"]["duration_s"] for j in jobs)


def compare(name: str, protocol: Path, extra: list[str], repeats: int) -> None:
    own_env = {k: v for k, v in os.environ.items() if k != "PRUNEBENCH_SHARED_ENGINE"}
    own_env["PRUNEBENCH_WORKERS"] = "1"  # one job at a time: what is compared is a job's cost
    shared_env = {**own_env, "PRUNEBENCH_SHARED_ENGINE": "1"}
    own, shared = [], []
    for _ in range(repeats):
        own.append(timed(protocol, extra, own_env))
        shared.append(timed(protocol, extra, shared_env))
    for i, what in ((0, "wall"), (1, "jobs' duration_s summed")):
        o, s = statistics.median(r[i] for r in own), statistics.median(r[i] for r in shared)
        print(
            f"{name}, {what}: own process {', '.join(f'{r[i]:.1f}' for r in own)} s (median {o:.1f}); "
            f"engine's process {', '.join(f'{r[i]:.1f}' for r in shared)} s (median {s:.1f}): "
            f"{100 * (o - s) / s:+.1f} %"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the runs")
    parser.add_argument("--cifar-train", type=int, default=5000, help="CIFAR-10 training images of the second run")
    parser.add_argument("--parts", default="quickstart,cifar", help="which runs: quickstart, cifar (comma-separated)")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    print(f"{os.cpu_count()} CPUs, {args.threads} thread(s)")
    parts = set(args.parts.split(","))
    if "quickstart" in parts:
        quickstart = ROOT / "protocols" / "quickstart.yaml"
        compare("quickstart (2 seeds, 48 jobs)", quickstart, ["--seeds", "0,1"], args.repeats)
    if "cifar" not in parts or not CIFAR_TGZ.is_file():
        print(f"CIFAR-10 skipped ({CIFAR_TGZ} is not there)" if "cifar" in parts else "CIFAR-10 skipped")
        return
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None) as data:
        subprocess.run(["tar", "-xzf", str(CIFAR_TGZ), "-C", data], check=True)
        os.environ["CIFAR10_ROOT"] = data
        extra = [
            f"data.train_subset={args.cifar_train}",
            "base.epochs=1",
            "base.schedule={name: constant}",
            "retrain.epochs=1",
            "retrain.schedule={name: constant}",
            "pruning.sparsities=[0.9]",
            "pruning.rewind_epoch=0",
            "--seeds",
            "0",
            "methods.3.budget.pruning_epochs=1",
            "--methods",
            "global_magnitude,gradual_magnitude",
        ]
        name = f"CIFAR-10 ResNet-20 ({args.cifar_train} images, 2 jobs)"
        compare(name, ROOT / "protocols" / "cifar10_resnet20.yaml", extra, args.repeats)


if __name__ == "__main__":
    main()
