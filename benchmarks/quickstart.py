"""Benchmark: the README's quickstart command, end to end as a user runs it, against a plain PyTorch loop doing
the same training work on one core.

Runs `prunebench run protocols/quickstart.yaml` from the repository (so the dense models come from the
references, as the README says) into a fresh results folder and cache, with the defaults (`--workers auto`: one
per core) unless `--workers` says otherwise, `--repeats` times; reports the wall time, the jobs' seconds and the
runner's peak memory. With `--plain`, the plain loop of `benchmarks/plain_loop.py` times an epoch of each recipe
(warm, medians) and the run's own ledgers say how many epochs of each the grid trained: the ratio is the run's
median wall time over that single-core time (the issue's goal: at most 0.6 on 2 cores).

    .venv/bin/python benchmarks/quickstart.py [--repeats 3] [--plain] [--workers N] [--fresh-dense]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_once(workers: str | None, fresh_dense: bool) -> tuple[float, list[float], Path, tempfile.TemporaryDirectory]:
    tmp = tempfile.TemporaryDirectory()
    cmd = [sys.executable, "-m", "prunebench", "run", "protocols/quickstart.yaml"]
    cmd += ["--results", f"{tmp.name}/r", "--cache", f"{tmp.name}/c"]
    cmd += ["--workers", workers] if workers else []
    if fresh_dense:  # an empty folder in place of the references': every dense model is trained too
        Path(tmp.name, "none").mkdir()
        cmd += ["--dense-from", f"{tmp.name}/none"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    run_dir = next(Path(tmp.name, "r").iterdir())
    records = [json.loads(p.read_text()) for p in run_dir.rglob("sparsity-*.json")]
    return wall, sorted(r["provenance"]["duration_s"] for r in records), run_dir, tmp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--workers", default=None, help="--workers for the run (default: the run's own, auto)")
    parser.add_argument("--fresh-dense", action="store_true", help="train the dense models too")
    parser.add_argument("--plain", action="store_true", help="also time the same work in a plain loop, one core")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    walls, kept = [], None
    for i in range(args.repeats):
        wall, seconds, run_dir, tmp = run_once(args.workers, args.fresh_dense)
        walls.append(wall)
        print(
            f"run {i + 1}: {wall:.1f} s wall for {len(seconds)} jobs; a job's duration_s: median "
            f"{seconds[len(seconds) // 2]:.2f} s, sum {sum(seconds):.1f} s",
            flush=True,
        )
        if kept is not None:
            kept[1].cleanup()
        kept = (run_dir, tmp)
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    wall = statistics.median(walls)
    print(f"{os.cpu_count()} CPUs; workers: {args.workers or 'auto'}; median wall {wall:.1f} s over {len(walls)}")
    print(f"peak resident memory of one process: {peak_mib:.0f} MiB")
    if args.plain and kept is not None:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from plain_loop import quickstart_plain_seconds

        plain = quickstart_plain_seconds(kept[0], with_base=args.fresh_dense)
        print(f"the run's median wall time over the plain loop's single-core time: {wall / plain:.2f}")
    if kept is not None:
        kept[1].cleanup()


if __name__ == "__main__":
    main()
