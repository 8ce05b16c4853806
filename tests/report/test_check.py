"""The regression gate: exit codes on a passing, a regressed and a violating submission; the
tolerance by hand; unusable input; the markdown summary."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from prunebench.errors import ResultsError
from prunebench.protocol import Protocol
from prunebench.report.check import check_markdown, run_check, tolerance
from prunebench.testing import BOARD as PROTOCOL
from prunebench.testing import A, make_protocol, make_record, run_cli, write_run


def reference(tmp_path: Path) -> tuple[Protocol, Path]:
    proto = make_protocol()
    root = tmp_path / "reference"
    write_run(root, proto, [make_record(proto, "a", 0.9, s, A[s]) for s in range(3)])
    return proto, root


def submit(tmp_path: Path, proto: Protocol, accs: list[float], label: str = "a", **kw: object) -> Path:
    root = tmp_path / "submitted"
    write_run(root, proto, [make_record(proto, label, 0.9, s, accs[s], **kw) for s in range(len(accs))])  # type: ignore[arg-type]
    return root


def test_tolerance_by_hand(tmp_path: Path) -> None:
    proto, ref = reference(tmp_path)
    # Reference std 0.02 over 3 seeds, 3 submitted seeds: 2 * 0.02 * sqrt(1/3 + 1/3) = 0.03266.
    want = 2 * 0.02 * math.sqrt(2 / 3)
    sub = submit(tmp_path, proto, [a - 0.03 for a in A])  # 3 pp lower: within the tolerance
    report = run_check([sub], [ref])
    (item,) = report.items
    assert item.tolerance == pytest.approx(want)
    assert item.delta == pytest.approx(-0.03)
    assert (item.verdict, report.exit_code) == ("pass", 0)
    assert tolerance(item.reference, 3, floor=0.05, sigmas=2.0) == 0.05  # the floor when the spread is small


def test_two_agreeing_seeds_borrow_the_pooled_spread(tmp_path: Path) -> None:
    proto = make_protocol()
    ref = tmp_path / "reference"
    records = [make_record(proto, "a", 0.9, s, A[s]) for s in range(3)]  # std 0.02
    records += [make_record(proto, "a", 0.5, s, 0.97) for s in range(2)]  # two seeds that agree: no spread to trust
    write_run(ref, proto, records)
    sub = tmp_path / "submitted"
    write_run(sub, proto, [make_record(proto, "a", 0.5, s, 0.95) for s in range(2)])  # 2 pp lower
    (item,) = run_check([sub], [ref]).items
    pooled = math.sqrt((2 * 0.02**2 + 1 * 0.0) / 3)  # 0.01633
    assert item.tolerance == pytest.approx(2 * pooled * math.sqrt(1 / 2 + 1 / 2))  # 3.27 pp, not the 0.5 pp floor
    assert item.verdict == "pass"


def test_a_steady_method_is_not_judged_by_the_noise_of_others(tmp_path: Path) -> None:
    """With enough seeds a row's own spread sets its tolerance: the noisiest method of the protocol cannot hide a
    3-point regression of the steadiest (the pooled spread would have: 2 x 3.6 x 0.82 = 5.9 pp)."""
    proto = make_protocol()
    ref = tmp_path / "reference"
    steady = [0.981, 0.983, 0.980]  # std 0.15 pp
    noisy = [0.60, 0.66, 0.54]  # std 6 pp
    records = [make_record(proto, "a", 0.9, s, steady[s]) for s in range(3)]
    records += [make_record(proto, "c", 0.9, s, noisy[s]) for s in range(3)]
    write_run(ref, proto, records)
    sub = tmp_path / "submitted"
    write_run(sub, proto, [make_record(proto, "a", 0.9, s, steady[s] - 0.03) for s in range(3)])
    (item,) = run_check([sub], [ref]).items
    assert item.tolerance == pytest.approx(0.005)  # the floor: 2 x 0.15 x 0.82 = 0.25 pp is below it
    assert item.verdict == "regression" and item.detectable < 0.01


def test_passing_submission_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, ref = reference(tmp_path)
    # The reference against itself: how the committed results/ are checked.
    code, out, _ = run_cli(capsys, "check", str(ref), "--reference", str(ref))
    assert code == 0
    assert "PASS" in out


def test_regressed_submission_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proto, ref = reference(tmp_path)
    sub = submit(tmp_path, proto, [a - 0.04 for a in A])  # 4 pp lower: beyond 3.27 pp
    report = run_check([sub], [ref])
    (item,) = report.items
    assert item.verdict == "regression" and report.exit_code == 1
    assert "4.00 pp below the reference 92.00%" in item.reasons[0]
    summary = tmp_path / "summary.md"
    code, out, _ = run_cli(capsys, "check", str(sub), "--reference", str(ref), "--markdown", str(tmp_path / "pr.md"))
    assert code == 1 and "FAIL: 1 regression(s)" in out
    assert "REGRESSION" in (tmp_path / "pr.md").read_text()
    # A looser floor lets it pass.
    code, _, _ = run_cli(capsys, "check", str(sub), "--reference", str(ref), "--floor", "5")
    assert code == 0
    assert not summary.exists()


def test_violating_submission_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proto, ref = reference(tmp_path)
    over = "trained 1.00 epochs while pruning; the budget allows 0"
    sub = submit(tmp_path, proto, A, status="violation", violations=(over,), reasons=(over,))
    report = run_check([sub], [ref])
    (item,) = report.items
    assert item.verdict == "unfair" and report.exit_code == 1
    assert any("budget" in r and over in r for r in item.reasons)
    code, out, _ = run_cli(capsys, "check", str(sub), "--reference", str(ref))
    assert code == 1 and "UNFAIR" in out


@pytest.mark.parametrize(
    ("kw", "kind"),
    [
        ({"achieved": 0.8}, "sparsity"),
        ({"status": "failed", "reasons": ("prune raised ValueError",)}, "failed"),
    ],
)
def test_each_fairness_rule_fails_the_check(tmp_path: Path, kw: dict, kind: str) -> None:
    proto, ref = reference(tmp_path)
    report = run_check([submit(tmp_path, proto, A, **kw)], [ref])
    assert report.exit_code == 1
    assert all(item.verdict == "unfair" for item in report.items)
    assert any(r.startswith(f"seed 0: {kind}:") for r in report.items[0].reasons)


def test_an_exact_copy_does_not_fail_the_check(tmp_path: Path) -> None:
    proto, ref = reference(tmp_path)
    sub = submit(tmp_path, proto, A)
    # Out of its run directory (no protocol.json beside it): placed by the hash it records.
    copy = tmp_path / "submitted" / "backup" / "a" / "sparsity-0.9_seed-0.json"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(next(sub.rglob("sparsity-0.9_seed-0.json")).read_bytes())
    report = run_check([sub], [ref])
    assert report.exit_code == 0 and report.items[0].submitted.n_seeds == 3


def test_protocol_hash_mismatch_fails_and_says_how(tmp_path: Path) -> None:
    _, ref = reference(tmp_path)
    other = make_protocol(**{"retrain: {epochs: 2}": "retrain: {epochs: 5}"})
    report = run_check([submit(tmp_path, other, A)], [ref])
    assert report.exit_code == 1 and not report.items
    (problem,) = report.problems
    assert "protocol hash mismatch" in problem and "retrain.epochs: 5 vs 2" in problem


def test_new_method_is_checked_for_fairness_only(tmp_path: Path) -> None:
    _, ref = reference(tmp_path)
    # The submitted protocol adds the method: another protocol hash, the same setup.
    extended = make_protocol(PROTOCOL + "  - {name: random, label: mine}\n")
    sub = submit(tmp_path, extended, [0.5, 0.5, 0.5], label="mine")
    report = run_check([sub], [ref])
    (item,) = report.items
    assert (item.verdict, report.exit_code) == ("new", 0)
    assert run_check([sub], [ref], require_reference=True).exit_code == 1


def test_unusable_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, ref = reference(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ResultsError, match="no valid result records"):
        run_check([empty], [ref])
    code, _, err = run_cli(capsys, "check", str(empty), "--reference", str(ref))
    assert code == 2 and err.startswith("error:")
    stranger = make_protocol(**{"name: tiny": "name: other"})
    sub = submit(tmp_path, stranger, A)
    code, _, err = run_cli(capsys, "check", str(sub), "--reference", str(ref))
    assert code == 2 and "no results of protocol other" in err


def test_markdown_summary_goes_to_the_step_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    proto, ref = reference(tmp_path)
    sub = submit(tmp_path, proto, [a - 0.04 for a in A])
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, _, _ = run_cli(capsys, "check", str(sub), "--reference", str(ref))
    text = summary.read_text()
    assert code == 1 and text.startswith("earlier step\n")  # appended, not overwritten
    assert "## ❌ prunebench check: FAIL" in text
    assert "| tiny | a | 0.9 | 92.00 ± 2.00 (n=3) | 88.00 ± 2.00 (n=3) | -4.00 | 3.27 / 4.64 | **REGRESSION** |" in text
    assert check_markdown(run_check([ref], [ref])).startswith("## ✅ prunebench check: PASS")


E2E_PROTOCOL = """\
name: e2e
data: {name: digits, train_subset: 300, test_subset: 100}
model: {name: small_cnn}
base: {epochs: 1, batch_size: 64}
pruning: {sparsities: [0.8]}
retrain: {epochs: 1, batch_size: 64}
seeds: [0]
methods:
  - {name: global_magnitude}
  - {name: random}
