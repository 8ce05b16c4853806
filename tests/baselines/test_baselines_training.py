"""The training-based baselines on real data (UCI digits): gradual magnitude pruning, iterative magnitude
pruning with weight rewinding / learning-rate rewinding / fine-tuning, Continuous Sparsification and
training from scratch; their schedules, what they spend, and the literature's robust ordering."""

from __future__ import annotations

import itertools
import math
import textwrap
from pathlib import Path
from statistics import mean

import pytest
from prunebench_baselines.continuous_sparsification import beta_schedule
from prunebench_baselines.gradual_magnitude import pruning_steps, scheduled_sparsity
from prunebench_baselines.iterative_magnitude import round_sparsities

from prunebench.protocol import parse_protocol
from prunebench.results import ResultRecord
from prunebench.run import Runner, plan
from prunebench.testing import TINY

# Test subclasses that check, from inside the job, what the engine did with the weights.
CHECKED = textwrap.dedent(
    """\
    import torch
    from prunebench_baselines.continuous_sparsification import ContinuousSparsification
    from prunebench_baselines.iterative_magnitude import LotteryTicket
    from prunebench_baselines.scratch import ScratchE

    def rewound(ctx):
        '''Every tensor is the saved rewind state's, the prunable weights masked: exactly.'''
        state, masks, weights = ctx.rewind_weights(), ctx.masks(), ctx.weights()
        prunable = all(torch.equal(w.detach(), state[k] * masks[k]) for k, w in weights.items())
        rest = all(torch.equal(v, state[k]) for k, v in ctx.model.state_dict().items() if k not in weights)
        return prunable and rest

    # What they see goes into the record's method notes: each job runs a fresh instance of its method.
    class CheckedTicket(LotteryTicket):
        name = "checked_ticket"
        def __init__(self, config=None):
            super().__init__(config)
            self.rounds_rewound = []
        def before_round(self, ctx):
            super().before_round(ctx)
            self.rounds_rewound.append(rewound(ctx))
            ctx.note("rounds_rewound", self.rounds_rewound)
        def retrain_epochs(self, ctx):  # called after the runner applied the regime, before retraining
            ctx.note("final_rewound", rewound(ctx))
            init, masks = ctx.initial_weights(), ctx.masks()  # prunable weights are masked: compare the rest
            ctx.note("differs_from_init", any(
                not torch.equal(v, init[k]) for k, v in ctx.model.state_dict().items() if k not in masks))
            return None

    class CheckedScratch(ScratchE):
        name = "checked_scratch"
        def retrain_epochs(self, ctx):
            state, masks = ctx.model.state_dict(), ctx.masks()
            ctx.note("masked", all(bool((w[~masks[k]] == 0).all()) for k, w in ctx.weights().items()))
            ctx.note("fresh", all(not torch.equal(state[k], ctx.initial_weights()[k]) for k in masks))
            ctx.note("kept_nonzero", all(bool((w[masks[k]] != 0).all()) for k, w in ctx.weights().items()))
            return None

    class CheckedCS(ContinuousSparsification):
        name = "checked_cs"
        def retrain_epochs(self, ctx):  # after prune(): the soft masks must be gone
            parametrized = [n for n, m in ctx.model.named_modules() if torch.nn.utils.parametrize.is_parametrized(m)]
            ctx.note("parametrized_after_pruning", parametrized)
            return None
    """
)


def _run(
    tmp_path: Path, cache: Path, methods: str, *, sparsities: str = "[0.9]", extra: str = ""
) -> dict[str, ResultRecord]:
    (tmp_path / "checked.py").write_text(CHECKED)
    head = TINY.split("methods:")[0].replace("[0.5, 0.9]", sparsities)
    text = head + extra + "methods:\n" + textwrap.indent(textwrap.dedent(methods), "  ")
    p = parse_protocol(text, tmp_path / "p.yaml")
    runner = Runner(p, results_dir=tmp_path / "r", cache_dir=cache, device="cpu")
    return {f"{r.method.label}@{r.sparsity.target if r.sparsity else '-'}": r for r in runner.run(plan(p))}


