"""The method contract: configs typed by the generic parameter, hooks scoped to the stages a method asks
for, and a fresh instance for every job."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field

from prunebench.methods import Method, MethodConfig, Taxonomy
from prunebench.protocol import parse_protocol
from prunebench.run import Runner, plan
from prunebench.testing import TINY


class PowerConfig(MethodConfig):
    power: float = Field(2.0, gt=0)


class Power(Method[PowerConfig]):
    name = "power"
    taxonomy = Taxonomy(
        when="after_training", granularity="unstructured", scope="global", schedule="one_shot", retraining="fine_tune"
    )


def test_the_generic_parameter_is_the_config() -> None:
    assert Power.Config is PowerConfig
    assert Power().config.power == 2.0 and Power(PowerConfig(power=3)).config.power == 3


class ScopedConfig(MethodConfig):
    scope: Literal["global", "layerwise"] = "layerwise"


class Scoped(Method[ScopedConfig]):
    name = "scoped"
    taxonomy = Taxonomy(
        when="after_training", granularity="unstructured", scope="global", schedule="one_shot", retraining="fine_tune"
    )
    taxonomy_from_config = {"scope": "scope"}


def test_a_taxonomy_declared_to_follow_the_config_does() -> None:
    assert Scoped().taxonomy.scope == "layerwise" and Scoped(ScopedConfig(scope="global")).taxonomy.scope == "global"
    assert Scoped.taxonomy.scope == "global"  # the class keeps its default
    assert Scoped().taxonomy.model_dump() == {**Scoped.taxonomy.model_dump(), "scope": "layerwise"}
    with pytest.raises(TypeError, match="taxonomy_from_config maps 'scope' to 'range'"):

        class Misspelled(Scoped):
            taxonomy_from_config = {"scope": "range"}


HOOKED = textwrap.dedent(
    """\
    from prunebench.methods import Method, Taxonomy

    TAX = Taxonomy(when="after_training", granularity="unstructured", scope="global",
                   schedule="one_shot", retraining="fine_tune")

    class Counting(Method):
        '''Counts its hook calls per stage, and how many jobs this instance has seen.'''
        name = "counting"
        taxonomy = TAX
        def __init__(self, config=None):
            super().__init__(config)
            self.steps, self.jobs = {}, 0
        def prune(self, ctx):
            self.jobs += 1
            ctx.note("jobs_seen_by_this_instance", self.jobs)
            ctx.train(1)
            ctx.note("steps_while_pruning", dict(self.steps))
            return ctx.masks_from_scores({k: w.abs() for k, w in ctx.weights().items()}, scope="global")
        def on_step_end(self, ctx):
            self.steps[ctx.stage] = self.steps.get(ctx.stage, 0) + 1
        def retrain_epochs(self, ctx):
            return None

    class PruningOnly(Counting):
        name = "pruning_only"
        hook_stages = ("pruning",)
        def on_epoch_end(self, ctx):
            assert ctx.stage == "pruning", "called in a stage it did not ask for"
    """
)


def test_hooks_run_only_in_the_stages_a_method_asks_for_and_each_job_gets_a_fresh_method(
    tmp_path: Path, shared_cache: Path
) -> None:
    (tmp_path / "hooked.py").write_text(HOOKED)
    text = TINY.split("methods:")[0] + "budget: {pruning_epochs: 1}\nmethods:\n"
    text += "  - name: hooked.py:Counting\n  - name: hooked.py:PruningOnly\n"
    p = parse_protocol(text, tmp_path / "p.yaml")
    records = Runner(p, results_dir=tmp_path / "r", cache_dir=shared_cache, device="cpu").run(plan(p))
    assert len(records) == 4 and all(r.status == "ok" for r in records), [r.reasons for r in records]
    assert all(r.method.notes["jobs_seen_by_this_instance"] == 1 for r in records)  # a fresh instance each job
    steps = records[0].ledger.pruning.steps
    assert all(r.method.notes["steps_while_pruning"] == {"pruning": steps} for r in records)


REACHING = textwrap.dedent(
    """\
    from prunebench.methods import Method, Reach, Taxonomy

    class Halving(Method):
        '''Says it prunes half the weights whatever the target; refuses 0.9 outright.'''
        name = "halving"
        taxonomy = Taxonomy(when="after_training", granularity="unstructured", scope="global",
                            schedule="one_shot", retraining="fine_tune")
        def reach(self, shapes, target):
            assert all(isinstance(s, tuple) for s in shapes.values()) and target.kind == "sparsity"
            if target.value == 0.9:
                raise ValueError("halves, and only halves")
            return Reach(0.5, why="it halves")
        def prune(self, ctx):
            raise AssertionError("never reached: the protocol is refused before any training")

    class Silent(Halving):
        name = "silent"
        def reach(self, shapes, target):
            return None

    class Confused(Halving):
        name = "confused"
        def reach(self, shapes, target):
            return 0.5

    class Wordy(Halving):
        name = "wordy"
        def reach(self, shapes, target):
            return Reach("half")
    """
)


@pytest.mark.parametrize(
    ("method", "sparsities", "message"),
    [
        ("Halving", "[0.5, 0.9]", "methods[0].name: halving cannot prune small_cnn to sparsity 0.9: halves, and only"),
        (
            "Halving",
            "[0.3]",
            "methods[0].name: halving prunes 0.5000 of small_cnn's prunable weights at target sparsity 0.3, off by "
            "more than pruning.tolerance 0.005: it halves",
        ),
        ("Confused", "[0.3]", "methods[0].name: confused.reach returned 0.5, not a Reach with a sparsity in [0, 1]"),
        (
            "Wordy",
            "[0.3]",
            "wordy.reach returned Reach(sparsity='half', why=''), not a Reach with a sparsity in [0, 1]",
        ),
        ("Silent", "[0.3]", None),
    ],
)
def test_what_a_method_says_it_will_reach_is_judged_before_any_training(
    tmp_path: Path,
    cli,
    method: str,
    sparsities: str,
    message: str | None,  # type: ignore[no-untyped-def]
) -> None:
    (tmp_path / "reaching.py").write_text(REACHING)
    text = TINY.split("methods:")[0].replace("[0.5, 0.9]", sparsities) + f"methods:\n  - name: reaching.py:{method}\n"
    (tmp_path / "p.yaml").write_text(text)
    protocol = tmp_path / "p.yaml"
    for args in (["validate", protocol], ["run", protocol, "--results", tmp_path / "r", "--cache", tmp_path / "c"]):
        done = cli(*args, *(["--dry-run"] if message is None and args[0] == "run" else []))
        if message is None:
            assert done.code == 0, done.err
            continue
        lines = [line for line in done.err.splitlines() if line.strip()]
        assert done.code == 2 and len(lines) == 1 and "Traceback" not in done.err, done.err
        assert lines[0].startswith(f"error: {protocol}:") and message in " ".join(lines[0].split())
    assert not (tmp_path / "c").exists() and not (tmp_path / "r").exists()
