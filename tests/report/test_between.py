"""`compare`'s between-variant column: each retraining variant's row minus the same method and sparsity under
the protocol's recipe (or `--against` a variant's), paired by seed, from a real run with a variant."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from prunebench.results import load_records
from prunebench.testing import TINY

pytestmark = pytest.mark.slow

SWEEP = (
    TINY.replace("sparsities: [0.5, 0.9]", "sparsities: [0.5]")
    .replace("seeds: [0]", "seeds: [0, 1, 2]")
    .replace("  - name: layerwise_magnitude\n  - name: random\n", "")
    + "variants:\n  retrain_sweep:\n    lr: [0.2]\n"
)


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory: pytest.TempPathFactory, shared_cache: Path) -> Path:
    import os
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("between")
    (root / "p.yaml").write_text(SWEEP)
    cmd = [sys.executable, "-m", "prunebench", "run", str(root / "p.yaml"), "--results", str(root / "r")]
    cmd += ["--cache", str(shared_cache), "--device", "cpu"]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    return root / "r"


def by_seed(results: Path, variant: str | None) -> dict[int, float]:
    return {
        x.record.seed: x.record.metrics.test_top1  # type: ignore[union-attr]
        for x in load_records([results])
        if (x.record.variant.name if x.record.variant else None) == variant
    }


def rows(cli, results: Path, *extra: str) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    shown = cli("compare", results, "--format", "json", *extra)
    assert shown.code == 0, shown.err
    # one method, one sparsity: a row per board, named by its retraining variant
    return {r["retrain_variant"] or "protocol": r for r in json.loads(shown.out)["rows"] if r["kind"] == "method"}


@pytest.mark.needs_confinement
def test_a_variant_is_compared_with_the_protocols_recipe_paired_by_seed(cli, sweep_run: Path) -> None:  # type: ignore[no-untyped-def]
    own, swept = by_seed(sweep_run, None), by_seed(sweep_run, "lr-0.2")
    assert sorted(own) == sorted(swept) == [0, 1, 2]
    differences = [swept[s] - own[s] for s in own]
    found = rows(cli, sweep_run)
    row = found["lr-0.2"]
    assert row["vs_recipe"] == "protocol" and row["vs_recipe_n"] == 3
    assert row["vs_recipe_delta"] == pytest.approx(statistics.mean(differences))
    assert row["vs_recipe_ci_low"] <= row["vs_recipe_delta"] <= row["vs_recipe_ci_high"]
    assert 0 <= row["vs_recipe_p"] <= 1
    assert found["protocol"]["vs_recipe"] is None  # the recipe is not compared with itself

    against = rows(cli, sweep_run, "--against", "lr-0.2")
    assert against["protocol"]["vs_recipe"] == "lr-0.2"
    assert against["protocol"]["vs_recipe_delta"] == pytest.approx(-statistics.mean(differences))

    board = cli("compare", sweep_run, "--format", "markdown").out
    own_table, variant_table = board.split("RETRAINING VARIANT")[0], board.split("RETRAINING VARIANT")[1]
    assert "Δ vs recipe (pp)" not in own_table and "Δ vs recipe (pp)" in variant_table
    assert "Δ vs protocol: each row minus the same method and sparsity under the protocol recipe" in variant_table

    wrong = cli("compare", sweep_run, "--against", "lr-9")
    assert wrong.code == 2 and "--against lr-9: no retraining variant of that name" in wrong.err
    assert "(variants: lr-0.2, selected)" in wrong.err  # what there is to compare against