# ---- iterative magnitude pruning ------------------------------------------------------------------


@pytest.mark.parametrize("target", [0.2, 0.36, 0.5, 0.9, 0.98])
def test_imp_rounds_prune_rate_of_the_remaining_until_the_target(target: float) -> None:
    s = round_sparsities(target, rate=0.2)
    assert s[-1] == target and s == sorted(s)
    assert len(s) == math.ceil(round(math.log(1 - target) / math.log(0.8), 9))
    remaining = [1.0] + [1 - x for x in s]
    fractions = [1 - b / a for a, b in itertools.pairwise(remaining)]
    assert fractions[:-1] == pytest.approx([0.2] * (len(s) - 1))
    assert 0 < fractions[-1] <= 0.2 + 1e-12


def test_imp_with_a_fixed_number_of_rounds_prunes_the_same_fraction_each() -> None:
    s = round_sparsities(0.9, rate=0.2, rounds=3)
    assert s[-1] == 0.9 and len(s) == 3
    remaining = [1.0] + [1 - x for x in s]
    per_round = 1 - 0.1 ** (1 / 3)
    assert [1 - b / a for a, b in itertools.pairwise(remaining)] == pytest.approx([per_round] * 3)
    assert round_sparsities(0.5, rate=0.2, rounds=1) == [0.5]


@pytest.mark.slow
def test_lottery_ticket_rewinds_exactly_and_spends_its_rounds(tmp_path: Path, shared_cache: Path):
    got = _run(
        tmp_path,
        shared_cache,
        """\
        - name: checked.py:CheckedTicket
          config: {rounds: 3, round_epochs: 1}
        """,
        extra="budget: {pruning_epochs: 2}\n",
    )
    (r,) = got.values()
    assert r.status == "ok", r.reasons
    assert r.method.notes["rounds_rewound"] == [True, True] and r.method.notes["final_rewound"]
    # Two rounds of training in the pruning stage, one epoch each; then the protocol's retraining.
    assert (r.ledger.pruning.runs, r.ledger.pruning.epochs, r.ledger.retrain.epochs) == (2, 2.0, 1.0)
    measured = [c.sparsity for c in r.curves if c.stage == "pruning"]
    assert measured == pytest.approx(round_sparsities(0.9, rate=0.2, rounds=3)[:2], abs=1e-3)
    assert r.method.notes["round_sparsities"][-1] == 0.9
    assert (
        r.retraining.regime == "weight_rewinding" and r.sparsity and r.sparsity.achieved == pytest.approx(0.9, abs=1e-3)
    )


def test_lottery_ticket_rewinds_to_step_k_when_the_protocol_says_so(tmp_path: Path, shared_cache: Path):
    got = _run(
        tmp_path,
        shared_cache,
        """\
        - name: checked.py:CheckedTicket
          config: {rounds: 2, round_epochs: 1}
        """,
        extra="budget: {pruning_epochs: 1}\n",
    )
    (r,) = got.values()
    assert not r.method.notes["differs_from_init"]  # rewind_epoch 0: the initialization
    text = TINY.replace("pruning: {sparsities: [0.5, 0.9]}", "pruning: {sparsities: [0.9], rewind_epoch: 0.5}")
    text = text.split("methods:")[0] + "budget: {pruning_epochs: 1}\nmethods:\n"
    text += "  - name: checked.py:CheckedTicket\n    config: {rounds: 2, round_epochs: 1}\n"
    p = parse_protocol(text, tmp_path / "k.yaml")
    runner = Runner(p, results_dir=tmp_path / "rk", cache_dir=shared_cache, device="cpu")
    (r,) = runner.run(plan(p))
    assert r.status == "ok", r.reasons
    assert r.method.notes["rounds_rewound"] == [True] and r.method.notes["final_rewound"]
    assert r.method.notes["differs_from_init"]  # the iterate after half an epoch


def test_imp_without_a_budget_for_its_rounds_fails_with_the_reason(tmp_path: Path, shared_cache: Path):
    got = _run(tmp_path, shared_cache, "- name: lottery_ticket\n")
    (r,) = got.values()
    assert r.status == "failed"
    assert "10 rounds of training need a pruning budget of at least 10 epochs" in r.reasons[0]


