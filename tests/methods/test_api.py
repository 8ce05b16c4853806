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