"""


@pytest.mark.slow
@pytest.mark.needs_confinement
def test_end_to_end_run_compare_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real runner on real data (a tiny digits protocol), then compare and check through the CLI."""
    protocol = tmp_path / "e2e.yaml"
    protocol.write_text(E2E_PROTOCOL)
    results, cache = tmp_path / "results", tmp_path / "cache"
    code, _, err = run_cli(capsys, "run", str(protocol), "--results", str(results), "--cache", str(cache))
    assert code == 0, err
    code, stdout, err = run_cli(capsys, "compare", str(results), "--format", "json")
    assert code == 0, err
    doc = json.loads(stdout)
    rows = [r for r in doc["rows"] if r["kind"] == "method"]
    assert {r["method"] for r in rows} == {"global_magnitude", "random"}
    # Trained this little, the models may sit at chance: the audit says so (informational, kept in the ranking), and
    # nothing else.
    assert {i["kind"] for i in doc["audit"]} <= {"degenerate"}, doc["audit"]
    degenerate = {i["method"] for i in doc["audit"]}
    for r in rows:
        assert r["n_seeds"] == 1 and r["status"] == ("ok (see audit)" if r["method"] in degenerate else "ok"), r
    assert all(abs(r["achieved_sparsity_mean"] - 0.8) <= 0.005 for r in rows)
    code, stdout, err = run_cli(capsys, "check", str(results), "--reference", str(results))
    assert code == 0 and "PASS" in stdout, err


