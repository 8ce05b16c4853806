"""Measurement: how much each documented deviation from a reference implementation moves the results.

On the quickstart's data and model (UCI digits, small_cnn width 0.5, the quickstart's base training and
retraining recipe, 2 seeds), through the runner: SNIP with inference-mode vs batch-statistics BatchNorm,
GraSP's three BatchNorm treatments, Continuous Sparsification's reset at temperature 1 vs the final one;
and the kept-set overlap of the masks of each pair at 90% on the initialized model. Figures go to
docs/methods.md.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/reference_modes.py [--seeds 0,1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch
from prunebench_baselines.grasp import GraSP, GraSPConfig
from prunebench_baselines.snip import SNIP, SNIPConfig

from prunebench.protocol import Protocol, parse_protocol
from prunebench.run import Runner, plan
from prunebench.testing import digits, engine_for, pruning_context

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = """\
methods:
  - {name: snip, label: snip_eval}
  - {name: snip, label: snip_train, config: {batch_norm: train}}
  - {name: grasp, label: grasp_halves}
  - {name: grasp, label: grasp_train, config: {batch_norm: train}}
  - {name: grasp, label: grasp_eval, config: {batch_norm: eval}}
  - {name: continuous_sparsification, label: cs_reset_one, config: {rounds: 2}, budget: {pruning_epochs: 6}}
  - {name: continuous_sparsification, label: cs_reset_final, config: {rounds: 2, reset_temperature: final},
     budget: {pruning_epochs: 6}}
"""


def overlap(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """|kept(a) and kept(b)| / |kept(a)|: the share of one mask's survivors the other keeps too."""
    both = sum(int((a[n] & b[n]).sum()) for n in a)
    return both / sum(int(a[n].sum()) for n in a)


def variants_protocol(seeds: str) -> Protocol:
    """The quickstart's data, model and recipes with the variants above as its methods, run for `seeds` (e.g.
    "0,1"), set as an override: a protocol error, not a silent no-op, whatever the quickstart's seeds line says."""
    source = ROOT / "protocols" / "quickstart.yaml"
    text = source.read_text().split("methods:")[0]
    return parse_protocol(text + VARIANTS, source, overrides=[f"seeds=[{seeds}]"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1")
    args = parser.parse_args()
    p = variants_protocol(args.seeds)
    with tempfile.TemporaryDirectory() as tmp:
        records = Runner(p, results_dir=Path(tmp) / "r", cache_dir=Path(tmp) / "c", device="cpu").run(plan(p))
    table: dict[str, dict[float, list[float]]] = {}
    natural: dict[str, list[float]] = {}
    for r in records:
        if r.metrics is not None:
            table.setdefault(r.method.label, {}).setdefault(r.target_sparsity, []).append(100 * r.metrics.test_top1)
        if "natural_sparsity" in r.method.notes:
            natural.setdefault(r.method.label, []).append(r.method.notes["natural_sparsity"])
    sparsities = sorted({s for rows in table.values() for s in rows})
    print(f"test top-1 % (mean over seeds {args.seeds}) at sparsities {', '.join(map(str, sparsities))}")
    for label, rows in table.items():
        print(f"  {label:>15}: " + "  ".join(f"{statistics.fmean(rows[s]):6.2f}" for s in sparsities))
    for label, values in natural.items():
        print(f"  {label}: sparsity of s > 0 after the last round: {statistics.fmean(values):.3f}")
    data = digits()
    pairs = {
        "snip eval vs train": (SNIP(), SNIP(SNIPConfig(batch_norm="train"))),
        "grasp halves vs train": (GraSP(), GraSP(GraSPConfig(batch_norm="train"))),
        "grasp halves vs eval": (GraSP(), GraSP(GraSPConfig(batch_norm="eval"))),
    }
    for what, (a, b) in pairs.items():
        values = []
        for seed in (0, 1, 2):
            masks = [
                m.prune(pruning_context(engine_for(data, seed=seed, width=0.5), 0.9, seed=seed, scoring_examples=1024))
                for m in (a, b)
            ]
            values.append(overlap(*masks))
        print(f"kept-set overlap at 90%, {what} (initialized small_cnn, 3 seeds): {statistics.fmean(values):.3f}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")


if __name__ == "__main__":
    main()
