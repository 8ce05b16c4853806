"""A record edited by hand after the runner wrote it no longer matches its digest: `status` calls it altered, and
the next run re-runs it with one line naming the file; untouched records are not re-run. A record without the
runner's MAC (one written before records were sealed, or by a job's code) is unverified: re-run once, with one line
naming it (prunebench.run.scheduling.state says why). The committed references still load, compare and check."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from prunebench.results import load_checked, load_result, record_digest

REFERENCES = Path(__file__).parents[2] / "results"


def test_a_record_edited_by_hand_is_re_run(
    tiny_protocol: Path, tmp_path: Path, shared_cache: Path, cli: Callable
) -> None:
    results = tmp_path / "r"
    args = (tiny_protocol, "--results", results, "--cache", shared_cache, "--device", "cpu")
    assert cli("run", *args).code == 0
    files = sorted(results.rglob("sparsity-*.json"))
    assert len(files) == 6 and all(load_checked(f)[1] is True for f in files)
    edited, legacy, untouched = files[0], files[1], files[2:]
    truth = load_result(edited).metrics.test_top1  # type: ignore[union-attr]
    content = json.loads(edited.read_text())
    content["metrics"]["test_top1"] = 0.999
    edited.write_text(json.dumps(content, indent=1))
    old = json.loads(legacy.read_text())
    del old["digest"], old["mac"]  # as a record written before digests
    legacy.write_text(json.dumps(old, indent=1))
    before = {f: f.read_bytes() for f in untouched}

    status = cli("status", *args[:5], "--all")
    assert status.code == 0
    assert "1 altered" in status.out.replace("\n", " ") and "1 unverified" in status.out, status.out

    again = cli("run", *args)
    assert again.code == 0, again.err
    said = [line for line in again.err.splitlines() if "digest does not match" in line]
    assert len(said) == 1 and edited.name in said[0], again.err
    unsealed = [line for line in again.err.splitlines() if "is not sealed" in line]
    assert len(unsealed) == 1 and legacy.name in unsealed[0], again.err
    assert "2 job(s) run, 4 already done" in again.out.replace("\n", " "), again.out
    assert load_result(edited).metrics.test_top1 == truth  # type: ignore[union-attr]
    assert load_checked(edited)[1] is True and load_checked(legacy)[1] is True
    assert "mac" in json.loads(legacy.read_text())  # sealed now: the next run leaves it
    assert {f: f.read_bytes() for f in untouched} == before  # not re-run, not rewritten


def test_the_committed_references_load_without_a_digest() -> None:
    """The classification quickstart's references were written before digests: they load as they are. Those
    written since (the language-model quickstart's) carry one, and it matches."""
    files = sorted(REFERENCES.rglob("sparsity-*.json"))
    legacy = [path for path in files if path.parent.parent.name.startswith("quickstart-")]
    assert legacy and len(legacy) < len(files)
    for path in files:
        record, intact = load_checked(path)
        if path in legacy:
            assert intact is None and "digest" not in json.loads(path.read_text())
            assert "digest" not in json.loads(record.model_dump_json())  # nor does one appear when it is dumped
        else:
            assert intact is True and "digest" in json.loads(path.read_text())


def test_the_digest_is_over_the_content_not_the_layout() -> None:
    content = {"b": [1.5, {"x": "é"}], "a": 1}
    assert record_digest(content) == record_digest({"a": 1, "b": [1.5, {"x": "é"}], "digest": "0" * 64})
    assert record_digest(content) != record_digest({**content, "a": 2})
