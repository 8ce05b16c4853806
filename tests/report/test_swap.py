"""The swap test (Wang et al. 2023, §5): A+FT_A, A+FT_B, B+FT_A, B+FT_B from the same dense checkpoints,
and the report's verdict with paired 95% t-intervals, checked by hand."""

from __future__ import annotations

import json
import math
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from prunebench.protocol import parse_protocol
from prunebench.report.swap import swap_report, swap_result, swap_verdict
from prunebench.results import load_records, load_result
from prunebench.run import Runner, plan

SWAP = textwrap.dedent(
    """\
    name: swap
    data: {name: digits}
    model: {name: small_cnn, args: {width: 0.25}}
    base: {epochs: 2, batch_size: 128, optimizer: {lr: 0.1}}
    pruning: {sparsities: [0.5]}
    retrain: {epochs: 1, batch_size: 128, optimizer: {lr: 0.05}}
    seeds: [0, 1]
    methods:
      - {name: global_magnitude, label: A}
      - {name: random, label: B}
    variants:
      swap:
        recipes:
          A: {optimizer: {lr: 0.01}}
          B: {optimizer: {lr: 0.2}, schedule: {name: cosine}}
    """
)
T2 = 4.302652729749462  # the 97.5% quantile of Student's t with 2 degrees of freedom
T1 = 12.706204736174705  # ... with 1 degree of freedom


def test_the_swap_plans_four_jobs_per_seed_and_reuses_equal_recipes() -> None:
    p = parse_protocol(SWAP)
    jobs = plan(p, variants=["recipe-A", "recipe-B"])
    assert [(j.method_key, j.variant, j.seed) for j in jobs if j.seed == 0] == [
        ("A", "recipe-A", 0),
        ("B", "recipe-A", 0),
        ("A", "recipe-B", 0),
        ("B", "recipe-B", 0),
    ]
    assert len(plan(p)) == 12  # and the protocol's own two jobs per seed
    # A recipe equal to the protocol's is the protocol's own jobs: nothing runs twice.
    same = parse_protocol(SWAP.replace("A: {optimizer: {lr: 0.01}}", "A: {}"))
    assert same.variant_plan().job_variant("recipe-A", "B") is None
    assert [j.variant for j in plan(same) if j.seed == 0] == [None, None, "recipe-B", "recipe-B"]
    b = same.variant_plan().get("recipe-B").retrain
    assert (b.optimizer.lr, b.schedule.name, b.optimizer.weight_decay) == (0.2, "cosine", 1e-4)


@pytest.fixture(scope="module")
def swap_run(tmp_path_factory: pytest.TempPathFactory, shared_cache: Path) -> Path:
    root = tmp_path_factory.mktemp("swap")
    p = parse_protocol(SWAP, root / "swap.yaml")
    runner = Runner(p, results_dir=root / "results", cache_dir=shared_cache, device="cpu")
    records = runner.run(plan(p))
    assert len(records) == 12 and all(r.status == "ok" for r in records), [r.reasons for r in records]
    return runner.run_dir


def test_the_four_runs_share_the_base_checkpoint_of_their_seed(swap_run: Path) -> None:
    by_seed: dict[int, dict[str, str]] = {}
    for f in swap_run.rglob("sparsity-*.json"):
        r = load_result(f)
        key = f"{r.method.label}+{r.variant.name if r.variant else 'protocol'}"
        by_seed.setdefault(r.seed, {})[key] = r.base.checkpoint_sha256  # type: ignore[union-attr]
        # Each recipe is shared by both methods of its variant: the budget audit flags nothing.
        assert r.budget is not None and r.budget.violations == []
        if r.variant is not None:
            assert r.variant.kind == "swap" and r.variant.recipe_of == r.variant.name.removeprefix("recipe-")
    for seed, runs in by_seed.items():
        assert set(runs) == {f"{m}+{v}" for m in "AB" for v in ("protocol", "recipe-A", "recipe-B")}
        assert len(set(runs.values())) == 1, f"seed {seed}: {runs}"
    assert by_seed[0]["A+recipe-A"] != by_seed[1]["A+recipe-A"]  # one dense model per seed


