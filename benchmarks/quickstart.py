"""Benchmark: the embedded quickstart, end to end, as a user runs it.

Runs `prunebench run protocols/quickstart.yaml` in a fresh results and cache directory (so the
dense models are trained too) and reports wall time, jobs, seconds per job and peak memory.

    .venv/bin/python benchmarks/quickstart.py [--protocol protocols/quickstart.yaml] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", type=Path, default=ROOT / "protocols" / "quickstart.yaml")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the run (default: torch's)")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "prunebench.cli",
            "run",
            str(args.protocol),
            "--results",
            f"{tmp}/r",
            "--cache",
            f"{tmp}/c",
            "--device",
            "cpu",
        ]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        records = [json.loads(p.read_text()) for p in Path(tmp, "r").rglob("sparsity-*.json")]
    job_seconds = sorted(r["provenance"]["duration_s"] for r in records)
    print(f"protocol: {args.protocol.name}; {os.cpu_count()} CPUs; threads: {args.threads or 'torch default'}")
    print(f"wall time, install-free start to summary: {wall:.1f} s for {len(records)} jobs")
    print(
        f"per job (prune + retrain + evaluate): median {job_seconds[len(job_seconds) // 2]:.2f} s, "
        f"max {job_seconds[-1]:.2f} s"
    )
    print(f"peak resident memory: {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
