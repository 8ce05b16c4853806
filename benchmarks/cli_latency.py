"""Benchmark: how long the command line takes to answer, as a user waits for it.

Times, as subprocesses (interpreter start-up included), `prunebench --help`, `prunebench --version`,
`prunebench run --help`, an argument error (`prunebench run` with no protocol) and `prunebench compare results/`
over the committed references, and prints the median of N runs of each with the machine it ran on.

By default the commands run with a bytecode cache of their own (a fresh PYTHONPYCACHEPREFIX, one untimed warm-up
run per command), as an installed package runs, whatever PYTHONDONTWRITEBYTECODE says here; --as-is runs them in
this environment unchanged.

    .venv/bin/python benchmarks/cli_latency.py [--runs 10] [--as-is] [--results results]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def command_line() -> list[str]:
    """`prunebench` as a user types it: the console script beside this interpreter, else `python -m prunebench`."""
    exe = Path(sys.executable).with_name("prunebench")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "prunebench"]


def timed(argv: list[str], env: dict[str, str], cwd: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t0, done.returncode


def machine() -> str:
    """Logical CPUs (those this process may use), physical cores and threads per core, the CPU, the load."""
    logical = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    cores: set[tuple[str, str]] = set()
    model = "unknown CPU"
    try:
        physical = ""
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "model name":
                model = value
            elif key == "physical id":
                physical = value
            elif key == "core id":
                cores.add((physical, value))
    except OSError:
        pass
    per_core = f", {logical // len(cores)} thread(s) per core" if cores else ""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    return (
        f"{logical} logical CPUs ({usable} usable), {len(cores) or '?'} physical core(s){per_core}, {model}; "
        f"load average {load}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; "
        f"nice {os.nice(0)}; Python {sys.version.split()[0]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="timed runs of each command (the median is shown)")
    parser.add_argument("--results", type=Path, default=ROOT / "results", help="what `compare` reads")
    parser.add_argument("--as-is", action="store_true", help="run in this environment (its bytecode settings)")
    args = parser.parse_args()

    prunebench = command_line()
    commands = [
        ("prunebench --help", ["--help"], 0),
        ("prunebench --version", ["--version"], 0),
        ("prunebench run --help", ["run", "--help"], 0),
        ("prunebench run (no protocol: usage error)", ["run"], 2),
        (f"prunebench compare {args.results.name}/", ["compare", str(args.results.resolve())], 0),
    ]
    env = dict(os.environ)
    # The commands run in an empty folder: the prunebench measured is the one this environment installs (or
    # PYTHONPATH names), never a source tree that happens to be the working directory.
    work = tempfile.mkdtemp(prefix="prunebench-latency-")
    if not args.as_is:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(work) / "pycache")
    try:
        where = subprocess.run(
            [sys.executable, "-c", "import prunebench; print(prunebench.__file__, prunebench.__version__)"],
            env=env,
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        bytecode = (
            "this environment as it is (bytecode "
            + ("not written: PYTHONDONTWRITEBYTECODE" if env.get("PYTHONDONTWRITEBYTECODE") else "cached as usual")
            + ")"
            if args.as_is
            else "a bytecode cache of their own, filled by one untimed run of each command"
        )
        print(f"prunebench: {' '.join(prunebench)} -> {where}")
        print(f"machine: {machine()}")
        print(f"median of {args.runs} runs, subprocess wall time, interpreter start-up included; {bytecode}")
        for name, argv, expected in commands:
            if not args.as_is:
                timed([*prunebench, *argv], env, work)
            runs = [timed([*prunebench, *argv], env, work) for _ in range(args.runs)]
            times = [t for t, _ in runs]
            codes = sorted({code for _, code in runs})
            status = f"exit {codes[0]}" if codes == [expected] else f"exit {codes}, expected {expected}!"
            print(
                f"  {name:<45} {statistics.median(times):6.2f} s  (min {min(times):.2f}, max {max(times):.2f}; "
                f"{status})"
            )
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
