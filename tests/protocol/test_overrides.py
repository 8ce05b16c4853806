"""Command-line overrides (Hydra's dotted grammar, parsed by OmegaConf): set before validation, part of the
protocol and its hash, and an error in one names the override."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prunebench.errors import ProtocolError
from prunebench.protocol import parse_protocol
from prunebench.testing import MINIMAL, TINY


def test_overrides_set_fields_of_every_kind() -> None:
    base = parse_protocol(MINIMAL, "p.yaml")
    given = ["retrain.epochs=5", "pruning.sparsities=[0.5,0.7]", "methods.0.label=gm", "model.args={width: 0.5}"]
    p = parse_protocol(MINIMAL, "p.yaml", given)
    assert p.retrain.epochs == 5 and p.pruning.sparsities == [0.5, 0.7]
    assert p.methods[0].key == "gm" and p.model.args == {"width": 0.5}
    assert p.hash != base.hash  # an overridden run never mixes with the file's
    assert p.overrides == given
    same = parse_protocol(MINIMAL.replace("epochs: 2", "epochs: 5"), "p.yaml", [])
    assert parse_protocol(MINIMAL, "p.yaml", ["retrain.epochs=5"]).hash == same.hash  # the content is the identity


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("retrain.epochz=5", "command line: retrain.epochz=5: unknown field 'epochz' (did you mean 'epochs'?)"),
        ("retrain.epochs=abc", "command line: retrain.epochs=abc: Input should be a valid integer (got 'abc')"),
        ("pruning.sparsities=[1.5]", "command line: pruning.sparsities=[1.5]: sparsity 1.5 is not between 0 and 1"),
        ("methods.3.name=random", "command line: methods.3.name=random: cannot be set (list index out of range)"),
        ("retrain", "command line: retrain: an override is FIELD=VALUE (e.g. retrain.epochs=5)"),
        ("seeds=[0,", "command line: seeds=[0,: the value cannot be parsed ("),
    ],
)
def test_a_bad_override_is_named_in_one_line(override: str, message: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_protocol(MINIMAL, "p.yaml", [override])
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_an_error_the_override_did_not_cause_still_names_the_file() -> None:
    with pytest.raises(ProtocolError, match=r"^p\.yaml:\d+:\d+: retrain\.epochs: "):
        parse_protocol(MINIMAL.replace("epochs: 2", "epochs: -1"), "p.yaml", ["base.epochs=4"])


@pytest.mark.slow
def test_a_run_records_its_overrides(cli, tmp_path: Path, shared_cache: Path) -> None:  # type: ignore[no-untyped-def]
    protocol = tmp_path / "tiny.yaml"
    protocol.write_text(TINY)
    results = tmp_path / "r"
    overrides = ["retrain.epochs=2", "pruning.sparsities=[0.5]"]
    args = ["--results", results, "--cache", shared_cache, "--device", "cpu", "--methods", "global_magnitude"]
    dry = cli("run", protocol, *overrides, *args, "--dry-run")
    expected = parse_protocol(TINY, protocol, overrides)
    assert dry.code == 0 and f"hash {expected.hash[:10]}" in dry.out and "retraining 2 epochs" in dry.out
    assert "│ 0.5 " in dry.out and "│ 0.9 " not in dry.out
    done = cli("run", protocol, *overrides, *args, "--workers", "2")  # the workers load the same overrides
    assert done.code == 0, done.err
    (run_dir,) = results.iterdir()
    assert run_dir.name == expected.run_name != parse_protocol(TINY, protocol).run_name
    assert json.loads((run_dir / "protocol.json").read_text())["overrides"] == overrides
    (record_file,) = run_dir.rglob("sparsity-*.json")
    record = json.loads(record_file.read_text())
    assert record["provenance"]["overrides"] == overrides and record["retraining"]["epochs"] == 2
    bad = cli("validate", protocol, "retrain.epochz=5")
    assert bad.code == 2
    assert bad.err.strip() == "error: command line: retrain.epochz=5: unknown field 'epochz' (did you mean 'epochs'?)"
