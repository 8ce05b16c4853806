"""Benchmark: what the optional evaluations (evaluation.robustness, calibration, forgetting) add to a job.

`per-job`: the seconds the runner's measurement (prunebench.run.measurement.evaluation) takes for one job's model
at the quickstart's scale (its model on digits, 359 test images) and, with CIFAR10_ROOT set, at the CPU CIFAR
protocol's (ResNet-20 at width 8, 1,000 test images): each evaluation alone and all three, for the first job of a
seed (its dense model measured too) and for every later one (the dense model's outcome kept).

`runs`: the quickstart's seed 0 (24 jobs, one worker) through `prunebench run`, with the evaluations off and with all
three on, alternating: the jobs' `duration_s` summed from their records, and the wall time. Off, the step returns
before anything is computed (`RunResources.evaluations` is None), so the two differ by the evaluations alone; with
`--before REV`, the same run at that git revision (a checkout made with `git archive`) alternates with them: off
against the code before the evaluations existed.

    [CIFAR10_ROOT=...] OMP_NUM_THREADS=1 .venv/bin/python benchmarks/evaluations.py [--parts per-job,runs] \
        [--before REV]
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
ALL = ["evaluation.calibration=true", "evaluation.forgetting=true", "evaluation.robustness={}"]
FIELDS = {
    "robustness (9 corruptions x 5 severities)": {"robustness": {}},
    "calibration": {"calibration": True},
    "forgetting": {"forgetting": True},
    "all three": {"robustness": {}, "calibration": True, "forgetting": True},
}


def per_job(protocol: Path, repeats: int) -> None:
    from prunebench.data import load_data
    from prunebench.masks import masks_from_scores
    from prunebench.protocol import EvaluationSpec, load_protocol
    from prunebench.run.measurement.evaluation import EvaluationMeasurement
    from prunebench.run.setup import prunable_of, seeded_model

    p = load_protocol(protocol)
    data = load_data(p.data)
    assert data.test is not None
    dense = seeded_model(p, data, 0).eval()
    pruned = seeded_model(p, data, 0).eval()
    params, _ = prunable_of(p, pruned, data)
    keep = masks_from_scores({k: w.abs() for k, w in params.items()}, 0.9, scope="global")
    with torch.no_grad():
        for k, w in params.items():
            w.mul_(keep[k])
    print(f"{p.name}: {data.test.num_examples} test images, {p.model.name} {p.model.args} (medians of {repeats})")
    for name, fields in FIELDS.items():
        first, later = [], []
        for r in range(repeats):
            measure = EvaluationMeasurement(
                EvaluationSpec(**fields),
                data.test,
                num_classes=data.num_classes,
                batch_size=p.data.eval_batch_size,
                device=torch.device("cpu"),
            )
            start = time.perf_counter()
            measure.record(pruned, lambda: dense, f"dense-{r}")
            first.append(time.perf_counter() - start)
            start = time.perf_counter()
            measure.record(pruned, lambda: dense, f"dense-{r}")
            later.append(time.perf_counter() - start)
        print(
            f"  {name}: first job of a seed {statistics.median(first):.3f} s, "
            f"every later job {statistics.median(later):.3f} s"
        )


def runs(repeats: int, before: str | None) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PRUNEBENCH_WORKERS": "1"}
    modes = ["off", "on"] + ([f"off at {before}"] if before else [])
    durations: dict[str, list[float]] = {m: [] for m in modes}
    walls: dict[str, list[float]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        old = checkout(before, Path(tmp) / "before") if before else None
        for r in range(repeats):
            for i, mode in enumerate(modes):
                results = Path(tmp) / f"{i}-{r}"
                root, path = (old, {**env, "PYTHONPATH": str(old / "pp")}) if mode.startswith("off at") else (ROOT, env)
                command = [sys.executable, "-m", "prunebench", "run", str(root / "protocols" / "quickstart.yaml")]
                command += [*(ALL if mode == "on" else []), "--seeds", "0", "--workers", "1"]
                command += ["--results", str(results), "--cache", str(cache)]
                start = time.perf_counter()
                subprocess.run(command, check=True, env=path, cwd=root, capture_output=True)
                walls[mode].append(time.perf_counter() - start)
                records = [json.loads(f.read_text()) for f in results.glob("*/*/*.json")]
                durations[mode].append(sum(rec["provenance"]["duration_s"] for rec in records))
                assert len(records) == 24 and all(("evaluation" in rec) == (mode == "on") for rec in records)
    for mode in modes:
        print(
            f"  quickstart seed 0, 24 jobs, evaluations {mode}: jobs' duration_s summed "
            f"{statistics.median(durations[mode]):.1f} s, wall {statistics.median(walls[mode]):.1f} s "
            f"(medians of {repeats}; each: {', '.join(f'{d:.1f}' for d in durations[mode])})"
        )


def checkout(revision: str, into: Path) -> Path:
    """The repository at `revision`, unpacked into `into`, importable from `into / "pp"` as prunebench and
    prunebench_baselines."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", revision], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    (into / "pp").mkdir()
    (into / "pp" / "prunebench").symlink_to(into / "prunebench")
    (into / "pp" / "prunebench_baselines").symlink_to(into / "baselines")
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="per-job,runs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--before", metavar="REV", help="Also run the quickstart's seed 0 at this git revision.")
    args = parser.parse_args()
    print(
        f"machine: {os.cpu_count()} CPU(s), torch {torch.__version__}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, torch threads {torch.get_num_threads()}"
    )
    parts = args.parts.split(",")
    if "per-job" in parts:
        per_job(ROOT / "protocols" / "quickstart.yaml", args.repeats)
        if os.environ.get("CIFAR10_ROOT"):
            per_job(ROOT / "protocols" / "cifar10_cpu.yaml", args.repeats)
    if "runs" in parts:
        runs(args.repeats, args.before)


if __name__ == "__main__":
    main()
