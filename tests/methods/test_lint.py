"""`prunebench lint-method`: each rule flags what it names, at its line; honest code (every built-in baseline)
passes; the CLI exits 1 on a finding."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from prunebench.methods.lint import lint_path, lint_source

ROOT = Path(__file__).resolve().parents[2]


def rules(source: str) -> list[tuple[int, str]]:
    return [(f.line, f.rule) for f in lint_source(textwrap.dedent(source))]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def prune(self, ctx):\n    ctx._engine.ledger = None\n", [(2, "private-attribute")]),
        ("def f(ctx):\n    return getattr(ctx, '_engine')\n", [(2, "private-attribute")]),
        ("from prunebench.engine import Engine\n", [(1, "prunebench-import")]),
        ("import prunebench.fairness as f\n", [(1, "prunebench-import")]),
        ("from prunebench import run\n", [(1, "prunebench-import")]),
        ("import importlib\nimportlib.import_module('prunebench.results')\n", [(2, "prunebench-import")]),
        ("import torch.nn.functional as F\nF.cross_entropy = None\n", [(2, "monkeypatch")]),
        ("import torch\nsetattr(torch.optim.SGD, 'step', None)\n", [(2, "monkeypatch")]),
        ("import torch\ndel torch.nn.functional.relu\n", [(2, "monkeypatch")]),
        ("import sys\nsys.modules['prunebench.fairness'] = None\n", [(2, "monkeypatch")]),
        ("import sys\nframe = sys._getframe(1)\n", [(2, "frames")]),
        ("import inspect\nx = inspect.currentframe().f_back.f_locals\n", [(2, "frames"), (2, "frames"), (2, "frames")]),
        ("import gc\n", [(1, "frames")]),
        ("from ctypes import c_void_p\n", [(1, "frames")]),
        ("exec('x = 1')\n", [(1, "dynamic-code")]),
        ("import importlib\nname = 'prunebench.' + 'run'\nimportlib.import_module(name)\n", [(3, "dynamic-code")]),
    ],
)
def test_each_rule_flags_what_it_names_at_its_line(source: str, expected: list[tuple[int, str]]) -> None:
    assert rules(source) == expected


def test_what_the_public_api_allows_is_not_flagged() -> None:
    source = """\
        import torch
        import torch.nn.functional as F
        from torch import nn
        from prunebench.methods import Masks, Method, PruningContext, Taxonomy
        from prunebench.errors import MethodError
        from prunebench_baselines.snip import scoring_copy

        class Mine(Method):
            def __init__(self, config=None):
                super().__init__(config)
                self._scores = {}

            def prune(self, ctx):
                self._scores = {k: w.abs() for k, w in ctx.weights().items()}
                torch._assert(True, "torch's own internals are torch's business")
                self.net = nn.Linear(2, 2)
                self.net.weight.data.zero_()
                ctx.model.eval()
                return ctx.masks_from_scores(self._scores, scope="global")
        """
    assert rules(source) == []


def test_every_built_in_baseline_passes() -> None:
    assert lint_path(ROOT / "baselines") == []


def test_the_cheats_that_reach_around_the_api_are_flagged() -> None:
    found = {(Path(f.path).name, f.rule) for f in lint_path(ROOT / "tests" / "methods" / "fixtures" / "cheats")}
    assert ("patch_audit.py", "monkeypatch") in found and ("patch_audit.py", "prunebench-import") in found
    assert ("patch_torch.py", "monkeypatch") in found and ("patch_evaluate.py", "monkeypatch") in found
    assert ("reset_ledger.py", "private-attribute") in found and ("read_test_split.py", "private-attribute") in found


def test_the_command_exits_1_on_a_finding_and_0_without(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.py"
    bad.write_text("def prune(self, ctx):\n    return ctx._engine\n")
    result = cli("lint-method", f"{bad}:Bad")
    assert result.code == 1 and f"{bad}:2:12: private-attribute: `._engine`" in result.out
    assert "1 finding(s) in 1 file(s)" in result.err
    ok = cli("lint-method", "--protocol", ROOT / "protocols" / "quickstart.yaml", ROOT / "baselines")
    assert ok.code == 0 and "no findings in 13 file(s)" in ok.err
    unknown = cli("lint-method", "no_such_method")
    assert unknown.code == 2 and "neither a file, a registered method nor a module" in unknown.err
