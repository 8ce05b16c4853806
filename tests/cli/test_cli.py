"""The command line end to end: run, dry-run, filters, validate, methods, and bad input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CliResult

from prunebench.errors import printable
from prunebench.protocol import load_protocol, parse_protocol
from prunebench.testing import MINIMAL, TINY, make_record, write_run

Cli = Callable[..., CliResult]


def test_run_then_resume_through_the_cli(cli: Cli, tiny_protocol: Path, tmp_path: Path, shared_cache: Path) -> None:
    first = cli("run", tiny_protocol, "--results", tmp_path / "r", "--cache", shared_cache, "--device", "cpu")
    assert first.code == 0, first.err
    assert "6 job(s) run, 0 already done" in first.out
    assert "global_magnitude/sparsity-0.9_seed-0: test top-1" in first.out
    assert "dense base model" in first.out  # the closing summary table
    again = cli("run", tiny_protocol, "--results", tmp_path / "r", "--cache", shared_cache)
    assert again.code == 0 and "0 job(s) run, 6 already done" in again.out


def test_filters_and_shard(cli: Cli, tiny_protocol: Path, tmp_path: Path, shared_cache: Path) -> None:
    res = cli(
        "run",
        tiny_protocol,
        "--results",
        tmp_path / "r",
        "--cache",
        shared_cache,
        "--methods",
        "random",
        "--sparsities",
        "0.9",
    )
    assert res.code == 0, res.err
    files = [f for f in (tmp_path / "r").rglob("*.json") if f.name != "protocol.json"]
    assert [f.name for f in files] == ["sparsity-0.9_seed-0.json"] and files[0].parent.name == "random"
    res = cli("run", tiny_protocol, "--results", tmp_path / "s", "--cache", shared_cache, "--shard", "1/4", "--dry-run")
    assert res.code == 0
    assert "global_magnitude" in res.out and res.out.count("pending") == 2  # jobs 2 and 6 of 6


def test_dry_run_trains_and_writes_nothing(cli: Cli, tiny_protocol: Path, tmp_path: Path) -> None:
    res = cli("run", tiny_protocol, "--results", tmp_path / "r", "--cache", tmp_path / "c", "--dry-run")
    assert res.code == 0, res.err
    assert res.out.count("pending") == 6
    assert "seed 0 to train" in res.out and "retraining 1 epochs" in res.out
    assert not (tmp_path / "r").exists() and not (tmp_path / "c").exists()


def test_validate_prints_resolved_protocol_and_hash(cli: Cli, tiny_protocol: Path) -> None:
    res = cli("validate", tiny_protocol)
    assert res.code == 0, res.err
    assert f"# content hash: {load_protocol(tiny_protocol).hash}" in res.out
    assert "weight_decay: 0.0001" in res.out and "comparison: S3.2" in res.out
    assert cli("validate", tiny_protocol, "--quiet").out.strip() == load_protocol(tiny_protocol).hash


def test_methods_lists_taxonomy_and_hyperparameters(cli: Cli) -> None:
    res = cli("methods")
    assert res.code == 0
    for text in ("global_magnitude", "layerwise_magnitude", "random", "after_training", "scope='global'"):
        assert text in res.out


BAD = [
    # (replace this, with this, expected fragment of the one-line error)
    ("  - name: random\n", "  - name: random\n  - name: [\n", "YAML syntax error"),
    ("retrain: {epochs: 1", "retrain: {epochz: 1", "unknown field 'epochz' (did you mean 'epochs'?)"),
    ("base: {epochs: 2", "base: {epochs: two", "base.epochs"),
    ("sparsities: [0.5, 0.9]", "sparsities: [0.5, 1.5]", "sparsity 1.5 is not between 0 and 1"),
    ("base: {epochs: 2", "base: {epochs: -2", "base.epochs"),
    ("retrain: {epochs: 1,", "retrain: {epochs: 1, schedule: {name: multistep, milestones: [4]},", "milestone 4"),
    ("  - name: random\n", "  - name: randm\n", "unknown method 'randm' (did you mean 'random'?)"),
    ("{name: small_cnn,", "{name: small_cnm,", "unknown model 'small_cnm'"),
    ("{name: digits}", "{name: digitz}", "unknown dataset 'digitz'"),
    ("{name: digits}", "{name: cifar10, root: /nonexistent/cifar}", "cifar-10-batches-py"),
    ("  - name: random\n", "  - name: random\n    config: {scop: layerwise}\n", "unknown hyperparameter of random"),
    ("  - name: random\n", "  - name: random\n    config: {scope: sideways}\n", "methods[2].config.scope"),
    ("seeds: [0]\n", "seeds: [0]\nruntime: {job_memory: 1}\n", ":8:11: runtime.job_memory: 1 byte would kill every"),
    ("seeds: [0]\n", "seeds: [0]\nruntime: {job_timeout: 0.001}\n", ":8:11: runtime.job_timeout: 0.001 s would kill"),
    # What a method's structure decides from the shapes alone, refused before any training (Method.reach): N:M's
    # first conv sees one channel and stays dense; whole filters cannot remove 0.9 of small_cnn's weights.
    (
        "  - name: random\n",
        "  - name: random\n  - name: nm_magnitude\n",
        "methods[3].name: nm_magnitude prunes 0.4902 of small_cnn's prunable weights at target sparsity 0.5, off by "
        "more than pruning.tolerance 0.005: features.0.0.weight stays dense",
    ),
    (
        "  - name: random\n",
        "  - name: random\n  - name: l1_filter\n",
        "methods[3].name: l1_filter cannot prune small_cnn to sparsity 0.9: whole filters reach at most 0.8956",
    ),
    # Sparse training from scratch: only under a setup of equal totals; a schedule that fits its training; a drop
    # fraction in (0, 1); an allocation whose whole counts reach the target within the tolerance.
    (
        "  - name: random\n",
        "  - name: random\n  - name: rigl\n",
        "methods[3].name: rigl trains a sparse network from scratch (dynamic sparse training), using no dense model; "
        "comparison S3.2 compares methods on one trained dense model",
    ),
    (
        "  - name: random\n",
        "  - name: random\n  - name: set\n    config: {drop_fraction: 1.5}\ncomparison: SX-A\n",
        "methods[3].config.drop_fraction: Input should be less than 1",
    ),
    (
        "  - name: random\n",
        "  - name: random\n  - name: set\ncomparison: SX-A\n",
        "methods[3].name: set cannot prune small_cnn to sparsity 0.5: update_steps 100 is beyond the 27 steps before "
        "end_fraction 0.75 of its training (at most 36 steps)",
    ),
    # Sanity ablations: a name that is none, one named twice, one that applies to no method of the protocol.
    ("seeds: [0]\n", "seeds: [0]\nvariants: {sanity: [layer_shufle]}\n", ":8:21: variants.sanity[0]: Input should be"),
    (
        "seeds: [0]\n",
        "seeds: [0]\nvariants: {sanity: [reinit, reinit]}\n",
        "variants.sanity: each sanity ablation once",
    ),
    (
        "  - name: global_magnitude\n  - name: layerwise_magnitude\n  - name: random\n",
        "  - name: random_shuffled\nvariants: {sanity: [reinit, invert]}\n",
        ":10:29: variants.sanity[1]: invert applies to no method of this protocol (random_shuffled: its masks do not "
        "come from masks_from_scores",
    ),
]


@pytest.mark.parametrize(("old", "new", "fragment"), BAD, ids=[b[2][:30] for b in BAD])
def test_bad_input_is_one_line_exit_2_and_touches_nothing(
    cli: Cli, tmp_path: Path, old: str, new: str, fragment: str
) -> None:
    assert old in TINY
    path = tmp_path / "bad.yaml"
    path.write_text(TINY.replace(old, new))
    results = tmp_path / "results"
    results.mkdir()
    (results / "keep.json").write_text("{}")
    for command in (["run", path, "--results", results, "--cache", tmp_path / "c"], ["validate", path]):
        res = cli(*command)
        assert res.code == 2, res
        lines = res.err.strip().splitlines()
        assert len(lines) == 1, res.err
        assert "Traceback" not in res.err
        assert lines[0].startswith(f"error: {path}:") and fragment in lines[0], lines[0]
    assert [p.name for p in results.iterdir()] == ["keep.json"] and (results / "keep.json").read_text() == "{}"


def test_an_allocation_whose_whole_counts_miss_the_target_is_refused(cli: Cli, tmp_path: Path) -> None:
    # ERK always has an allocation (prunebench.methods.erk_sparsities); its whole counts of small layers can miss.
    path = tmp_path / "erk.yaml"
    text = TINY.replace("[0.5, 0.9]}", "[0.5, 0.9], tolerance: 0.0001}").replace(
        "name: random\n", "name: static_sparse\n"
    )
    path.write_text(text)
    res = cli("validate", path)
    assert res.code == 2 and len(res.err.strip().splitlines()) == 1, res
    assert "methods[2].name: static_sparse prunes 0.4997 of small_cnn's prunable weights at target sparsity 0.5" in (
        res.err
    )


def test_error_names_the_line_of_the_field(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(TINY.replace("{name: digits}", "{name: cifar10, root: /nonexistent/cifar}"))
    res = cli("validate", path)
    assert f"error: {path}:2:" in res.err and "data.root" in res.err


def test_bad_options(cli: Cli, tiny_protocol: Path, tmp_path: Path) -> None:
    res = cli("run", tiny_protocol, "--results", tmp_path / "r", "--methods", "nope")
    assert res.code == 2 and "--methods: 'nope' is not in the protocol" in res.err
    res = cli("run", tiny_protocol, "--results", tmp_path / "r", "--shard", "4/4")
    assert res.code == 2 and "--shard" in res.err
    res = cli("run", tmp_path / "missing.yaml")
    assert res.code == 2 and "no such protocol file" in res.err


HOSTILE = "\x1b[2J\x1b[31mX\x07"  # clear the screen, turn red, ring the bell


@pytest.mark.parametrize("fmt", ["rich", "markdown", "csv"])
def test_what_the_files_say_reaches_the_terminal_printable(cli: Cli, tmp_path: Path, fmt: str) -> None:
    """A record's method name and reasons, its protocol's name and the results folder's name carry escapes and a
    bell (a method label cannot: it names a folder); `compare` (and `ls`) print them escaped, never raw."""
    proto = parse_protocol(MINIMAL, "p.yaml")
    evil_ref = {"name": "tiny" + HOSTILE}
    records = [
        make_record(proto, label, 0.9, s, 0.8 + 0.01 * s, name="magnitude" + HOSTILE).model_copy(
            update={"protocol": make_record(proto, label, 0.9, s, 0.8).protocol.model_copy(update=evil_ref)}
        )
        for label in ("a", "b")
        for s in range(3)
    ]
    records[3] = make_record(proto, "b", 0.9, 0, 0.8, status="violation", reasons=("cheated" + HOSTILE,))
    results = tmp_path / ("results" + HOSTILE)
    write_run(results, proto, records)
    res = cli("compare", results, "--format", fmt)
    assert res.code == 0, res.err
    assert "cheated" in res.out and "\\x1b[2J\\x1b[31mX\\x07" in res.out  # shown, escaped
    listing = cli("ls", results)
    assert listing.code == 0, listing.err
    for text in (res.out, res.err, listing.out, listing.err):
        assert "\x1b" not in text and "\x07" not in text, repr(text)


def test_printable_escapes_controls_and_keeps_unicode() -> None:
    assert printable("a\x1b[2J\x07b") == "a\\x1b[2J\\x07b"
    assert printable("line\r\nover\rwrite\x9b\u202eé 漢 🙂\tz") == "line\r\nover\\x0dwrite\\x9b\\u202eé 漢 🙂\tz"


def test_block_first_beyond_its_convolutions_is_refused_before_any_training(cli: Cli, tmp_path: Path) -> None:
    # CIFAR ResNet-20 on digits' one channel: 270,608 prunable weights, the blocks' first convolutions 122,112 of
    # them; one filter kept in each, whole filters reach 119,520: 0.4417 of the weights.
    text = TINY.replace("{name: small_cnn, args: {width: 0.25}}", "{name: cifar_resnet20}")
    text = text.split("methods:")[0] + "methods:\n  - name: l1_filter\n    config: {layers: block_first}\n"
    path = tmp_path / "p.yaml"
    path.write_text(text)
    res = cli("run", path, "--results", tmp_path / "r", "--cache", tmp_path / "c")
    lines = res.err.strip().splitlines()
    assert res.code == 2 and len(lines) == 1 and "Traceback" not in res.err, res.err
    assert (
        lines[0].startswith(f"error: {path}:")
        and "methods[0].name: l1_filter cannot prune cifar_resnet20 to " in lines[0]
    )
    assert (
        "sparsity 0.5: whole filters reach at most 0.4417 (119,520 of the 270,608 prunable weights" in lines[0]
        and "640 in linear layers (never pruned) and 147,856 in convolutions that `layers: block_first` leaves alone"
        in lines[0]
    )
    assert not (tmp_path / "c").exists() and not (tmp_path / "r").exists()  # nothing trained, nothing written
