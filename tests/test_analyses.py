"""Analyses: each metric against hand-computed values, the protocol section, and a real run with
analyses on and off (they are recorded, and they change nothing that is trained)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from prunebench.analyses import (
    Analyses,
    first_lr_stage_epochs,
    shedding_counts,
    shedding_summary,
    shedding_thresholds,
    trainability_accuracy,
    weight_correlation,
)
from prunebench.protocol import AnalysesSpec, ScheduleSpec, TrainingSpec, load_protocol, parse_protocol, setup_hash
from prunebench.results import EpochRecord, ResultRecord, load_result
from prunebench.run import Runner, plan
from prunebench.testing import TINY


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def b(*values: int) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.bool)


# ---- shedding ------------------------------------------------------------------------------------
# Reference weights a layer was pruned from, the masks (False = pruned), and weights after retraining.
REFERENCE = {"a": t(0.1, -0.2, 0.3, -0.4), "b": t(0.5, 0.6, -0.05, 0.7)}
MASKS = {"a": b(0, 1, 1, 1), "b": b(1, 1, 0, 1)}
WEIGHTS = {"a": t(0.0, 0.05, 0.3, -0.09), "b": t(0.5, -0.01, 0.0, 0.07)}


def test_shedding_global_pruning_threshold_by_hand() -> None:
    # 2 weights pruned; the 2nd smallest |w| of the reference is 0.1: that is global magnitude
    # pruning's threshold. Kept and below it: a: 0.05, 0.09; b: 0.01, 0.07.
    thresholds = shedding_thresholds(REFERENCE, MASKS, rule="global_pruning", factor=1.0)
    assert thresholds == pytest.approx({"a": 0.1, "b": 0.1})
    counts = shedding_counts(WEIGHTS, MASKS, thresholds)
    assert (counts["a"].pruned, counts["a"].shed, counts["b"].pruned, counts["b"].shed) == (1, 2, 1, 2)
    summary = shedding_summary(counts, per_layer=True)
    assert summary["shed"] == 4
    assert summary["shed_fraction"] == pytest.approx(4 / 6)
    assert summary["effective_sparsity"] == pytest.approx((2 + 4) / 8)
    assert summary["layers"]["a"]["shed_fraction"] == pytest.approx(2 / 3)
    assert summary["layers"]["b"]["effective_sparsity"] == pytest.approx(3 / 4)


def test_shedding_layer_pruning_and_layer_scale_thresholds_by_hand() -> None:
    layer = shedding_thresholds(REFERENCE, MASKS, rule="layer_pruning", factor=1.0)
    assert layer == pytest.approx({"a": 0.1, "b": 0.05})  # the smallest |w| of each layer (1 pruned each)
    counts = shedding_counts(WEIGHTS, MASKS, layer)
    assert (counts["a"].shed, counts["b"].shed) == (2, 1)  # b: 0.01 < 0.05; 0.07 is not

    # RMS of a: sqrt(0.3 / 4); of b: sqrt(1.1025 / 4) = 0.525.
    scale = shedding_thresholds(REFERENCE, MASKS, rule="layer_scale", factor=0.1)
    assert scale == pytest.approx({"a": 0.1 * (0.075**0.5), "b": 0.0525})
    counts = shedding_counts(WEIGHTS, MASKS, scale)
    assert (counts["a"].shed, counts["b"].shed) == (0, 1)
    assert shedding_summary(counts, per_layer=False)["effective_sparsity"] == pytest.approx(3 / 8)


def test_a_weight_at_the_threshold_is_kept_and_nothing_pruned_means_nothing_shed() -> None:
    at = {"a": t(0.1, 0.2), "b": t(0.3)}
    masks = {"a": b(1, 1), "b": b(1)}
    thresholds = shedding_thresholds(at, masks, rule="global_pruning", factor=1.0)
    assert thresholds == {"a": 0.0, "b": 0.0}
    assert shedding_summary(shedding_counts(at, masks, thresholds), per_layer=False)["shed"] == 0
    counts = shedding_counts(at, masks, {"a": 0.1, "b": 0.1})
    assert counts["a"].shed == 0  # |w| == threshold: not below it


# ---- weight correlation --------------------------------------------------------------------------
def test_weight_correlation_by_hand() -> None:
    a = {"x": t(4, 3, 2, 1), "y": t(0.6, 0.5, 0.4, 0.3, 0.2, 0.1)}
    c = {"x": t(-1, 3, -4, 2), "y": t(0.6, -0.5, 0.4, 0.3, 0.2, 0.1)}
    # p = 0.5: k = 2 and 3. x: {0, 1} vs {2, 1} share 1; y: identical, share 3. (1 + 3) / (2 + 3).
    assert weight_correlation(a, c, 0.5) == pytest.approx(0.8)
    # p = 0.25: k = round(1.0) = 1 and round(1.5) = 2 (half up). x: {0} vs {2}: 0; y: 2. 2 / 3.
    assert weight_correlation(a, c, 0.25) == pytest.approx(2 / 3)


def test_tied_magnitudes_count_by_expected_membership() -> None:
    # A pruned layer: its top-2 is index 0 plus one of the three zeros (1/3 each). The reference's
    # top-2 is {1, 2}: expected overlap 1/3 + 1/3, so R = (2/3) / 2.
    pruned = {"x": t(4, 0, 0, 0)}
    reference = {"x": t(1, 3, 4, 2)}
    assert weight_correlation(pruned, reference, 0.5) == pytest.approx(1 / 3)


def test_the_driver_computes_the_hand_computed_correlations() -> None:
    """The numbers above, through what the runner calls each epoch (Analyses.correlation), per layer too."""
    a = {"x": t(4, 3, 2, 1), "y": t(0.6, 0.5, 0.4, 0.3, 0.2, 0.1)}
    c = {"x": t(-1, 3, -4, 2), "y": t(0.6, -0.5, 0.4, 0.3, 0.2, 0.1)}
    spec = AnalysesSpec.model_validate({"correlation": {"enabled": True, "p": [0.25, 0.5], "against": ["init"]}})
    states = {"init": c, "rewind": c, "final": c}
    out = Analyses(spec, states, when="after_training", regime="fine_tune").correlation(a)
    assert out["init"] == {"0.25": pytest.approx(2 / 3, abs=1e-6), "0.5": pytest.approx(0.8)}
    per_layer = AnalysesSpec.model_validate({"correlation": {"enabled": True, "p": [0.5], "per_layer": True}})
    layers = Analyses(per_layer, states, when="after_training", regime="fine_tune").correlation(a)["layers"]
    assert layers["x"]["base"] == {"0.5": 0.5} and layers["y"]["init"] == {"0.5": 1.0}
    tied = Analyses(spec, {"init": {"x": t(1, 3, 4, 2)}}, when="after_training", regime="fine_tune")
    assert tied.correlation({"x": t(4, 0, 0, 0)})["init"]["0.5"] == pytest.approx(1 / 3, abs=1e-6)


def test_correlation_with_itself_is_one_and_with_independent_weights_is_p() -> None:
    g = torch.Generator().manual_seed(0)
    a = {"conv": torch.randn(64, 16, 3, 3, generator=g), "fc": torch.randn(100, 64, generator=g)}
    c = {k: torch.randn(v.shape, generator=g) for k, v in a.items()}
    for p in (0.1, 0.2, 0.3, 0.4, 0.5):
        assert weight_correlation(a, a, p) == pytest.approx(1.0)
        assert weight_correlation(a, c, p) == pytest.approx(p, abs=0.03)


# ---- trainability --------------------------------------------------------------------------------
def test_first_lr_stage() -> None:
    assert first_lr_stage_epochs(ScheduleSpec(name="multistep", milestones=[3, 6]), 9) == 3
    assert first_lr_stage_epochs(ScheduleSpec(name="step", step_size=4), 10) == 4
    assert first_lr_stage_epochs(ScheduleSpec(name="constant"), 5) == 5
    assert first_lr_stage_epochs(ScheduleSpec(name="cosine"), 10) == 5
    assert first_lr_stage_epochs(ScheduleSpec(name="cosine"), 9) == 5  # 4.5, rounded up
    assert first_lr_stage_epochs(ScheduleSpec(name="cosine", warmup_epochs=2), 10) == 6  # halfway through 2..10
    # A window of a longer schedule (learning-rate rewinding) counts from where it enters.
    window = ScheduleSpec(name="multistep", milestones=[30, 60], span_epochs=90, start_epoch=50)
    assert first_lr_stage_epochs(window, 40) == 10
    late = ScheduleSpec(name="multistep", milestones=[30, 60], span_epochs=90, start_epoch=70)
    assert first_lr_stage_epochs(late, 20) == 20


def test_trainability_accuracy_of_a_given_curve() -> None:
    assert trainability_accuracy([0.5, 0.7, 0.9, 0.1], 3) == pytest.approx(0.7)
    with pytest.raises(ValueError):
        trainability_accuracy([0.5], 2)

    def epoch(stage: str, n: int, val: float) -> EpochRecord:
        return EpochRecord(
            stage=stage,  # type: ignore[arg-type]
            epoch=n,
            lr=0.1,
            train_loss=1.0,
            train_top1=0.5,
            val_loss=1.0,
            val_top1=val,
            sparsity=0.5,
        )

    # Pruning-stage epochs are not retraining; the first LR stage of this recipe is 2 epochs.
    curves = [epoch("pruning", 1, 0.99), *(epoch("retrain", i + 1, v) for i, v in enumerate([0.2, 0.4, 0.9, 0.9]))]
    retrain = TrainingSpec(epochs=4, schedule=ScheduleSpec(name="multistep", milestones=[2]))
    spec = AnalysesSpec.model_validate({"trainability": {"enabled": True}})
    out = Analyses(spec, {}, when="after_training", regime="fine_tune").finish(curves, retrain)
    assert out["trainability"]["accuracy"] == pytest.approx(0.3) and out["trainability"]["epochs"] == 2
    spec = AnalysesSpec.model_validate({"trainability": {"enabled": True, "epochs": 3}})
    out = Analyses(spec, {}, when="after_training", regime="fine_tune").finish(curves, retrain)
    assert out["trainability"]["accuracy"] == pytest.approx(0.5)


# ---- the driver and the protocol -----------------------------------------------------------------
def test_driver_records_compact_numbers_and_which_reference() -> None:
    states = {"init": REFERENCE, "rewind": REFERENCE, "final": REFERENCE}
    spec = AnalysesSpec.model_validate({"shedding": {"enabled": True}, "correlation": {"enabled": True, "p": [0.5]}})
    driver = Analyses(spec, states, when="after_training", regime="weight_rewinding")
    assert driver.shedding_reference == "rewind"
    out = driver("retrain", WEIGHTS, MASKS)
    assert out["shedding"] == {"shed": 4, "shed_fraction": 0.666667, "effective_sparsity": 0.75, "threshold": 0.1}
    assert set(out["correlation"]) == {"init", "rewind", "base"} and set(out["correlation"]["init"]) == {"0.5"}
    assert Analyses(spec, states, when="before_training", regime="fine_tune").shedding_reference == "init"
    assert Analyses(spec, states, when="after_training", regime="fine_tune").shedding_reference == "base"


def test_protocol_section_is_strict_off_by_default_and_hashed_only_when_on() -> None:
    plain = parse_protocol(TINY)
    assert not (plain.analyses.shedding.enabled or plain.analyses.correlation.enabled)
    assert not plain.analyses.trainability.enabled
    assert plain.analyses.correlation.p == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert "analyses" not in plain.hashed_content()
    off = parse_protocol(TINY + "analyses:\n  shedding: {threshold: layer_scale, per_layer: true}\n")
    assert off.analyses.shedding.factor == 0.1  # layer_scale's own default factor
    assert off.hash == plain.hash  # settings of an analysis that is off change nothing
    on = parse_protocol(TINY + "analyses:\n  correlation: {enabled: true}\n")
    assert on.hash != plain.hash  # its result files hold more, so they live apart
    dump = on.model_dump(mode="json")
    assert setup_hash(dump) == setup_hash(plain.model_dump(mode="json"))  # and they rank together
    with pytest.raises(Exception, match="did you mean 'correlation'"):
        parse_protocol(TINY + "analyses:\n  corelation: {enabled: true}\n")
    with pytest.raises(Exception, match="exceeds the 1 retraining epochs"):
        parse_protocol(TINY + "analyses:\n  trainability: {enabled: true, epochs: 2}\n")
    with pytest.raises(Exception, match="between 0 and 1"):
        parse_protocol(TINY + "analyses:\n  correlation: {p: [0, 0.5]}\n")


# ---- a real run ----------------------------------------------------------------------------------
TRAIN_THEN_PRUNE = textwrap.dedent(
    """\
    from prunebench.methods import Method, Taxonomy

    class TrainThenPrune(Method):
        '''Prunes a little, trains an epoch while pruning, then prunes to the target.'''
        name = "train_then_prune"
        taxonomy = Taxonomy(when="after_training", granularity="unstructured", scope="global",
                            schedule="iterative", retraining="fine_tune")
        def prune(self, ctx):
            scores = lambda: {k: w.abs() for k, w in ctx.weights().items()}
            ctx.set_masks(ctx.masks_from_scores(scores(), scope="global", sparsity=0.25))
            ctx.train(1)
            return ctx.masks_from_scores(scores(), scope="global")
    """
)

ANALYSES_ON = {
    "shedding": {"enabled": True, "per_layer": True},
    "correlation": {"enabled": True, "p": [0.1, 0.5]},
    "trainability": {"enabled": True},
}


def tiny_with(tmp_path: Path, analyses: dict[str, Any] | None) -> Path:
    """TINY (base 2 epochs) retrained 2 epochs, at one sparsity, with a method that trains while pruning."""
    (tmp_path / "methods.py").write_text(TRAIN_THEN_PRUNE)
    raw = yaml.safe_load(TINY)
    raw["retrain"]["epochs"] = 2
    raw["pruning"]["sparsities"] = [0.5]
    raw["methods"] = [{"name": "global_magnitude"}, {"name": "methods.py:TrainThenPrune", "label": "train_then_prune"}]
    raw["budget"] = {"pruning_epochs": 1}
    if analyses is not None:
        raw["analyses"] = analyses
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def run(path: Path, results: Path, cache: Path) -> dict[str, ResultRecord]:
    protocol = load_protocol(path)
    Runner(protocol, results_dir=results, cache_dir=cache, device="cpu").run(plan(protocol))
    return {r.job_id: r for r in (load_result(f) for f in results.rglob("*.json") if f.name != "protocol.json")}


def test_records_carry_the_analyses_and_they_change_nothing(tmp_path: Path, shared_cache: Path) -> None:
    on = run(tiny_with(tmp_path, ANALYSES_ON), tmp_path / "on", shared_cache)
    off = run(tiny_with(tmp_path, None), tmp_path / "off", shared_cache)
    assert set(on) == set(off) == {"global_magnitude/sparsity-0.5_seed-0", "train_then_prune/sparsity-0.5_seed-0"}
    for job, record in on.items():
        assert record.status == "ok", record.reasons
        retrain = [c for c in record.curves if c.stage == "retrain"]
        assert len(retrain) == 2
        for c in retrain:
            shed = c.analyses["shedding"]
            assert 0 <= shed["shed_fraction"] <= 1 and shed["threshold"] > 0
            assert shed["effective_sparsity"] >= c.sparsity - 1e-6  # pruned weights count, shed ones add
            assert set(shed["layers"]) == set(record.sparsity.per_layer)  # type: ignore[union-attr]
            assert set(c.analyses["correlation"]) == {"init", "rewind", "base"}
            assert set(c.analyses["correlation"]["base"]) == {"0.1", "0.5"}
        start = record.analyses["retrain_start"]
        if job.startswith("global_magnitude"):
            # Global magnitude pruning of the base model keeps exactly the weights above the
            # threshold: nothing is shed before retraining, and the top 10% are the base model's.
            assert start["shedding"]["shed"] == 0
            assert start["correlation"]["base"]["0.1"] == pytest.approx(1.0)
        else:
            pruning = [c for c in record.curves if c.stage == "pruning"]
            assert len(pruning) == 1 and pruning[0].analyses["shedding"]["effective_sparsity"] >= 0.25 - 1e-6
        trainability = record.analyses["trainability"]
        assert trainability["epochs"] == 2  # a constant schedule is one LR stage: every epoch
        assert trainability["accuracy"] == pytest.approx(sum(c.val_top1 for c in retrain) / 2, abs=1e-6)
        assert record.analyses["shedding_reference"] == "base"

        plain = off[job]
        assert plain.analyses == {} and all(c.analyses == {} for c in plain.curves)
        # Analyses only read the weights: the same training to the last bit, with them or without.
        strip = [c.model_dump(exclude={"analyses"}) for c in record.curves]
        assert strip == [c.model_dump(exclude={"analyses"}) for c in plain.curves]
        assert record.metrics == plain.metrics
