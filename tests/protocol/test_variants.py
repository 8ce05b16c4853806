"""Retraining variants: the LR sweep with validation-only selection, the epoch extension, their
protocol fields, jobs, result records, budget audit and leaderboard boards."""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from prunebench.fairness import audit_budget
from prunebench.protocol import PROTOCOL, parse_protocol, stretch_budget
from prunebench.report import Comparison, Leaderboard, compare
from prunebench.report.recipe_selection import select, validation_accuracies
from prunebench.results import Ledger, Metrics, ResultRecord, StageLedger, load_records, load_result
from prunebench.run import Runner, plan
from prunebench.testing import MINIMAL

# TINY's data, model and base training: the dense checkpoints are shared with the other tests' cache.
SWEEP = textwrap.dedent(
    """\
    name: sweep
    data: {name: digits}
    model: {name: small_cnn, args: {width: 0.25}}
    base: {epochs: 2, batch_size: 128, optimizer: {lr: 0.1}}
    pruning: {sparsities: [0.5]}
    retrain: {epochs: 1, batch_size: 128, optimizer: {lr: 0.05}}
    seeds: [0]
    methods:
      - name: global_magnitude
      - name: random
    variants:
      retrain_sweep: {lr: [0.002, 0.05, 0.3]}
      retrain_extension: {epochs: [1]}
    """
)


# ---- the protocol ------------------------------------------------------------------------------------
def test_variants_are_hashed_only_when_set() -> None:
    base = parse_protocol(MINIMAL)
    assert base.hash == "e678d877e1407d1cd7a173a6a5ca0bba57e18d43821efa8e7b5a76df5c070695"
    assert parse_protocol(MINIMAL + "variants: {}\n").hash == base.hash
    swept = parse_protocol(MINIMAL + "variants: {retrain_sweep: {lr: [0.01]}}\n")
    assert swept.hash != base.hash
    assert swept.hashed_content()["variants"] == {"retrain_sweep": {"lr": [0.01], "schedules": {}}}
    assert parse_protocol(MINIMAL + "variants: {retrain_sweep: {lr: [0.02]}}\n").hash != swept.hash


def test_sweep_and_extension_expand_into_named_recipes() -> None:
    p = parse_protocol(
        MINIMAL
        + textwrap.dedent(
            """\
            variants:
              retrain_sweep:
                lr: [0.01, 0.1]
                schedules: {cos: {name: cosine}}
              retrain_extension: {epochs: [4]}
            """
        )
    )
    vplan = p.variant_plan()
    # 0.1 with the protocol's constant schedule is the protocol's own recipe: a candidate, but no variant.
    assert vplan.sweep[0] == (PROTOCOL, "lr-0.01_cos", "lr-0.1_cos")
    assert vplan.sweep[4] == ("ext-4", "lr-0.01_cos_ext-4", "lr-0.1_cos_ext-4")
    assert vplan.names == ["lr-0.01_cos", "lr-0.1_cos", "ext-4", "lr-0.01_cos_ext-4", "lr-0.1_cos_ext-4"]
    cos = vplan.get("lr-0.01_cos").retrain
    assert (cos.optimizer.lr, cos.schedule.name, cos.epochs) == (0.01, "cosine", 2)
    assert cos.optimizer.weight_decay == p.retrain.optimizer.weight_decay  # the rest is the protocol's
    ext = vplan.get("ext-4").retrain
    assert ext == p.retrain.with_epochs(6) and ext.epochs == 6
    assert vplan.get("lr-0.1_cos_ext-4").retrain == vplan.get("lr-0.1_cos").retrain.with_epochs(6)


