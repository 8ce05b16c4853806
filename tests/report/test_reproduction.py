"""`prunebench check --published`: constructed results of the shipped protocols against their published figures
(reproduced, exit 0; five points off, exit 1; one seed, not testable; a point value; another recipe, exit 2), and
a malformed published file as one line with its file, line and column, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from prunebench.protocol import Protocol, load_protocol
from prunebench.report.published import load_published
from prunebench.report.reproduction import run_reproduction
from prunebench.testing import make_record, run_cli, write_run

ROOT = Path(__file__).resolve().parents[2]
SYNFLOW = ROOT / "protocols" / "published" / "synflow_vgg16bn_cifar100.csv"
RENDA = ROOT / "protocols" / "published" / "renda_resnet56_cifar10.csv"
LLAMA = ROOT / "protocols" / "published" / "llama2_7b_wikitext2.csv"


def protocol(name: str) -> Protocol:
    return load_protocol(ROOT / "protocols" / f"{name}.yaml")


def run_of(tmp_path: Path, proto: Protocol, label: str, sparsity: float, values: list[float], **kw: object) -> Path:
    root = tmp_path / "runs"
    records = [make_record(proto, label, sparsity, s, v, **kw) for s, v in enumerate(values)]  # type: ignore[arg-type]
    write_run(root, proto, records)
    return root


def around(mean: float, std: float) -> list[float]:
    """Three values with this mean and sample standard deviation (n - 1)."""
    return [mean - std, mean, mean + std]


def test_a_run_at_the_published_figures_is_reproduced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # SynFlow at compression 10 (sparsity 0.9): the run's three seeds center on the paper's mean.
    row = next(r for r in load_published(SYNFLOW).rows if r.method == "synflow" and r.sparsity == 0.9)
    runs = run_of(tmp_path, protocol("synflow_vgg16bn_cifar100"), "synflow", 0.9, around(row.value / 100, 0.004))
    rep = run_reproduction([runs], SYNFLOW)
    (item,) = [i for i in rep.items if i.verdict != "not run"]
    assert item.verdict == "reproduced" and item.test is not None
    assert item.test.delta == pytest.approx(0.0, abs=1e-12) and item.p_holm == pytest.approx(1.0)
    # With 0.4 pp of spread on 3 seeds against the paper's 3 runs, it could tell apart only about 1.5 pp or more.
    assert item.detectable is not None and 0.01 < item.detectable < 0.03
    assert rep.exit_code == 0
    code, out, _ = run_cli(capsys, "check", str(runs), "--published", str(SYNFLOW), "--markdown", str(tmp_path / "m"))
    assert code == 0 and "REPRODUCED: 1 of 60 published row(s) have results" in out
    assert "| synflow | 0.9 |" in (tmp_path / "m").read_text()


def test_five_points_below_is_not_reproduced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [r for r in load_published(RENDA).rows if r.method == "lr_rewinding"][:2]
    proto = protocol("renda_resnet56_cifar10")
    root = tmp_path / "runs"
    records = [
        make_record(proto, "lr_rewinding", rows[0].sparsity, s, v) for s, v in enumerate(around(rows[0].value, 0.002))
    ]
    records += [
        make_record(proto, "lr_rewinding", rows[1].sparsity, s, v - 0.05)
        for s, v in enumerate(around(rows[1].value, 0.002))
    ]
    write_run(root, proto, records)
    rep = run_reproduction([root], RENDA)
    verdicts = {i.published.sparsity: i.verdict for i in rep.items if i.verdict != "not run"}
    assert verdicts == {rows[0].sparsity: "reproduced", rows[1].sparsity: "not reproduced"}
    off = next(i for i in rep.items if i.verdict == "not reproduced")
    assert off.test is not None and off.test.delta == pytest.approx(-0.05)
    assert off.p_holm is not None and off.p_holm < 0.05
    code, out, _ = run_cli(capsys, "check", str(root), "--published", str(RENDA))
    assert code == 1 and "NOT SHOWN TO REPRODUCE" in out and "NOT REPRODUCED" in out


def test_one_seed_is_not_testable_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    row = load_published(RENDA).rows[0]
    runs = run_of(tmp_path, protocol("renda_resnet56_cifar10"), row.method, row.sparsity, [row.value])
    (item,) = [i for i in run_reproduction([runs], RENDA).items if i.verdict != "not run"]
    assert item.verdict == "not testable" and item.test is None
    assert item.reasons == ["1 seed: the run's own spread needs 2 seeds or more"]
    code, out, _ = run_cli(capsys, "check", str(runs), "--published", str(RENDA))
    assert code == 1 and "1 not testable" in out


def test_a_point_value_is_tested_against_the_runs_own_spread(tmp_path: Path) -> None:
    proto = protocol("llama2_7b_wikitext2")
    near = run_of(tmp_path / "near", proto, "wanda", 0.5, [0.4, 0.41, 0.42], perplexity=6.42)
    (item,) = [i for i in run_reproduction([near], LLAMA).items if i.verdict != "not run"]
    assert item.verdict == "not testable"  # three seeds of one perplexity: no spread on either side
    spread = [6.40, 6.44, 6.45]
    root = tmp_path / "spread"
    write_run(root, proto, [make_record(proto, "wanda", 0.5, s, 0.4, perplexity=p) for s, p in enumerate(spread)])
    (item,) = [i for i in run_reproduction([root], LLAMA).items if i.verdict != "not run"]
    assert item.test is not None and item.test.df == pytest.approx(2.0)  # the run's own degrees of freedom only
    assert item.verdict == "reproduced"
    far = tmp_path / "far"
    write_run(far, proto, [make_record(proto, "wanda", 0.5, s, 0.4, perplexity=p + 1) for s, p in enumerate(spread)])
    (item,) = [i for i in run_reproduction([far], LLAMA).items if i.verdict != "not run"]
    assert item.verdict == "not reproduced"


def test_another_recipe_is_unusable_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proto = load_protocol(ROOT / "protocols" / "renda_resnet56_cifar10.yaml", ["retrain.epochs=80"])
    row = load_published(RENDA).rows[0]
    runs = run_of(tmp_path, proto, row.method, row.sparsity, around(row.value, 0.002))
    code, _, err = run_cli(capsys, "check", str(runs), "--published", str(RENDA))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "ran another recipe than the one" in err and "Traceback" not in err
    more_seeds = load_protocol(ROOT / "protocols" / "renda_resnet56_cifar10.yaml", ["seeds=[0,1,2,3]"])
    runs = run_of(tmp_path / "4", more_seeds, row.method, row.sparsity, [*around(row.value, 0.002), row.value])
    assert run_reproduction([runs], RENDA).exit_code == 0  # more seeds: the same experiment, repeated more often


GOOD = (
    "lottery_ticket,0.2,median_range,0.935375,,0.92975,0.935875,3,fraction,"
    "retrain_method=lottery retrain_time=90 density=0.8^1"
)
BAD = [  # a row, the 0-based field its error names (None: the row as a whole), what the error says
    ("lottery_ticket,0.2,median_range,0.935375,,0.92975,0.935875,3,fraction,a,b", None, "11 fields; the header has 10"),
    ("lottery_ticket,1.2,median_range,0.935375,,0.92975,0.935875,3,fraction,x", 1, "sparsity: 1.2 is not between"),
    ("lottery_ticket,0.2,median,0.935375,,0.92975,0.935875,3,fraction,x", 2, "kind: 'median' is not one of"),
    ("lottery_ticket,0.2,median_range,0.935375,0.1,0.92975,0.935875,3,fraction,x", 4, "std: a median_range row"),
    ("lottery_ticket,0.2,median_range,0.9,,0.92975,0.935875,3,fraction,x", 3, "value: the median 0.9 is not"),
    ("lottery_ticket,0.2,median_range,0.935375,,,0.935875,3,fraction,x", 5, "low: a median_range row needs it"),
    ("lottery_ticket,0.2,median_range,0.935375,,0.92975,0.935875,7,fraction,x", 7, "n: a median/min/max summary"),
    ("lottery_ticket,0.2,mean_std,93.5,abc,,,3,percent,x", 4, "std: 'abc' is not a number"),
    ("lottery_ticket,0.2,mean_std,93.5,0.3,,,3,kelvin,x", 8, "unit: 'kelvin' is not one of"),
    ("lottery_ticket,0.2,point,193.5,,,,,percent,x", 3, "value: 193.5 is no accuracy in percent"),
    ('"lottery_ticket",0.2,point,93.5,,,,,percent,x', 0, "fields are never quoted here"),
]


@pytest.mark.parametrize(("line", "field", "fragment"), BAD, ids=[b[2][:24] for b in BAD])
def test_a_malformed_published_file_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, field: int | None, fragment: str
) -> None:
    text = RENDA.read_text().replace(GOOD, line, 1)
    assert text != RENDA.read_text()
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    number = text.splitlines().index(line) + 1
    column = 1 if not field else len(",".join(line.split(",")[:field])) + 2  # where the field's first character is
    code, _, err = run_cli(capsys, "check", str(tmp_path), "--published", str(bad))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"error: {bad}:{number}:{column}:") and fragment in err, err


def test_a_file_without_its_protocol_or_with_a_repeated_row_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(RENDA.read_text().replace("# protocol: renda_resnet56_cifar10\n", ""))
    with pytest.raises(Exception, match=r"bad.csv:1:1: no `# protocol: \.\.\.` line"):
        load_published(bad)
    lines = RENDA.read_text().splitlines()
    bad.write_text("\n".join([*lines, lines[-1]]) + "\n")
    with pytest.raises(Exception, match=rf"bad.csv:{len(lines) + 1}:1: method: repeats the row of line {len(lines)}"):
        load_published(bad)
