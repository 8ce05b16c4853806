"""Benchmark: what running every job's method in a process of its own costs.

1. The start of a job process: an empty task through the fork server, round trip (median of 20).
2. The embedded quickstart end to end (dense models trained too, fresh cache) with this checkout, and with a
   checkout of `--baseline` (default: the last commit before job processes) in a git worktree, alternating,
   `--repeats` times each; the overhead is the difference of the medians over the baseline's median.

    .venv/bin/python benchmarks/isolation.py [--baseline afc326f] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from prunebench.testing import timed_run

ROOT = Path(__file__).resolve().parent.parent


def start_latency(n: int = 20) -> list[float]:
    from prunebench.run.sandbox.process import Limits, run_child, warm_up
    from prunebench.run.sandbox.tasks import DescribeTask, Environment

    warm_up()
    task = pickle.dumps(DescribeTask(Environment.here(), (), None))
    run_child("describe", task, lambda m: None, Limits())  # the fork server's own start
    out = []
    for _ in range(n):
        t = time.perf_counter()
        run_child("describe", task, lambda m: None, Limits())
        out.append(time.perf_counter() - t)
    return out


def quickstart(source: Path, env: dict[str, str]) -> float:
    return timed_run(source, ROOT / "protocols" / "quickstart.yaml", env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="afc326f", help="git ref of the checkout without job processes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the runs")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    latency = sorted(start_latency())
    print(f"{os.cpu_count()} CPUs, {args.threads} thread(s)")
    median, worst = 1000 * statistics.median(latency), 1000 * latency[-1]
    print(f"job process start and round trip: median {median:.1f} ms, max {worst:.1f} ms")

    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.baseline],
            check=True,
            capture_output=True,
        )
        try:
            # The baseline's own baselines package, found before the installed (editable) one.
            (base / "prunebench_baselines").symlink_to(base / "baselines")
            here, there = [], []
            for _ in range(args.repeats):
                here.append(quickstart(ROOT, env))
                there.append(quickstart(base, env))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=True)
    h, b = statistics.median(here), statistics.median(there)
    print(f"quickstart with job processes: {', '.join(f'{t:.1f}' for t in here)} s (median {h:.1f} s)")
    print(f"quickstart at {args.baseline}, in-process: {', '.join(f'{t:.1f}' for t in there)} s (median {b:.1f} s)")
    print(f"isolation overhead: {h - b:+.1f} s, {100 * (h - b) / b:+.1f} % of the in-process quickstart")


if __name__ == "__main__":
    main()
