"""Protocol schema: strictness, located errors, defaults, the content hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from prunebench.errors import FieldError, ProtocolError
from prunebench.protocol import load_protocol, parse_protocol, resolved_yaml
from prunebench.testing import MINIMAL

ROOT = Path(__file__).resolve().parents[2]


def error_of(text: str) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse_protocol(text, "p.yaml")
    return info.value


def test_minimal_protocol_fills_defaults_and_sorts_sparsities() -> None:
    p = parse_protocol(MINIMAL, "p.yaml")
    assert p.pruning.sparsities == [0.5, 0.9]
    assert p.comparison == "S3.2"
    assert p.seeds == [0, 1, 2]
    assert p.pruning.prunable.layer_types == ["conv", "linear"]
    assert p.retrain.optimizer.name == "sgd"
    assert "weight_decay: 0.0001" in resolved_yaml(p)


def test_hash_is_pinned() -> None:
    # A change here changes the identity of every existing protocol: make it on purpose only.
    assert parse_protocol(MINIMAL).hash == "e678d877e1407d1cd7a173a6a5ca0bba57e18d43821efa8e7b5a76df5c070695"


def test_hash_ignores_paths_and_description_but_not_training() -> None:
    base = parse_protocol(MINIMAL).hash
    moved = parse_protocol(MINIMAL.replace("name: digits", "name: digits\n  root: /elsewhere\n  num_workers: 4"))
    assert moved.hash == base
    described = parse_protocol("description: anything\n" + MINIMAL)
    assert described.hash == base
    assert parse_protocol(MINIMAL.replace("epochs: 2", "epochs: 3")).hash != base
    # Key order in the file does not matter.
    reordered = MINIMAL.replace("name: tiny\n", "") + "name: tiny\n"
    assert parse_protocol(reordered).hash == base


def test_yaml_syntax_error_names_line() -> None:
    e = error_of(MINIMAL.replace("  sparsities: [0.9, 0.5]", "  sparsities: [0.9, 0.5"))
    assert e.file == "p.yaml" and e.line is not None
    assert "YAML syntax error" in str(e)


def test_misspelled_key_names_line_field_and_suggestion() -> None:
    e = error_of(MINIMAL.replace("  epochs: 2", "  epochz: 2"))
    assert e.line == 11
    assert e.field == "retrain.epochz"
    assert "did you mean 'epochs'" in str(e)
    assert str(e).startswith("p.yaml:11:3: retrain.epochz:")


def test_wrong_type_names_the_field() -> None:
    e = error_of(MINIMAL.replace("epochs: 3", "epochs: three"))
    assert e.field == "base.epochs" and e.line == 7
    assert "three" in str(e)


@pytest.mark.parametrize(
    ("change", "field", "phrase"),
    [
        (("[0.9, 0.5]", "[0.9, 1.5]"), "pruning.sparsities", "not between 0 and 1"),
        (("epochs: 3", "epochs: -1"), "base.epochs", "greater than or equal to 0"),
        (("[0.9, 0.5]", "[0.5, 0.5]"), "pruning.sparsities", "repeat"),
        (
            ("epochs: 2", "epochs: 2\n  schedule: {name: multistep, milestones: [5]}"),
            "retrain",
            "milestone 5 is not before",
        ),
        (("name: tiny", "name: tiny\ncomparison: S5"), "comparison", "S3.2"),
        (("name: tiny", "name: tiny\nseeds: [1, 1]"), "", "seeds must be"),
    ],
)
def test_impossible_values(change: tuple[str, str], field: str, phrase: str) -> None:
    e = error_of(MINIMAL.replace(*change))
    assert phrase in str(e)
    assert e.line is not None
    if field:
        assert e.field == field


@pytest.mark.parametrize(
    ("runtime", "refused"),
    [
        ("{job_memory: 1}", "1 byte would kill every job"),
        ("{job_memory: 255MiB}", "255 MiB would kill every job"),
        ("{job_memory: 0}", "0 bytes would kill every job"),
        ("{job_timeout: 0.001}", "0.001 s would kill every job"),
        ("{job_timeout: 4.9s}", "4.9 s would kill every job"),
        ("{job_memory: 256MiB, job_timeout: 5s}", None),  # the floors themselves
        ("{job_memory: 1.5GiB, job_timeout: 10}", None),  # what the hostile tests run under
    ],
)
def test_runtime_limits_that_would_kill_every_job_are_refused(runtime: str, refused: str | None) -> None:
    text = MINIMAL.replace("name: tiny", f"name: tiny\nruntime: {runtime}")
    if refused is None:
        limits = parse_protocol(text, "p.yaml").runtime
        assert limits.job_memory is not None and limits.job_memory >= 256 * 2**20 and limits.job_timeout is not None
        return
    e = error_of(text)
    assert e.field.startswith("runtime.job_") and e.line == 2 and refused in str(e) and "at least" in str(e)


def test_missing_required_section() -> None:
    e = error_of(MINIMAL.replace("model:\n  name: small_cnn\n", ""))
    assert e.field == "model" and "required" in str(e)


def test_not_a_mapping() -> None:
    assert "YAML mapping" in str(error_of("- just\n- a list\n"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError, match="no such protocol file"):
        load_protocol(tmp_path / "nope.yaml")


def test_locate_field_error_points_at_the_field() -> None:
    p = parse_protocol(MINIMAL.replace("name: digits", "name: digits\n  root: ${NOPE_UNSET_VAR}"), "p.yaml")
    with pytest.raises(FieldError) as info:
        p.data.resolved_root()
    located = p.locate(info.value)
    assert (located.line, located.field) == (4, "data.root")
    assert "NOPE_UNSET_VAR is not set" in str(located)


def test_env_var_default_and_value(monkeypatch: pytest.MonkeyPatch) -> None:
    p = parse_protocol(MINIMAL.replace("name: digits", "name: digits\n  root: ${PB_ROOT:-/fallback}"))
    assert p.data.resolved_root() == Path("/fallback")
    monkeypatch.setenv("PB_ROOT", "/real")
    assert p.data.resolved_root() == Path("/real")


def test_duplicate_method_labels_rejected() -> None:
    e = error_of(MINIMAL + "  - name: global_magnitude\n")
    assert "appears twice" in str(e)


@pytest.mark.parametrize("path", sorted((ROOT / "protocols").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_protocols_load(path: Path) -> None:
    p = load_protocol(path)
    assert p.name == path.stem
