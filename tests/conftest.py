"""Shared fixtures: a tiny real protocol (UCI digits, a narrow CNN), a shared checkpoint cache, pruning
contexts on a real engine, and an in-process CLI. The helpers themselves live in prunebench.testing."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from prunebench.testing import TINY

# One worker unless a test asks for more: most tests read a run's own output, which several workers send to their
# logs; `--workers auto` (both cores of a 2-core machine) is tested where it is the point (tests/run/test_workers.py).
os.environ.setdefault("PRUNEBENCH_WORKERS", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked needs_confinement assert what only confined jobs get (a rank, a check that passes): where job
    processes run unconfined (Debian's bubblewrap missing, namespaces forbidden), their records are shown apart,
    unranked, and fail check, so these tests skip, saying why."""
    marked = [item for item in items if item.get_closest_marker("needs_confinement")]
    if not marked:
        return
    from prunebench import confine

    why = confine.unavailable()
    if why is not None:
        skip = pytest.mark.skip(reason=f"needs confined job processes (unconfined records are unranked): {why}")
        for item in marked:
            item.add_marker(skip)


if TYPE_CHECKING:
    import torch

    from prunebench.data import DataBundle
    from prunebench.engine import Engine
    from prunebench.methods import PruningContext


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


@pytest.fixture(scope="session")
def digits_data() -> DataBundle:
    """UCI digits as a protocol with default data settings loads it (1x8x8 images, 10 classes)."""
    from prunebench.testing import digits

    return digits()


@pytest.fixture
def make_engine_and_context(digits_data: DataBundle) -> Callable[..., tuple[Engine, PruningContext]]:
    """As make_context, and the engine behind the context (whose ledger a test reads)."""
    from prunebench.testing import engine_for, pruning_context

    def make(
        sparsity: float = 0.5,
        *,
        model: torch.nn.Module | None = None,
        width: float = 0.25,
        seed: int = 0,
        scoring_examples: int = 256,
    ) -> tuple[Engine, PruningContext]:
        engine = engine_for(digits_data, model=model, seed=seed, width=width)
        return engine, pruning_context(engine, sparsity, seed=seed, scoring_examples=scoring_examples)

    return make


@pytest.fixture
def make_context(
    make_engine_and_context: Callable[..., tuple[Engine, PruningContext]],
) -> Callable[..., PruningContext]:
    """make_context(sparsity, model=None, width=0.25, seed=0, scoring_examples=256) -> PruningContext
    on a real Engine over digits: the model is small_cnn (freshly initialized from `seed`) unless one
    is given; every conv/linear weight is prunable, as under a protocol's defaults."""

    def make(sparsity: float = 0.5, **kwargs: Any) -> PruningContext:
        return make_engine_and_context(sparsity, **kwargs)[1]

    return make
