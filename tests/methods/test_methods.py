"""The method registry and loading: entry points, package.module:Class, path/to/file.py:Class."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from prunebench.errors import FieldError, MethodError
from prunebench.methods import Method, config_table, instantiate, load_method, registered_methods
from prunebench.protocol import MethodSpec

USER_METHOD = textwrap.dedent(
    """\
    from pydantic import Field
    from prunebench.methods import Method, MethodConfig, Taxonomy

    class Largest(Method):
        name = "largest_first"
        taxonomy = Taxonomy(when="after_training", granularity="unstructured", scope="global",
                            schedule="one_shot", retraining="fine_tune")

        class Config(MethodConfig):
            power: float = Field(1.0, gt=0, description="score = |w| ** power")

        def prune(self, ctx):
            return ctx.masks_from_scores({k: -w.abs() ** self.config.power for k, w in ctx.weights().items()},
                                         scope="global")

    class NotAMethod:
        pass
    """
)


def test_builtins_come_through_the_entry_point_group() -> None:
    found = registered_methods()
    for name in ("global_magnitude", "layerwise_magnitude", "random"):
        assert name in found
        assert found[name].source.startswith("entry point prunebench_baselines.")
        assert found[name].cls.name == name
        assert issubclass(found[name].cls, Method)


def test_load_by_module_path() -> None:
    loaded = load_method("prunebench_baselines.magnitude:GlobalMagnitude")
    assert loaded.cls.name == "global_magnitude"
    assert loaded.source == "module prunebench_baselines.magnitude:GlobalMagnitude"


def test_load_by_file_path_relative_to_protocol_dir(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(USER_METHOD)
    loaded = load_method("mine.py:Largest", base_dir=tmp_path)
    assert loaded.cls.name == "largest_first"
    method, _ = instantiate(MethodSpec(name="mine.py:Largest", config={"power": 2}), 0, base_dir=tmp_path)
    assert method.config.power == 2  # type: ignore[attr-defined]
    assert config_table(loaded.cls) == [("power", "1.0", "score = |w| ** power")]


@pytest.mark.parametrize(
    ("name", "phrase"),
    [
        ("global_magnitud", "did you mean 'global_magnitude'"),
        ("no.such.module:X", "cannot import module no.such.module"),
        ("prunebench_baselines.magnitude:Nope", "has no class Nope"),
        ("missing_file.py:X", "not found"),
    ],
)
def test_load_errors(name: str, phrase: str) -> None:
    with pytest.raises(MethodError, match=phrase):
        load_method(name)


def test_non_method_class_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(USER_METHOD)
    with pytest.raises(MethodError, match=r"not a prunebench\.methods\.Method subclass"):
        load_method(f"{tmp_path / 'mine.py'}:NotAMethod")


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(USER_METHOD)
    with pytest.raises(FieldError) as info:
        instantiate(MethodSpec(name="mine.py:Largest", config={"powr": 2}), 3, base_dir=tmp_path)
    assert info.value.loc == ("methods", 3, "config", "powr")
    assert "unknown hyperparameter of largest_first (known: power)" in info.value.message
    with pytest.raises(FieldError) as info:
        instantiate(MethodSpec(name="mine.py:Largest", config={"power": -1}), 0, base_dir=tmp_path)
    assert info.value.loc == ("methods", 0, "config", "power")
    with pytest.raises(FieldError) as info:
        instantiate(MethodSpec(name="nope"), 2)
    assert info.value.loc == ("methods", 2, "name")