def test_variant_errors_name_their_field() -> None:
    from prunebench.errors import ProtocolError

    cases = {
        "variants: {retrain_sweep: {schedules: {late: {name: multistep, milestones: [5]}}}}": (
            "variants.retrain_sweep.schedules.late",
            "milestone 5",
        ),
        "variants: {retrain_sweep: {lr: []}}": ("variants.retrain_sweep", "needs `lr` or `schedules`"),
        "variants: {retrain_sweep: {lr: [0.1], lrs: [1]}}": ("variants.retrain_sweep.lrs", "unknown field"),
        "variants: {retrain_extension: {epochs: [0]}}": ("variants.retrain_extension.epochs", "positive"),
        "variants: {retrain_sweep: {schedules: {protocol: {name: cosine}}}}": ("variants.retrain_sweep.schedules", ""),
        "variants: {retrain_sweep: {lr: [0.1]}}": ("variants.retrain_sweep", "nothing to choose from"),
    }
    for text, (where, what) in cases.items():
        with pytest.raises(ProtocolError) as info:
            parse_protocol(MINIMAL + text + "\n", "p.yaml")
        assert info.value.field == where and what in str(info.value), str(info.value)
        assert info.value.line == 14


def test_trainability_epochs_must_fit_every_variant() -> None:
    from prunebench.errors import ProtocolError

    text = MINIMAL + "analyses: {trainability: {enabled: true, epochs: 2}}\n"
    parse_protocol(text + "variants: {retrain_extension: {epochs: [1]}}\n")  # longer: fine
    with pytest.raises(ProtocolError, match="exceeds the 1 retraining epochs of variant recipe-b"):
        parse_protocol(
            text.replace("  - name: global_magnitude\n", "  - name: global_magnitude\n  - {name: random, label: b}\n")
            + "variants: {swap: {recipes: {global_magnitude: {}, b: {epochs: 1}}}}\n"
        )


# ---- jobs, records, budget ---------------------------------------------------------------------------
def test_plan_adds_each_variants_own_jobs_and_filters_them() -> None:
    p = parse_protocol(SWEEP)
    jobs = plan(p)
    assert [j.variant for j in jobs if j.method_key == "random"] == [
        None,
        "lr-0.002",
        "lr-0.3",
        "ext-1",
        "lr-0.002_ext-1",
        "lr-0.3_ext-1",
    ]
    job = next(j for j in jobs if j.variant == "lr-0.3")
    assert job.path(Path("run")) == Path("run/global_magnitude/lr-0.3/sparsity-0.5_seed-0.json")
    assert job.id == "global_magnitude/lr-0.3/sparsity-0.5_seed-0"
    only = plan(p, variants=["protocol", "ext-1"], methods=["random"])
    assert [(j.method_key, j.variant) for j in only] == [("random", None), ("random", "ext-1")]
    from prunebench.errors import PrunebenchError

    with pytest.raises(PrunebenchError, match="--variants: 'lr-9'"):
        plan(p, variants=["lr-9"])


def test_budget_audit_judges_a_variant_against_its_own_recipe() -> None:
    p = parse_protocol(SWEEP.replace("seeds: [0]", "seeds: [0]\nbudget: {total_epochs: 1}\ncomparison: S3.2"))
    ext = p.for_variant("lr-0.3_ext-1")
    assert ext.retrain.epochs == 2 and ext.retrain.optimizer.lr == 0.3
    assert ext.budget.total_epochs == 2  # an explicit total moves with the extra epoch
    assert ext.hash != p.hash and p.for_variant(None) is p
    ledger = Ledger(retrain=StageLedger(epochs=2.0, steps=26, examples=3234, runs=1))
    ok = audit_budget(ext, None, ledger, [], 1e5, 1617, retrain_used=ext.retrain)
    assert ok.violations == [] and ok.limits["retrain_epochs"] == 2.0
    # The same job judged against the protocol's own recipe breaks S3.1 and S3.2: what variants must avoid.
    flagged = audit_budget(p, None, ledger, [], 1e5, 1617, retrain_used=ext.retrain)
    assert any("S3.2" in v for v in flagged.violations) and any("fixes 1" in v for v in flagged.violations)
    assert stretch_budget(p.budget, 1, 1) is p.budget