def test_the_swap_report_of_a_real_run(swap_run: Path, cli: Callable[..., object]) -> None:
    (result,) = swap_report(load_records([swap_run])).results
    assert (result.a, result.b, result.recipe_a, result.recipe_b) == ("A", "B", "recipe-A", "recipe-B")
    assert result.seeds == [0, 1] and result.excluded == []
    assert set(result.accuracy) == {"A+FT_A", "B+FT_A", "A+FT_B", "B+FT_B"}
    acc = result.accuracy
    assert result.under_a.mean == pytest.approx(sum(acc["A+FT_A"][s] - acc["B+FT_A"][s] for s in (0, 1)) / 2)
    out = cli("swap", swap_run, "-f", "json")
    assert out.code == 0, out.err  # type: ignore[attr-defined]
    doc = json.loads(out.out)  # type: ignore[attr-defined]
    assert doc["results"][0]["verdict"] == result.verdict and doc["results"][0]["under_a"]["n"] == 2
    table = cli("swap", swap_run)
    assert "A vs B" in table.out and "Swap test" in table.out  # type: ignore[attr-defined]
    assert cli("swap", swap_run.parent.parent / "nothing-here").code == 2  # type: ignore[attr-defined]


def test_swap_writes_no_file_in_a_format_it_does_not_have(
    swap_run: Path, tmp_path: Path, cli: Callable[..., object]
) -> None:
    """`swap -o board.csv` is one error line naming --output, as `compare -o board.xlsx` is; nothing is written."""
    for name in ("board.csv", "board.html", "board.xlsx"):
        refused = cli("swap", swap_run, "-o", tmp_path / name)
        err = refused.err  # type: ignore[attr-defined]
        assert refused.code == 2 and err.startswith(f"error: --output {tmp_path / name}: "), err  # type: ignore[attr-defined]
        assert len(err.splitlines()) == 1 and not (tmp_path / name).exists()
    written = cli("swap", swap_run, "-o", tmp_path / "board.md")
    assert written.code == 0 and (tmp_path / "board.md").read_text().startswith("| protocol |")  # type: ignore[attr-defined]


# ---- the verdicts, by hand --------------------------------------------------------------------------
def runs(a_fa: list[float], b_fa: list[float], a_fb: list[float], b_fb: list[float], sha: str = "c") -> dict:
    return {
        k: {s: (v, sha) for s, v in enumerate(vals)}
        for k, vals in (("A+FT_A", a_fa), ("B+FT_A", b_fa), ("A+FT_B", a_fb), ("B+FT_B", b_fb))
    }


def test_a_method_that_wins_under_both_recipes() -> None:
    r = swap_result(
        "p", "s", 0.9, "A", "B", "recipe-A", "recipe-B",
        runs([0.80, 0.82, 0.84], [0.70, 0.71, 0.75], [0.85, 0.86, 0.88], [0.80, 0.80, 0.81]),
    )  # fmt: skip
    # Under FT_A: differences 0.10, 0.11, 0.09: mean 0.10, sd 0.01, half-width t * 0.01 / sqrt(3).
    half = T2 * 0.01 / math.sqrt(3)
    assert r.under_a.mean == pytest.approx(0.10) and r.under_a.std == pytest.approx(0.01)
    assert (r.under_a.low, r.under_a.high) == (pytest.approx(0.10 - half), pytest.approx(0.10 + half))
    # Under FT_B: 0.05, 0.06, 0.07: mean 0.06, the same sd.
    assert (r.under_b.low, r.under_b.high) == (pytest.approx(0.06 - half), pytest.approx(0.06 + half))
    assert (r.winner_a, r.winner_b, r.verdict) == ("A", "A", "A wins under both recipes")
    # Interaction: 0.05, 0.05, 0.02: mean 0.04, sd sqrt(0.0003); its interval holds 0.
    ihalf = T2 * math.sqrt(0.0003) / math.sqrt(3)
    assert r.interaction.mean == pytest.approx(0.04)
    assert (r.interaction.low, r.interaction.high) == (pytest.approx(0.04 - ihalf), pytest.approx(0.04 + ihalf))
    assert r.interaction.low < 0 and r.interaction_verdict == "no significant interaction"
    # Each with its own recipe (A+FT_A - B+FT_B): 0.00, 0.02, 0.03.
    assert r.own.mean == pytest.approx(0.05 / 3)
    # p of the paired t-test under FT_A: t = 0.10 / (0.01 / sqrt(3)) with 2 degrees of freedom.
    t = 0.10 / (0.01 / math.sqrt(3))
    assert r.under_a.p == pytest.approx(1 - t / math.sqrt(2 + t * t))  # two-sided p of Student's t, df = 2


