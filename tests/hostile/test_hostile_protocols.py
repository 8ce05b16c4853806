"""Hostile protocol files: each gets one located `error:` line and exit 2, fast, in bounded memory; no
traceback, nothing written. The files are generated here; none is committed."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from prunebench.testing import MINIMAL

# A protocol whose every section a case can edit (the smallest valid one, with a retraining recipe spelled out).
BASE = MINIMAL.replace("  epochs: 2\n", "  epochs: 2\n  optimizer: {lr: 0.05}\n")


def laughs(levels: int = 9) -> str:
    """The billion laughs: 9 levels of 9 aliases each expand to 9^9 strings."""
    lines = ['lol0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"lol{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n" + BASE


def edit(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


CASES: dict[str, tuple[str, str]] = {
    # name: (protocol text, what the one error line must say)
    "billion laughs": (laughs(), "YAML aliases (*a0) are not allowed"),
    "5,000-deep list": ("name: x\nmodel: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than"),
    "3,000-deep mapping": ("name: x\nmodel: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n", "nested more than"),
    "duplicate key": (BASE + "seeds: [0]\nseeds: [1]\n", "the key 'seeds' appears twice"),
    "infinite lr": (edit("{lr: 0.05}", "{lr: .inf}"), "retrain.optimizer.lr: Input should be a finite number"),
    "infinite weight decay": (edit("{lr: 0.05}", "{lr: 0.05, weight_decay: .inf}"), "finite number"),
    "infinite min_lr": (edit("  epochs: 2\n", "  epochs: 2\n  schedule: {name: cosine, min_lr: .inf}\n"), "finite"),
    "infinite rewind epoch": (
        edit("  sparsities: [0.9, 0.5]\n", "  sparsities: [0.9, 0.5]\n  rewind_epoch: .inf\n"),
        "finite",
    ),
    "infinite pruning epochs": (
        BASE + "budget: {pruning_epochs: .nan}\n",
        "budget.pruning_epochs: Input should be a finite",
    ),
    "epochs 10**18": (edit("  epochs: 2\n", f"  epochs: {10**18}\n"), "less than or equal to 10000"),
    "epochs true": (edit("  epochs: 2\n", "  epochs: true\n"), "retrain.epochs: Input should be a valid integer"),
    "epochs '2'": (edit("  epochs: 2\n", '  epochs: "2"\n'), "retrain.epochs: Input should be a valid integer"),
    "a million sparsities": (
        edit("[0.9, 0.5]", "[" + ", ".join("0.5" for _ in range(10**6)) + "]"),
        "a protocol is at most",
    ),
    "200 sparsities": (
        edit("[0.9, 0.5]", "[" + ", ".join(str(i / 201) for i in range(1, 201)) + "]"),
        "at most 100 items",
    ),
    "20,000 unknown model args": (
        edit(
            "  name: small_cnn\n", "  name: small_cnn\n  args: {" + ", ".join(f"k{i}: 1" for i in range(20_000)) + "}\n"
        ),
        "model.args: Dictionary should have at most 64 items",
    ),
    "unknown model args": (
        edit("  name: small_cnn\n", "  name: small_cnn\n  args: {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7}\n"),
        "and 2 more",
    ),
    "model width 1e12": (edit("  name: small_cnn\n", "  name: small_cnn\n  args: {width: 1.0e+12}\n"), "model.args"),
    "model width 1000": (
        edit("  name: small_cnn\n", "  name: small_cnn\n  args: {width: 1000}\n"),
        "parameters and buffers; at most",
    ),
    "method named ':'": (edit("- name: global_magnitude", '- name: ":"'), "methods[0].name:"),
    "prunable: exclude everything": (
        edit("  sparsities: [0.9, 0.5]\n", '  sparsities: [0.9, 0.5]\n  prunable: {exclude: ["*"]}\n'),
        "pruning.prunable: no weight is left prunable",
    ),
    "rewind beyond base training": (
        edit("  sparsities: [0.9, 0.5]\n", "  sparsities: [0.9, 0.5]\n  rewind_epoch: 4\n"),
        "pruning.rewind_epoch: 4 is beyond the 3 epochs of base training",
    ),
    "test subset of one": (
        edit("  name: digits\n", "  name: digits\n  test_subset: 1\n"),
        "data.test_subset: test_subset 1 is fewer",
    ),
    "top_k 0, -1, 1000": (BASE + "evaluation: {top_k: [0, -1, 1000]}\n", "evaluation.top_k[0]: Input should be 1 or 5"),
    "label ../../../escaped": (
        edit("- name: global_magnitude", "- name: global_magnitude\n    label: ../../../escaped"),
        "methods[0].label",
    ),
    "absolute label": (
        edit("- name: global_magnitude", "- name: global_magnitude\n    label: /tmp/abs"),
        "methods[0].label",
    ),
    "label .": (edit("- name: global_magnitude", '- name: global_magnitude\n    label: "."'), "methods[0].label"),
    "label ..": (edit("- name: global_magnitude", '- name: global_magnitude\n    label: ".."'), "methods[0].label"),
    "label a/b": (edit("- name: global_magnitude", "- name: global_magnitude\n    label: a/b"), "methods[0].label"),
    "label with a newline": (
        edit("- name: global_magnitude", '- name: global_magnitude\n    label: "a\\nb"'),
        "methods[0].label",
    ),
    "label with NUL": (
        edit("- name: global_magnitude", '- name: global_magnitude\n    label: "a\\0b"'),
        "methods[0].label",
    ),
    "300-character label": (
        edit("- name: global_magnitude", f"- name: global_magnitude\n    label: {'x' * 300}"),
        "at most 100",
    ),
}


def assert_one_error_line(result, phrase: str) -> None:  # type: ignore[no-untyped-def]
    assert result.code == 2, (result.code, result.err[-2000:])
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err[-2000:]
    assert "Traceback" not in result.err and len(lines[0]) <= 2100
    assert phrase in " ".join(result.err.split()), result.err[-2000:]


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_a_hostile_protocol_gets_one_located_line(case: str, tmp_path: Path, cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    text, phrase = CASES[case]
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    result = cli("validate", path)
    assert time.perf_counter() - start < 60  # "fast": a bound far from any honest case, never a timing measurement
    assert_one_error_line(result, phrase)
    assert str(path) in result.err  # the file is named (and the line, where the YAML has one)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostile.yaml"]  # nothing written


def test_no_path_the_protocol_can_name_takes_run_outside_results(tmp_path: Path, cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    for case in ("label ../../../escaped", "absolute label", "label ..", "label a/b"):
        (tmp_path / "p.yaml").write_text(CASES[case][0])
        result = cli("run", "p.yaml", "--results", tmp_path / "r", "--cache", tmp_path / "c", "--dry-run")
        assert result.code == 2, result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml"]


def test_a_method_file_without_a_label_is_filed_under_its_registered_name(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "methods").mkdir()
    (tmp_path / "methods" / "mine.py").write_text(
        textwrap.dedent(
            """\
            from prunebench_baselines.magnitude import GlobalMagnitude

            class Mine(GlobalMagnitude):
                name = "my_method"
            """
        )
    )
    text = MINIMAL.replace("- name: global_magnitude", f"- name: {tmp_path / 'methods' / 'mine.py'}:Mine")
    text = text.replace("sparsities: [0.9, 0.5]", "sparsities: [0.5]").replace("epochs: 3", "epochs: 1")
    (tmp_path / "p.yaml").write_text(text + "seeds: [0]\n")
    result = cli("run", tmp_path / "p.yaml", "--results", tmp_path / "r", "--cache", tmp_path / "c")
    assert result.code == 0, result.err
    (run_dir,) = (tmp_path / "r").iterdir()
    assert [p.name for p in sorted(run_dir.iterdir())] == ["my_method", "protocol.json"]
    assert not [p for p in (tmp_path / "methods").rglob("*.json")]  # nothing next to the method file


def test_a_fifo_or_a_directory_is_refused_without_reading_it(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    assert_one_error_line(cli("validate", fifo), "not a regular file")
    assert_one_error_line(cli("validate", tmp_path), "not a regular file")
    assert_one_error_line(cli("validate", tmp_path / "missing.yaml"), "no such protocol file")


def test_a_100_mb_protocol_is_refused_before_it_is_read(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as f:
        f.truncate(100 * 1024 * 1024)  # sparse: no disk, and reading it would take a while
    assert_one_error_line(cli("validate", path), "bytes: a protocol is at most")


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (4 * 1024**3, 4 * 1024**3))


@pytest.mark.slow
@pytest.mark.parametrize("case", ["billion laughs", "5,000-deep list", "a million sparsities", "model width 1e12"])
def test_memory_risky_protocols_under_an_address_space_limit(case: str, tmp_path: Path) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text(CASES[case][0])
    done = subprocess.run(
        [sys.executable, "-m", "prunebench", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_memory,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