# ---- a real sweep on digits --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory: pytest.TempPathFactory, shared_cache: Path) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    path = root / "sweep.yaml"
    path.write_text(SWEEP)
    p = parse_protocol(SWEEP, path)
    runner = Runner(p, results_dir=root / "results", cache_dir=shared_cache, device="cpu")
    records = runner.run(plan(p))
    assert len(records) == 12 and all(r.status == "ok" for r in records), [r.reasons for r in records]
    return runner.run_dir


def _records(run_dir: Path) -> dict[tuple[str, str | None], ResultRecord]:
    out = {}
    for f in run_dir.rglob("sparsity-*.json"):
        r = load_result(f)
        out[(r.method.label, r.variant.name if r.variant else None)] = r
    return out


def _board(c: Comparison, variant: str | None) -> Leaderboard:
    return next(b for b in c.boards if b.variant == variant)


def test_sweep_writes_a_result_per_variant_from_the_shared_checkpoint(sweep_run: Path) -> None:
    recs = _records(sweep_run)
    names = [None, "lr-0.002", "lr-0.3", "ext-1", "lr-0.002_ext-1", "lr-0.3_ext-1"]
    assert set(recs) == {(m, v) for m in ("global_magnitude", "random") for v in names}
    assert len({r.base.checkpoint_sha256 for r in recs.values()}) == 1  # type: ignore[union-attr]
    assert len({r.protocol.hash for r in recs.values()}) == 1
    r = recs[("random", "lr-0.3_ext-1")]
    assert r.variant is not None and (r.variant.kind, r.variant.lr, r.variant.extra_epochs) == ("sweep", 0.3, 1)
    assert r.retraining.epochs == 2 and r.retraining.optimizer["lr"] == 0.3 and r.ledger.retrain.epochs == 2.0
    assert r.variant.recipe["optimizer"]["lr"] == 0.3
    assert recs[("random", None)].variant is None and recs[("random", None)].retraining.optimizer["lr"] == 0.05
    # Each variant's budget audit judged it against its own recipe: nothing is flagged.
    assert all(r.budget is not None and r.budget.violations == [] for r in recs.values())


@pytest.mark.needs_confinement
def test_selection_picks_the_candidate_with_the_best_validation_accuracy(sweep_run: Path) -> None:
    recs = _records(sweep_run)
    c = compare(load_records([sweep_run]))
    assert [b.variant for b in c.boards] == [
        None,
        "lr-0.002",
        "lr-0.3",
        "ext-1",
        "lr-0.002_ext-1",
        "lr-0.3_ext-1",
        "selected",
        "selected_ext-1",
    ]
    for variant, candidates in (
        ("selected", {PROTOCOL: None, "lr-0.002": "lr-0.002", "lr-0.3": "lr-0.3"}),
        ("selected_ext-1", {"ext-1": "ext-1", "lr-0.002_ext-1": "lr-0.002_ext-1", "lr-0.3_ext-1": "lr-0.3_ext-1"}),
    ):
        board = _board(c, variant)
        assert "VALIDATION-SELECTED" in " ".join(board.notes)
        for row in (r for r in board.rows if r.kind == "method"):
            val = {name: recs[(row.method, job)].metrics.val_top1 for name, job in candidates.items()}  # type: ignore[union-attr]
            best = max(val.values())
            expected = next(name for name, v in val.items() if v == best)
            assert row.selected_variant == expected and row.retrain_variant == variant
            chosen = recs[(row.method, candidates[expected])]
            assert row.top1_mean == chosen.metrics.test_top1  # type: ignore[union-attr]
            assert row.lr == chosen.retraining.optimizer["lr"]
            assert len(row.selection) == 3
    # The protocol's own board is untouched by the variants: its rows are the protocol's recipe.
    own = _board(c, None)
    assert all(r.lr == 0.05 and r.retrain_variant is None for r in own.rows if r.kind == "method")


