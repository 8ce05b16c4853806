"""A method that floods the runner (tests/methods/fixtures/cheats/flood_output.py): 30 MiB to each of stdout and
stderr, through print and through os.write on fd 1 and 2, and a 15 MB note. The runner's output and the record
stay within their bounds, and each says what was cut; a quiet job adds nothing to the runner's output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from prunebench.results import load_result
from prunebench.run.job.notes import NOTES_LIMIT, cap_notes
from prunebench.run.sandbox.output import OUTPUT_LIMIT

CHEATS = Path(__file__).parents[1] / "methods" / "fixtures" / "cheats"
PROTOCOL = textwrap.dedent(
    f"""\
    name: flood
    data: {{name: digits}}
    model: {{name: small_cnn, args: {{width: 0.25}}}}
    base: {{epochs: 1, batch_size: 128, optimizer: {{lr: 0.1}}}}
    pruning: {{sparsities: [0.5]}}
    retrain: {{epochs: 1, batch_size: 128, optimizer: {{lr: 0.05}}}}
    seeds: [0]
    runtime: {{job_timeout: 120}}
    methods:
      - {{name: '{CHEATS / "flood_output.py"}:Cheat', label: flood}}
    """
)


@pytest.mark.slow
def test_a_flooding_method_is_cut_to_bounds_in_the_output_and_the_record(tmp_path: Path) -> None:
    protocol = tmp_path / "flood.yaml"
    protocol.write_text(PROTOCOL)
    command = [sys.executable, "-m", "prunebench.cli", "run", str(protocol), "--results", str(tmp_path / "r")]
    done = subprocess.run(
        [*command, "--cache", str(tmp_path / "cache"), "--device", "cpu"],
        capture_output=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    out, err = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    assert done.returncode == 0, err[-3000:]
    # Each stream: at most its limit of the job's output, the runner's own lines, and the line saying what was cut.
    for name, text, raw in (("stdout", out, done.stdout), ("stderr", err, done.stderr)):
        assert len(raw) < OUTPUT_LIMIT + 64 * 1024, f"{len(raw):,} bytes on the runner's {name}"
        assert f"bytes of the job's {name} not shown]" in text, text[-2000:]
        said = text.split(f" bytes of the job's {name} not shown]")[0].rsplit("[prunebench: ", 1)[1]
        cut = int(said.replace(",", ""))
        assert cut == 30 * 2**20 - OUTPUT_LIMIT  # exactly what was not shown: nothing lost, nothing shown twice
    assert "flood" in out  # the runner's own progress is still there
    (path,) = (tmp_path / "r").rglob("sparsity-*.json")
    assert path.stat().st_size < 2**20
    record = load_result(path)
    assert record.status == "ok", record.reasons
    assert record.method.notes["small"] == 1  # the notes after a cut one still fit
    assert record.method.notes["flood"] == "[prunebench: cut, 15,000,002 bytes of JSON]"
    assert record.method.notes_cut is not None and "'flood'" in record.method.notes_cut


def test_a_quiet_job_adds_nothing_to_the_output(
    tiny_protocol: Path, tmp_path: Path, shared_cache: Path, cli: Callable
) -> None:
    result = cli("run", tiny_protocol, "--results", tmp_path / "r", "--cache", shared_cache, "--device", "cpu")
    assert result.code == 0, result.err
    assert "[prunebench:" not in result.out + result.err
    for path in (tmp_path / "r").rglob("sparsity-*.json"):
        assert "notes_cut" not in json.loads(path.read_text())["method"]


def test_notes_within_the_bound_are_kept_as_they_are() -> None:
    notes = {"a": 1, "b": "x" * 100, "c": [1.5, None]}
    assert cap_notes(notes) == (notes, None)
    kept, cut = cap_notes({"big": "x" * NOTES_LIMIT, **notes, "k" * 300: "y" * NOTES_LIMIT})
    assert kept["big"].startswith("[prunebench: cut") and kept["a"] == 1 and "k" * 300 not in kept
    assert cut is not None and "'big'" in cut and "dropped" in cut
    assert len(json.dumps(kept, separators=(",", ":"))) <= NOTES_LIMIT
