"""Result files on disk: the run directory's layout, the atomic writer, the loader."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from prunebench.errors import ResultsError
from prunebench.results import (
    ResultFileWarning,
    RunDirectory,
    load_or_fail,
    load_records,
    load_result,
    result_files,
    write_atomic,
)
from prunebench.testing import make_protocol, make_record, write_run


def test_the_layout_of_a_run_directory(tmp_path: Path) -> None:
    d = RunDirectory.of(tmp_path, "tiny-0123456789")
    assert d.result_path("snip", None, 0.9, 1) == tmp_path / "tiny-0123456789" / "snip" / "sparsity-0.9_seed-1.json"
    assert d.result_path("snip", "lr-0.1", 0.5, 0).relative_to(d.path) == Path("snip/lr-0.1/sparsity-0.5_seed-0.json")
    assert RunDirectory.job_id("snip", None, 0.95, 2) == "snip/sparsity-0.95_seed-2"
    record_file = d.result_path("snip", "lr-0.1", 0.5, 0)
    assert d.protocol_file in RunDirectory.candidates(record_file)  # the reporter finds protocol.json from a record


def test_write_atomic_writes_text_and_bytes_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "file.json"
    write_atomic(target, '{"a": 1}')
    assert json.loads(target.read_text()) == {"a": 1}
    write_atomic(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert os.listdir(target.parent) == ["file.json"]


def test_write_atomic_keeps_the_old_file_when_the_write_fails(tmp_path: Path) -> None:
    target = tmp_path / "file.json"
    write_atomic(target, "old")
    with pytest.raises(TypeError):
        write_atomic(target, 42)  # type: ignore[arg-type]
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["file.json"]


def test_records_round_trip_where_the_runner_writes_them(tmp_path: Path) -> None:
    proto = make_protocol()
    records = [make_record(proto, "a", 0.9, s, 0.9) for s in range(2)]
    run_dir = write_run(tmp_path, proto, records)
    assert sorted(p.relative_to(run_dir).as_posix() for p in result_files([tmp_path])) == [
        "a/sparsity-0.9_seed-0.json",
        "a/sparsity-0.9_seed-1.json",
    ]
    loaded = load_result(run_dir / "a" / "sparsity-0.9_seed-1.json")
    assert loaded.digest is not None and loaded.model_copy(update={"digest": None}) == records[1]  # save_result adds it
    assert json.loads((run_dir / "protocol.json").read_text())["hash"] == proto.hash
    assert [x.record.seed for x in load_records([tmp_path, run_dir])] == [0, 1]  # overlapping paths count once


def test_load_or_fail_names_what_held_nothing(tmp_path: Path) -> None:
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.warns(ResultFileWarning, match="junk.json: skipped"), pytest.raises(ResultsError, match="no valid"):
        load_or_fail([tmp_path])
    with pytest.raises(ResultsError, match="no such file or directory"):
        load_or_fail([tmp_path / "missing"])
