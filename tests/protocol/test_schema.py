"""The protocol's JSON Schema: generated from the models, shipped beside the protocols, and every shipped
protocol names it and validates against it (with the jsonschema package); a wrong protocol does not."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from prunebench.protocol.loading import _read_yaml
from prunebench.protocol.schema import protocol_schema, schema_text
from prunebench.testing import MINIMAL

ROOT = Path(__file__).resolve().parents[2]
PROTOCOLS = sorted((ROOT / "protocols").glob("*.yaml"))
HEADER = "# yaml-language-server: $schema=protocol.schema.json"


def validator() -> jsonschema.Draft202012Validator:
    schema = protocol_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_shipped_schema_is_this_versions() -> None:
    assert (ROOT / "protocols" / "protocol.schema.json").read_text(encoding="utf-8") == schema_text()


@pytest.mark.parametrize("path", PROTOCOLS, ids=[p.name for p in PROTOCOLS])
def test_every_shipped_protocol_names_the_schema_and_validates(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == HEADER
    raw, _ = _read_yaml(text, path)  # as prunebench reads it (YAML 1.2 numbers)
    errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator().iter_errors(raw)]
    assert errors == []


def test_the_schema_refuses_what_the_loader_refuses() -> None:
    raw, _ = _read_yaml(MINIMAL, None)
    v = validator()
    assert list(v.iter_errors(raw)) == []
    wrong = {**raw, "retrain": {**raw["retrain"], "epochz": 5}}
    assert any("epochz" in e.message for e in v.iter_errors(wrong))
    typed = {**raw, "retrain": {"epochs": "2"}}
    assert [list(e.path) for e in v.iter_errors(typed)] == [["retrain", "epochs"]]
    ranged = {**raw, "pruning": {"sparsities": [1.5]}}
    assert list(v.iter_errors(ranged))


def test_the_schema_carries_descriptions_defaults_and_choices() -> None:
    schema = protocol_schema()
    retrain = schema["$defs"]["TrainingSpec"]["properties"]
    assert "description" in retrain["epochs"]
    efficiency = schema["$defs"]["EfficiencySpec"]["properties"]
    assert efficiency["batch_sizes"]["default"] == [1, 64]
    comparison = schema["properties"]["comparison"]
    assert comparison["enum"] == ["S1", "S2", "S3.1", "S3.2", "S4.1", "S4.2", "SX-A", "SX-B"]
    assert comparison["default"] == "S3.2"
    assert schema["properties"]["seeds"]["default"] == [0, 1, 2]  # a factory's default, shown too


def test_schema_check_catches_a_stale_copy(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    copy = tmp_path / "protocol.schema.json"
    assert cli("schema", "-o", copy).code == 0
    assert cli("schema", "-o", copy, "--check").code == 0
    copy.write_text(copy.read_text().replace('"epochs"', '"epoch"', 1))
    stale = cli("schema", "-o", copy, "--check")
    assert stale.code == 1 and "is not the schema of this version" in stale.err
