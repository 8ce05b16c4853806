"""Shared fixtures: a tiny real protocol (UCI digits, a narrow CNN) and an in-process CLI."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

TINY = textwrap.dedent(
    """\
    name: tiny
    data: {name: digits}
    model: {name: small_cnn, args: {width: 0.25}}
    base: {epochs: 2, batch_size: 128, optimizer: {lr: 0.1}}
    pruning: {sparsities: [0.5, 0.9]}
    retrain: {epochs: 1, batch_size: 128, optimizer: {lr: 0.05}}
    seeds: [0]
    methods:
      - name: global_magnitude
      - name: layerwise_magnitude
      - name: random
    """
)


# The smallest valid protocol: its hash is pinned in test_protocol.py.
MINIMAL = textwrap.dedent(
    """\
    name: tiny
    data:
      name: digits
    model:
      name: small_cnn
    base:
      epochs: 3
    pruning:
      sparsities: [0.9, 0.5]
    retrain:
      epochs: 2
    methods:
      - name: global_magnitude
    """
)


@pytest.fixture
def tiny_protocol(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One checkpoint cache for tests that do not test the cache itself: dense models train once."""
    return tmp_path_factory.mktemp("cache")


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    """Run `prunebench ARGS` in this process through the real entry point (main)."""
    from prunebench.cli import main

    def run(*args: str | Path) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["prunebench", *map(str, args)])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


# ---- pruning contexts on a real engine, for method tests ------------------------------------------
from typing import TYPE_CHECKING  # noqa: E402

if TYPE_CHECKING:
    import torch

    from prunebench.data import DataBundle
    from prunebench.methods import PruningContext


@pytest.fixture(scope="session")
def digits_data() -> DataBundle:
    """UCI digits as a protocol with default data settings loads it (1x8x8 images, 10 classes)."""
    from prunebench.data import load_data
    from prunebench.protocol import DataSpec

    return load_data(DataSpec(name="digits"))


@pytest.fixture
def make_context(digits_data: DataBundle) -> Callable[..., PruningContext]:
    """make_context(sparsity, model=None, width=0.25, seed=0, scoring_examples=256) -> PruningContext
    on a real Engine over digits: the model is small_cnn (freshly initialized from `seed`) unless one
    is given; every conv/linear weight is prunable, as under a protocol's defaults."""
    import torch

    from prunebench.masks import MaskSet, prunable_parameters
    from prunebench.methods import PruningContext
    from prunebench.models import build_model, layer_macs
    from prunebench.protocol import ModelSpec, PrunableSpec
    from prunebench.train import Engine

    def make(
        sparsity: float = 0.5,
        *,
        model: torch.nn.Module | None = None,
        width: float = 0.25,
        seed: int = 0,
        scoring_examples: int = 256,
    ) -> PruningContext:
        if model is None:
            torch.manual_seed(seed)
            spec = ModelSpec(name="small_cnn", args={"width": width})
            model = build_model(spec, num_classes=digits_data.num_classes, input_shape=digits_data.input_shape)
        macs = layer_macs(model, digits_data.input_shape)
        params = prunable_parameters(model, PrunableSpec(), macs.keys())
        engine = Engine(
            model,
            digits_data,
            device=torch.device("cpu"),
            masks=MaskSet(params, {name: macs[name.removesuffix(".weight")] for name in params}),
            all_macs=macs,
            seed=seed,
            eval_batch_size=128,
        )
        return PruningContext(
            engine,
            target_sparsity=sparsity,
            generator=torch.Generator().manual_seed(seed),
            scoring_examples=scoring_examples,
        )

    return make