@pytest.mark.needs_confinement
def test_selection_never_reads_the_test_split(sweep_run: Path, tmp_path: Path) -> None:
    # Test accuracy made to disagree with validation by construction: 1 - val reverses every ranking.
    run = tmp_path / sweep_run.name
    shutil.copytree(sweep_run, run)
    for f in run.rglob("sparsity-*.json"):
        raw = json.loads(f.read_text())
        raw["metrics"]["test_top1"] = 1.0 - raw["metrics"]["val_top1"]
        f.write_text(json.dumps(raw))
    recs = _records(run)
    board = _board(compare(load_records([run])), "selected")
    for row in (r for r in board.rows if r.kind == "method"):
        val = {n: recs[(row.method, j)].metrics.val_top1 for n, j in ((PROTOCOL, None), ("lr-0.3", "lr-0.3"))}  # type: ignore[union-attr]
        val["lr-0.002"] = recs[(row.method, "lr-0.002")].metrics.val_top1  # type: ignore[union-attr]
        assert row.selected_variant == max(val, key=lambda n: val[n])
        # What the row reports is the chosen recipe's test number: here the worst, since test = 1 - val.
        tests = [1.0 - v for v in val.values()]
        assert row.top1_mean == pytest.approx(min(tests))


def test_selection_functions_see_validation_accuracy_only() -> None:
    # Records whose test numbers do not exist at all: reading one would raise AttributeError.
    def rec(seed: int, val: float, status: str = "ok") -> ResultRecord:
        metrics = Metrics.model_construct(val_top1=val, val_loss=1.0)
        return ResultRecord.model_construct(seed=seed, status=status, metrics=metrics)

    vals = {
        "protocol": validation_accuracies([rec(0, 0.80), rec(1, 0.82), rec(2, 0.10, "violation")]),
        "lr-0.1": validation_accuracies([rec(0, 0.85), rec(1, 0.83), rec(2, 0.99)]),
        "lr-0.01": validation_accuracies([]),
    }
    assert vals["protocol"] == {0: 0.80, 1: 0.82}  # only usable records count
    chosen = select(vals)
    assert chosen is not None
    # Scored over the seeds both have (0 and 1): seed 2 of lr-0.1 cannot tilt the choice.
    assert chosen.chosen == "lr-0.1" and chosen.seeds == (0, 1)
    assert chosen.scores["lr-0.1"] == pytest.approx(0.84) and chosen.missing == ("lr-0.01",)
    assert select({"a": {0: 0.5}, "b": {0: 0.5}}).chosen == "a"  # type: ignore[union-attr]  # ties: the earlier
    assert select({"a": {}}) is None


@pytest.mark.needs_confinement
def test_extension_rows_and_the_cli(sweep_run: Path, cli: Callable[..., object], tmp_path: Path) -> None:
    out = tmp_path / "board.json"
    result = cli("compare", sweep_run, "-o", out)
    assert result.code == 0, result.err  # type: ignore[attr-defined]
    doc = json.loads(out.read_text())
    rows = [r for r in doc["rows"] if r["kind"] == "method"]
    ext = [r for r in rows if r["retrain_variant"] == "ext-1"]
    assert {r["method"] for r in ext} == {"global_magnitude", "random"}
    assert all(r["retrain_epochs"] == 2.0 and r["retrain_epochs_limit"] == 2.0 and r["status"] == "ok" for r in ext)
    assert {t["retrain_variant"] for t in doc["tables"]} >= {None, "ext-1", "selected_ext-1"}
    md = cli("compare", sweep_run, "-f", "markdown")
    assert "random [ext-1]" in md.out and "[val-selected: " in md.out  # type: ignore[attr-defined]
    assert "RETRAINING VARIANT ext-1: the protocol's retraining recipe, extended by 1 epochs" in md.out  # type: ignore[attr-defined]
    # The regression gate matches each variant's board with the same variant's in the reference.
    check = cli("check", sweep_run, "-r", sweep_run)
    assert check.code == 0, check.out  # type: ignore[attr-defined]