def test_a_ranking_that_flips_with_the_recipe() -> None:
    r = swap_result(
        "p", "s", 0.9, "A", "B", "recipe-A", "recipe-B",
        runs([0.85, 0.86, 0.87], [0.80, 0.80, 0.80], [0.76, 0.75, 0.74], [0.80, 0.80, 0.80]),
    )  # fmt: skip
    half = T2 * 0.01 / math.sqrt(3)
    assert (r.under_a.low, r.under_a.high) == (pytest.approx(0.06 - half), pytest.approx(0.06 + half))
    assert (r.under_b.low, r.under_b.high) == (pytest.approx(-0.05 - half), pytest.approx(-0.05 + half))
    assert (r.winner_a, r.winner_b) == ("A", "B")
    assert r.verdict.startswith("RANKING FLIPS: A wins under FT_A, B under FT_B (each method wins with its own")
    # Interaction: 0.09, 0.11, 0.13: mean 0.11, sd 0.02; its interval lies above 0.
    ihalf = T2 * 0.02 / math.sqrt(3)
    assert (r.interaction.low, r.interaction.high) == (pytest.approx(0.11 - ihalf), pytest.approx(0.11 + ihalf))
    assert r.interaction_verdict == "significant method x recipe interaction"


def test_the_other_verdicts() -> None:
    assert swap_verdict("A", "B", "B", "A").startswith("RANKING FLIPS: B wins under FT_A, A under FT_B")
    assert "the other's" in swap_verdict("A", "B", "B", "A")
    assert swap_verdict("A", "B", "tie", "B") == "B wins under FT_B only; tied under FT_A"
    assert swap_verdict("A", "B", "A", "tie") == "A wins under FT_A only; tied under FT_B"
    assert swap_verdict("A", "B", "tie", "tie") == "tied under both recipes"
    one = swap_result("p", "s", 0.5, "A", "B", "ra", "rb", runs([0.9], [0.8], [0.9], [0.8]))
    assert one.verdict.startswith("n/a") and one.under_a.low is None and one.interaction_verdict == "n/a"


def test_a_seed_whose_runs_started_from_other_checkpoints_is_left_out() -> None:
    data = runs([0.80, 0.82, 0.84], [0.70, 0.71, 0.75], [0.85, 0.86, 0.88], [0.80, 0.80, 0.81])
    data["B+FT_B"][2] = (0.81, "other")
    del data["A+FT_B"][1]
    r = swap_result("p", "s", 0.9, "A", "B", "recipe-A", "recipe-B", data)
    assert r.seeds == [0]
    assert r.excluded == [
        "seed 1: no usable result of A+FT_B",
        "seed 2: the four runs started from 2 different dense checkpoints",
    ]
    assert r.verdict.startswith("n/a")


def test_hand_made_records_through_the_cli(swap_run: Path, tmp_path: Path, cli: Callable[..., object]) -> None:
    run = tmp_path / swap_run.name
    shutil.copytree(swap_run, run)
    made = {  # (method, variant) -> test top-1 of seeds 0 and 1: A wins with FT_A, B with FT_B
        ("A", "recipe-A"): (0.90, 0.91),
        ("B", "recipe-A"): (0.80, 0.80),
        ("A", "recipe-B"): (0.70, 0.70),
        ("B", "recipe-B"): (0.80, 0.81),
    }
    for f in run.rglob("sparsity-*.json"):
        raw = json.loads(f.read_text())
        if raw["variant"] is not None:
            raw["metrics"]["test_top1"] = made[(raw["method"]["label"], raw["variant"]["name"])][raw["seed"]]
            f.write_text(json.dumps(raw))
    doc = json.loads(cli("swap", run, "-f", "json").out)  # type: ignore[attr-defined]
    (r,) = doc["results"]
    half = T1 * math.sqrt(0.00005) / math.sqrt(2)  # differences 0.10, 0.11 (and -0.10, -0.11): sd sqrt(5e-5)
    assert r["under_a"]["mean"] == pytest.approx(0.105) and r["under_a"]["low"] == pytest.approx(0.105 - half)
    assert r["under_b"]["high"] == pytest.approx(-0.105 + half)
    assert r["verdict"].startswith("RANKING FLIPS: A wins under FT_A, B under FT_B")
    md = cli("swap", run, "-f", "markdown").out  # type: ignore[attr-defined]
    assert "+10.50 [" in md and "RANKING FLIPS" in md
    # A run from another dense checkpoint takes its seed out of the test.
    victim = run / "B" / "recipe-B" / "sparsity-0.5_seed-1.json"
    raw = json.loads(victim.read_text())
    raw["base"]["checkpoint_sha256"] = "0" * 64
    victim.write_text(json.dumps(raw))
    (r,) = json.loads(cli("swap", run, "-f", "json").out)["results"]  # type: ignore[attr-defined]
    assert r["seeds"] == [0] and "seed 1: the four runs started from 2 different dense checkpoints" in r["excluded"]
