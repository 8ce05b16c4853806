"""Hostile result files under a results directory: each is skipped with a warning naming it (the first few by
name, the rest counted), the reporter never hangs, never exhausts memory, never shows a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prunebench.testing import make_protocol, standard_records, write_run


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    proto = make_protocol()
    return write_run(tmp_path / "r", proto, standard_records(proto))


def edited(run_dir: Path, change: dict) -> dict:  # type: ignore[type-arg]
    """A good record with the fields at the given paths ("metrics/test_top1") set to hostile values."""
    good = json.loads((run_dir / "a" / "sparsity-0.9_seed-0.json").read_text())
    for where, value in change.items():
        *path, last = where.split("/")
        node = good
        for part in path:
            node = node[part]
        node[last] = value
    return good


@pytest.mark.parametrize(
    "change",
    [
        {"metrics/test_top1": 1e308},
        {"metrics/test_top1": 7.5},
        {"metrics/test_top1": -3},
        {"metrics/test_top1": "0.99"},
        {"metrics/test_top1": True},
        {"cost/params_dense": 10**30},
        {"seed": "0"},
        {"sparsity/per_layer/conv.weight/zeros": 5000},
    ],
    ids=lambda c: next(iter(c.items())).__repr__(),
)
def test_out_of_range_or_mistyped_numbers_are_rejected_at_load(change: dict, run_dir: Path, cli) -> None:  # type: ignore[type-arg, no-untyped-def]
    (run_dir / "a" / "sparsity-0.9_seed-0.json").write_text(json.dumps(edited(run_dir, change)))
    result = cli("compare", run_dir.parent, "--format", "json")
    assert result.code == 0, result.err
    assert "sparsity-0.9_seed-0.json: skipped" in result.err.replace("\n", "")
    rows = json.loads(result.out)["rows"]
    row = next(r for r in rows if r["method"] == "a" and r["sparsity_target"] == 0.9)
    assert row["n_seeds"] == 2 and "Traceback" not in result.err


def test_a_record_nested_100000_deep(run_dir: Path, cli) -> None:  # type: ignore[no-untyped-def]
    deep = edited(run_dir, {})
    deep["analyses"] = {"x": "DEEP"}
    text = json.dumps(deep).replace('"DEEP"', "[" * 100_000 + "]" * 100_000)  # json.dumps could not nest it
    (run_dir / "a" / "sparsity-0.9_seed-0.json").write_text(text)
    result = cli("compare", run_dir.parent, "--format", "json")
    assert result.code == 0 and "nested too deeply" in result.err.replace("\n", "")


@pytest.mark.slow
def test_a_symlink_to_dev_zero_and_a_fifo_are_skipped_unread(run_dir: Path) -> None:
    os.symlink("/dev/zero", run_dir / "a" / "zero.json")
    os.mkfifo(run_dir / "a" / "fifo.json")
    done = subprocess.run(
        [sys.executable, "-m", "prunebench", "compare", str(run_dir.parent), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,  # a read from the FIFO would block for ever
    )
    assert done.returncode == 0, done.stderr[-2000:]
    flat = " ".join(done.stderr.split())
    assert "zero.json: skipped: not a regular file" in flat and "fifo.json: skipped: not a regular file" in flat


def test_a_fifo_named_protocol_json_is_not_read(tmp_path: Path) -> None:
    proto = make_protocol()
    run_dir = write_run(tmp_path / "r", proto, standard_records(proto), protocol_json=False)
    os.mkfifo(run_dir / "protocol.json")
    done = subprocess.run(
        [sys.executable, "-m", "prunebench", "compare", str(tmp_path / "r"), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_five_thousand_empty_files_give_a_handful_of_warning_lines(run_dir: Path, cli) -> None:  # type: ignore[no-untyped-def]
    for i in range(5000):
        (run_dir / f"empty-{i:04d}.json").write_text("")
    result = cli("compare", run_dir.parent, "--format", "json")
    assert result.code == 0
    warnings = [line for line in result.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 6, warnings
    assert "4,995 more files skipped" in warnings[-1]


def test_output_to_a_full_device(run_dir: Path, cli) -> None:  # type: ignore[no-untyped-def]
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    result = cli("compare", run_dir.parent, "--output", "/dev/full", "--format", "markdown")
    assert result.code == 2
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert lines == ["error: cannot write /dev/full (no space left on the device)"], lines
