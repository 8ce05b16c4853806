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