def test_lr_rewinding_keeps_the_weights_and_trains_rounds_at_base_training_lr(tmp_path: Path, shared_cache: Path):
    got = _run(
        tmp_path,
        shared_cache,
        "- name: lr_rewinding\n  config: {rounds: 2}\n- name: imp_fine_tune\n  config: {rounds: 2}\n",
        extra="budget: {pruning_epochs: 1}\ncomparison: S3.1\n",
    )
    lrr, ft = got["lr_rewinding@0.9"], got["imp_fine_tune@0.9"]
    assert lrr.status == "ok" and ft.status == "ok", (lrr.reasons, ft.reasons)
    # Rounds and retraining of LR rewinding run base training's recipe (lr 0.1); fine-tuning the protocol's 0.05.
    assert {c.lr for c in lrr.curves if c.stage != "base"} == {0.1}
    assert {c.lr for c in ft.curves if c.stage != "base"} == {0.05}
    assert (lrr.retraining.recipe, ft.retraining.recipe) == ("base_tail", "retrain")
    assert lrr.ledger.pruning.epochs == ft.ledger.pruning.epochs == 1.0


# ---- gradual magnitude pruning --------------------------------------------------------------------


def test_cubic_schedule_follows_zhu_and_gupta() -> None:
    at = [scheduled_sparsity(t, target=0.8, initial=0.0, begin=10, end=110, exponent=3) for t in (0, 10, 60, 110, 200)]
    assert at == pytest.approx([0.0, 0.0, 0.8 * (1 - 0.5**3), 0.8, 0.8])
    assert pruning_steps(0, 25, 10) == [10, 20, 25]  # every dt steps and always at the end
    assert pruning_steps(3, 5, 100) == [3, 5]


def test_gradual_magnitude_prunes_while_training_within_its_budget(tmp_path: Path, shared_cache: Path):
    got = _run(
        tmp_path,
        shared_cache,
        "- name: gradual_magnitude\n  config: {frequency_steps: 4}\n",
        extra="budget: {pruning_epochs: 3}\ncomparison: S4.1\n",
    )
    (r,) = got.values()
    assert r.status == "ok", r.reasons
    assert r.ledger.pruning.epochs == 3.0 and r.ledger.pruning.runs == 1
    measured = [c.sparsity for c in r.curves if c.stage == "pruning"]
    assert measured == sorted(measured) and 0.0 < measured[0] < 0.9
    assert measured[-1] == pytest.approx(0.9, abs=0.005)  # reached at 75% of the stage, kept after
    # The engine counted the FLOPs of the sparser model as it shrank.
    assert r.ledger.pruning.train_flops < 3 * r.ledger.pruning.epochs * r.cost.flops_dense * 1294  # type: ignore[union-attr]
    assert r.method.taxonomy["scope"] == "layerwise"


# ---- continuous sparsification --------------------------------------------------------------------


def test_cs_temperature_rises_geometrically_from_1_to_its_final_value() -> None:
    betas = beta_schedule(5, 200.0)
    assert betas[0] == 1.0 and betas[-1] == pytest.approx(200.0)
    assert [b / a for a, b in itertools.pairwise(betas)] == pytest.approx([200**0.25] * 4)


