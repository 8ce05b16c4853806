"""What answers at once: `--help`, `--version`, every command's `--help` and every argument error the command line
rejects itself (a missing argument, an unknown option, a bad option value) never import torch (two seconds of a
quickstart's first minute). Each is run in a fresh interpreter, through the real entry point, and `sys.modules` is
read after it; the commands are found in the app itself, so a command added later is covered."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Run in a fresh interpreter: each invocation through prunebench.cli.main, its exit code, output, and whether torch
# was imported by then; the invocations are the app's own commands (walked through click's public API) and a few
# bad option values.
CHILD = r"""
import contextlib, io, json, sys

import typer

from prunebench.cli import app, main

BAD_VALUES = [
    ["run", "p.yaml", "--threads", "many"],
    ["run", "p.yaml", "--limit", "0"],
    ["check", "results", "--floor", "half"],
    ["launch", "slurm", "p.yaml", "--gpus-per-job", "two"],
    ["plot", "efficiency", "results", "--batch-size", "1.5"],
]


def commands(command, path):  # every group and command: its path, and what it says when given nothing
    subcommands = getattr(command, "commands", None)
    if subcommands:
        yield path, "usage"  # a group given no command lists its commands
        for name, sub in subcommands.items():
            yield from commands(sub, [*path, name])
    elif any(p.param_type_name == "argument" and p.required for p in command.params):
        yield path, "missing"
    else:
        yield path, None  # runs: not called here


cases = [("help", ["--help"]), ("version", ["--version"]), ("unknown", ["no-such-command"])]
for path, bare in commands(typer.main.get_command(app), []):
    if path:
        cases.append(("help", [*path, "--help"]))
        cases.append(("unknown", [*path, "--no-such-option"]))
    if bare is not None:
        cases.append((bare, path))
cases += [("bad", argv) for argv in BAD_VALUES]

results = []
for kind, argv in cases:
    sys.argv = ["prunebench", *argv]
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
        except SystemExit as exc:
            code = exc.code
    results.append(
        {"kind": kind, "argv": argv, "code": code, "out": out.getvalue(), "err": err.getvalue(),
         "torch": "torch" in sys.modules}
    )
with open(OUTPUT, "w") as f:
    json.dump(results, f)
"""


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    output = tmp_path_factory.mktemp("startup") / "answers.json"
    script = f"OUTPUT = {str(output)!r}\n" + CHILD
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(output.read_text())


def test_every_help_version_and_argument_error_answers_without_torch(answers: list[dict]) -> None:
    imported = [" ".join(a["argv"]) or "(no arguments)" for a in answers if a["torch"]]
    assert not imported, f"torch was imported by the time `prunebench {imported[0]}` answered"


def test_the_answers_are_the_ones_asked_for(answers: list[dict]) -> None:
    """Not vacuous: every case ran to the answer it stands for (a help page, the version, a usage error)."""
    kinds = {a["kind"] for a in answers}
    assert kinds == {"help", "version", "usage", "unknown", "missing", "bad"}
    helps = [a for a in answers if a["kind"] == "help"]
    assert len(helps) > 20  # the top level, each group and each command
    for a in answers:
        argv = " ".join(a["argv"])
        if a["kind"] == "help":
            assert a["code"] == 0 and "Usage: prunebench" in a["out"], argv
        elif a["kind"] == "version":
            assert a["code"] == 0 and a["out"].startswith("prunebench "), argv
        else:
            assert a["code"] == 2, (argv, a["code"], a["err"][-500:])
    said = {"missing": "Missing argument", "unknown": "No such ", "bad": "Invalid value", "usage": "Commands:"}
    for a in answers:
        if a["kind"] in said:
            assert said[a["kind"]] in a["err"], (" ".join(a["argv"]), a["err"][-500:])


def test_compare_over_the_references_imports_neither_torch_nor_matplotlib() -> None:
    """`compare` reads records and prints tables: torch (two seconds) and matplotlib (a quarter of one) are
    imported only by what needs them (`--plot` draws)."""
    script = (
        "import sys\nfrom prunebench.cli import main\nsys.argv = ['prunebench', 'compare', 'results']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'matplotlib'})\n"
        "print('exit', code, 'imported', heavy, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "quickstart" in done.stdout and "global_magnitude" in done.stdout, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == "exit 0 imported []", done.stderr[-2000:]
