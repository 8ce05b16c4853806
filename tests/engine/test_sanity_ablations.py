"""The sanity ablations' pieces (prunebench.protocol.sanity): the engine's layer shuffle and fresh initialization,
the context's inverted ranking, where each applies, and how a protocol plans them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from prunebench_baselines.magnitude import GlobalMagnitude

from prunebench.data import DataBundle
from prunebench.errors import ProtocolError
from prunebench.masks import shuffle_within_layers
from prunebench.methods import Taxonomy
from prunebench.protocol import load_protocol
from prunebench.protocol.sanity import applicability, not_applicable, unused
from prunebench.run.jobs import grid
from prunebench.run.sandbox.steps import not_from_scores
from prunebench.run.setup import reinitialized, seeded_model
from prunebench.testing import TINY, engine_for, make_protocol, pruning_context

PROTOCOLS = Path(__file__).parents[2] / "protocols"
SANITY = TINY + "variants:\n  sanity: [layer_shuffle, reinit, invert]\n"
MAGNITUDE = Taxonomy(
    when="after_training", granularity="unstructured", scope="global", schedule="one_shot", retraining="fine_tune"
)


def test_layer_shuffle_keeps_each_layers_count_exactly_and_moves_its_positions(digits_data: DataBundle) -> None:
    masks = GlobalMagnitude().prune(pruning_context(engine_for(digits_data), 0.8))
    shuffled = shuffle_within_layers(masks, torch.Generator().manual_seed(7))
    assert list(shuffled) == list(masks)
    for name, keep in masks.items():
        assert shuffled[name].dtype == torch.bool and shuffled[name].shape == keep.shape
        assert int(shuffled[name].sum()) == int(keep.sum())  # the per-layer density, exactly
    big = max(masks, key=lambda n: masks[n].numel())
    moved = int((shuffled[big] & ~masks[big]).sum())
    assert moved > 0.5 * int(masks[big].sum())  # most kept positions move: 80% of the layer is pruned
    again = shuffle_within_layers(masks, torch.Generator().manual_seed(7))
    other = shuffle_within_layers(masks, torch.Generator().manual_seed(8))
    assert all(torch.equal(again[n], shuffled[n]) for n in masks)  # the draw decides: reproducible
    assert not torch.equal(other[big], shuffled[big])


def test_invert_keeps_the_complement_of_a_hand_made_ranking(digits_data: DataBundle) -> None:
    engine = engine_for(digits_data)
    scores = {n: torch.arange(w.numel(), dtype=torch.float32).view_as(w) for n, w in engine.masks.params.items()}
    for scope in ("layerwise", "global"):
        kept = pruning_context(engine, 0.5).masks_from_scores(scores, scope=scope)
        ctx = pruning_context(engine, 0.5, invert=True)  # as in a job of the invert ablation
        inverted = ctx.masks_from_scores(scores, scope=scope)
        total = sum(k.numel() for k in kept.values())
        assert sum(int(k.sum()) for k in inverted.values()) == sum(int(k.sum()) for k in kept.values())
        overlap = sum(int((inverted[n] & kept[n]).sum()) for n in kept)
        assert overlap <= (0 if total % 2 == 0 else 1)  # the other end of the ranking: the complement
        first = next(iter(scores))
        assert bool(inverted[first].flatten()[0]) and not bool(kept[first].flatten()[0])  # the lowest score kept
        assert not_from_scores(ctx, inverted) is None
        altered = {n: k.clone() for n, k in inverted.items()}
        altered[first].flatten()[0] = False
        assert "not what masks_from_scores returned last" in (not_from_scores(ctx, altered) or "")


def test_reinit_draws_another_initialization_and_leaves_the_global_generator(digits_data: DataBundle) -> None:
    proto = make_protocol(SANITY)
    state = torch.get_rng_state()
    fresh = reinitialized(proto, digits_data, 0)
    assert torch.equal(torch.get_rng_state(), state)
    own = seeded_model(proto, digits_data, 0).state_dict()
    again, other_seed = reinitialized(proto, digits_data, 0), reinitialized(proto, digits_data, 1)
    weights = [k for k in own if k.endswith(".weight") and own[k].dim() > 1]
    assert all(torch.equal(fresh[k], again[k]) for k in own)
    assert not any(torch.equal(fresh[k], own[k]) for k in weights)  # not the seed's own initialization
    assert not any(torch.equal(fresh[k], other_seed[k]) for k in weights)


def test_where_each_ablation_applies() -> None:
    def why(ablation: str, scored: bool = True, **changes: str) -> str | None:
        return not_applicable(ablation, MAGNITUDE.model_copy(update=changes), scored=scored)

    assert [why(a) for a in ("layer_shuffle", "reinit", "invert")] == [None, None, None]
    assert "filter structure" in (why("layer_shuffle", granularity="filter") or "")
    assert "n:m structure" in (why("layer_shuffle", granularity="n:m") or "")
    assert why("reinit", granularity="filter") is None
    assert "fresh initialization already" in (why("reinit", retraining="scratch") or "")
    assert why("layer_shuffle", retraining="scratch") is None
    # Rounds or a schedule trained past, then retrained from those weights: they are zeros where it pruned before.
    assert "keep those zeros" in (why("layer_shuffle", schedule="gradual", when="during_training") or "")
    assert "keep those zeros" in (why("layer_shuffle", schedule="iterative", retraining="lr_rewinding") or "")
    assert why("layer_shuffle", schedule="iterative", retraining="weight_rewinding") is None  # rewound: dense again
    assert why("layer_shuffle", schedule="iterative", when="before_training") is None  # SynFlow trains nothing
    assert why("reinit", schedule="gradual", when="during_training") is None
    assert "masks_from_scores" in (why("invert", scored=False) or "")
    for a in ("layer_shuffle", "reinit", "invert"):
        assert "dynamic sparse training" in (why(a, schedule="dynamic", when="before_training") or "")
    table = applicability(["invert", "reinit"], {"a": (MAGNITUDE, False), "b": (MAGNITUDE, False)})
    found = unused(["invert", "reinit"], table)
    assert found is not None and found[0] == 0 and found[1].startswith("invert applies to no method")


def test_a_protocol_plans_each_ablation_for_the_methods_it_applies_to() -> None:
    proto = make_protocol(SANITY)
    assert proto.hash != make_protocol(TINY).hash  # hashed when set; without it TINY keeps its own hash
    plan = proto.variant_plan()
    assert plan.ablations == ["layer_shuffle", "reinit", "invert"]
    v = plan.get("layer_shuffle")
    assert v.kind == "sanity" and v.retrain == proto.retrain and all(v.runs_as[m] == v.name for m in v.methods)
    assert proto.for_variant("reinit") is proto  # the method's job under the protocol itself
    labels = [m.key for m in proto.methods]
    table = {m: {"layer_shuffle": None, "reinit": None, "invert": "not scored"} for m in labels}
    table["random"]["reinit"] = "no"
    jobs = grid(proto, sanity=table)
    cells = len(proto.pruning.sparsities) * len(proto.seeds)
    assert len(jobs) == cells * (3 + 3 + 2)  # the own jobs, layer_shuffle for all, reinit for two, invert for none
    assert not grid(proto, variants=["invert"], sanity=table)
    assert len(grid(proto, variants=["protocol"])) == 3 * cells  # without the table no ablation is planned
    shuffle = next(j for j in jobs if j.variant == "layer_shuffle")
    seen = shuffle.as_method_sees_it()
    assert seen.variant is None and seen.retraining_variant is None and seen.id != shuffle.id
    own = next(j for j in jobs if j.variant is None and j.method_key == shuffle.method_key and j.seed == shuffle.seed)
    assert seen == own and seen.protocol is own.protocol  # the method cannot tell the two apart
    invert = grid(proto, variants=["invert"], sanity={m: {"invert": None} for m in labels})[0]
    assert invert.as_method_sees_it() is invert  # the invert ablation is its context's: it must know


def test_sanity_ablations_of_a_causal_lm_are_refused_in_one_line() -> None:
    with pytest.raises(ProtocolError, match="sanity ablations are for classification protocols with retraining"):
        load_protocol(PROTOCOLS / "lm_quickstart.yaml", ["variants.sanity=[layer_shuffle]"])