def test_cs_rounds_schedule_and_mask_at_the_target(tmp_path: Path, shared_cache: Path):
    got = _run(
        tmp_path,
        shared_cache,
        """\
        - name: checked.py:CheckedCS
          label: cs
          config: {rounds: 2}
        - name: continuous_sparsification
          label: cs_zero
          config: {rounds: 2, round_epochs: 2, threshold: zero}
        """,
        extra="budget: {pruning_epochs: 6}\n",
    )
    r, zero = got["cs@0.9"], got["cs_zero@0.9"]
    assert r.status == "ok", r.reasons
    # Rounds and temperatures follow the config: 3 epochs each (the budget split), beta 1 -> 200 in each.
    assert (r.ledger.pruning.runs, r.ledger.pruning.epochs) == (2, 6.0)
    assert r.method.notes["beta_per_epoch"] == [pytest.approx([1.0, 200**0.5, 200.0])] * 2
    assert zero.method.notes["beta_per_epoch"] == [pytest.approx([1.0, 200.0])] * 2
    # The soft masks compute with dense weights; the final hard mask hits the target and says how.
    assert all(c.sparsity == 0.0 for c in r.curves if c.stage == "pruning")
    assert r.sparsity and r.sparsity.achieved == pytest.approx(0.9, abs=1e-3)
    assert "thresholded to the target" in r.method.notes["final_mask"]
    # The mask optimizer moved the scores: some fell below zero, so s > 0 alone prunes something.
    natural = zero.method.notes["natural_sparsity"]
    assert 0 < natural < 1 and zero.sparsity and zero.sparsity.achieved == pytest.approx(natural)
    assert zero.retraining.regime == "weight_rewinding"
    # Nothing of the soft masks is left on the model: the plain weights, no mask scores, were retrained.
    assert all(".parametrizations." not in name for name in r.sparsity.per_layer)
    assert r.method.notes["parametrized_after_pruning"] == []


# ---- training from scratch ------------------------------------------------------------------------


def test_scratch_trains_the_pruned_architecture_from_a_fresh_init(tmp_path: Path, shared_cache: Path):
    got = _run(
        tmp_path,
        shared_cache,
        "- name: checked.py:CheckedScratch\n- name: scratch_b\n",
        sparsities="[0.5]",
    )
    notes = got["checked_scratch@0.5"].method.notes
    assert notes["masked"] and notes["fresh"] and notes["kept_nonzero"]
    e, b = got["checked_scratch@0.5"], got["scratch_b@0.5"]
    assert e.status == "ok" and e.ledger.retrain.epochs == 1.0 and e.retraining.regime == "scratch"
    # Scratch-B: dense / pruned FLOPs is over 1 at 50% sparsity; twice the epochs at most, rounded down.
    ratio = b.method.notes["flops_ratio"]
    assert ratio > 1 and b.retraining.epochs == b.ledger.retrain.epochs == min(2, math.floor(ratio))
    assert b.status == "violation" and "S3.2: retrained" in b.reasons[0]


def test_scratch_b_is_legitimate_under_same_flops(tmp_path: Path, shared_cache: Path):
    got = _run(tmp_path, shared_cache, "- name: scratch_b\n", sparsities="[0.5, 0.9]", extra="comparison: SX-B\n")
    for r in got.values():
        assert r.status == "ok", r.reasons
        assert r.ledger.retrain.train_flops <= r.budget.limits["total_train_flops"]  # type: ignore[union-attr]


# ---- the literature's robust ordering, on real data ----------------------------------------------

ORDERING = textwrap.dedent(
    """\
    name: ordering
    data: {name: digits}
    model: {name: small_cnn, args: {width: 0.5}}
    base: {epochs: 6, batch_size: 64, optimizer: {lr: 0.1}, schedule: {name: cosine}}
    pruning: {sparsities: [0.95]}
    retrain: {epochs: 1, batch_size: 64, optimizer: {lr: 0.05}, schedule: {name: cosine}}
    seeds: [0, 1]
    methods:
      - name: global_magnitude
      - name: random
    """
)


@pytest.mark.slow
def test_global_magnitude_beats_random_at_high_sparsity(tmp_path: Path, shared_cache: Path):
    p = parse_protocol(ORDERING)
    records = Runner(p, results_dir=tmp_path, cache_dir=shared_cache, device="cpu").run(plan(p))
    acc: dict[str, list[float]] = {}
    for r in records:
        assert r.status == "ok" and r.metrics is not None
        acc.setdefault(r.method.name, []).append(r.metrics.test_top1)
    # About 0.7 against chance (0.1) in a calibration run over three seeds; every seed must agree.
    assert min(acc["global_magnitude"]) > max(acc["random"]) + 0.2
    assert mean(acc["global_magnitude"]) > 0.4
