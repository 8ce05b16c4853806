"""The benchmarks' own logic where it can silently measure the wrong thing."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from prunebench.errors import ProtocolError

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def benchmark(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_modes_runs_the_seeds_it_is_given() -> None:
    # The quickstart has five seeds; the benchmark's --seeds once replaced a line it no longer has, and ran all five.
    modes = benchmark("reference_modes")
    assert modes.variants_protocol("0,1").seeds == [0, 1]
    assert modes.variants_protocol("3").seeds == [3]
    p = modes.variants_protocol("0,1")
    assert [m.label for m in p.methods][:2] == ["snip_eval", "snip_train"] and p.model.name == "small_cnn"
    with pytest.raises(ProtocolError, match="seeds"):
        modes.variants_protocol("zero")