def test_another_dense_checkpoint_under_the_same_protocol_fails(tmp_path: Path) -> None:
    proto, ref = reference(tmp_path)
    report = run_check([submit(tmp_path, proto, A, base_sha="another-dense-model")], [ref])
    assert report.exit_code == 1
    (problem,) = report.problems
    assert "dense base models of seed(s) 0, 1, 2 are not the reference's" in problem and "--dense-from" in problem


def _shared(record):  # type: ignore[no-untyped-def]
    """The record of a job whose method's code ran in its engine's process (code inside the training step)."""
    return record.model_copy(update={"provenance": record.provenance.model_copy(update={"method_process": False})})


def test_a_method_in_its_engines_process_is_shown_apart_and_gated_unless_its_label_is_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from prunebench.report import compare
    from prunebench.results import load_records

    proto, ref = reference(tmp_path)
    sub = tmp_path / "submitted"
    records = [_shared(make_record(proto, "a", 0.9, s, A[s])) for s in range(3)]
    records += [make_record(proto, "b", 0.9, s, A[s] - 0.01) for s in range(3)]
    write_run(sub, proto, records)
    (board,) = compare(load_records([sub])).boards
    rows = {r.method: r for r in board.rows if r.kind == "method"}
    assert rows["a"].rank is None and "engine's process" in (rows["a"].unranked_why or "")
    assert rows["a"].top1_mean == pytest.approx(sum(A[:3]) / 3)  # shown, with its numbers
    assert rows["b"].rank == 1  # ranked alone: the better shared method does not lead
    assert [i.kind for i in board.issues if i.method == "a" and i.kind != "missing_seed"] == ["shared_engine"] * 3
    refused = run_check([sub], [ref])
    assert refused.exit_code == 1 and any(i.verdict == "unfair" and i.method == "a" for i in refused.items)
    allowed = run_check([sub], [ref], allow_shared_engine=["a"])
    assert [i.verdict for i in allowed.items if i.method == "a"] == ["pass"]
    code, out, _ = run_cli(capsys, "check", str(sub), "--reference", str(ref))
    assert code == 1 and "shared_engine" in out
    code, out, _ = run_cli(capsys, "check", str(sub), "--reference", str(ref), "--allow-shared-engine", "a")
    assert code == 0, out
