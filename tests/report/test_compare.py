"""Leaderboards: statistics against hand-computed values, grouping by protocol, each audit reason,
every export format parsed back, corrupt files.

Fixtures are real result records (ResultRecord objects saved with save_result) under a run
directory holding the protocol.json the runner writes, so what is tested is what users read.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from scipy import stats

from prunebench.protocol import hashed_content_of
from prunebench.report import (
    AUDIT_HEADERS,
    COLUMNS,
    HUMAN_HEADERS,
    Comparison,
    Leaderboard,
    Row,
    compare,
    estimate,
    paired_difference,
    render,
    t_quantile,
)
from prunebench.report.cells import pick, shown
from prunebench.results import ResultFileWarning, ResultRecord, ResultSummary, load_records, save_result
from prunebench.testing import BOARD as PROTOCOL
from prunebench.testing import A, B, make_protocol, make_record, run_cli, standard_records, write_run

T2 = 4.302652729749464  # Student t, 97.5% quantile, 2 degrees of freedom (printed tables: 4.303)


def board_of(c: Comparison) -> Leaderboard:
    assert len(c.boards) == 1
    return c.boards[0]


def row(board: Leaderboard, method: str, target: float) -> Row:
    return next(r for r in board.rows if r.method == method and r.sparsity_target == target)


# ---- statistics ---------------------------------------------------------------------------------
def test_t_quantile_matches_scipy_stats() -> None:
    for df in (1, 2, 4, 9, 30):
        assert t_quantile(df) == pytest.approx(stats.t.ppf(0.975, df), rel=1e-12)
    assert t_quantile(2) == pytest.approx(T2)


def test_estimate_by_hand() -> None:
    e = estimate(A)
    assert e.n == 3
    assert e.mean == pytest.approx(0.92)
    assert e.std == pytest.approx(0.02)
    half = T2 * 0.02 / math.sqrt(3)  # 0.0496827
    assert (e.low, e.high) == (pytest.approx(0.92 - half), pytest.approx(0.92 + half))
    one = estimate([0.7])
    assert (one.n, one.mean, one.std, one.low, one.high) == (1, 0.7, None, None, None)
    assert estimate([]).mean is None


def test_paired_difference_by_hand() -> None:
    a = dict(enumerate(A))
    b = dict(enumerate(B))
    d = paired_difference(b, a)  # b - a per seed: -0.01, -0.01, -0.005
    assert d.n == 3 and d.seeds == (0, 1, 2)
    assert d.mean == pytest.approx(-0.025 / 3)
    sd = math.sqrt(((0.005 / 3) ** 2 * 2 + (0.01 / 3) ** 2) / 2)  # 0.0028868
    assert d.std == pytest.approx(sd)
    assert d.high == pytest.approx(-0.025 / 3 + T2 * sd / math.sqrt(3))
    assert d.high < 0  # b is significantly below a
    assert d.p == pytest.approx(stats.ttest_rel(B, A).pvalue)
    # Only shared seeds are paired; one shared seed cannot be tested.
    lone = paired_difference({0: 0.9, 5: 0.1}, {0: 0.8, 7: 0.2})
    assert (lone.n, lone.std, lone.low, lone.p) == (1, None, None, None)
    assert lone.mean == pytest.approx(0.1)
    # Identical differences: zero spread, a degenerate interval that excludes 0.
    same = paired_difference({0: 0.9, 1: 0.8}, {0: 0.8, 1: 0.7})
    assert same.std == pytest.approx(0.0, abs=1e-12) and not same.contains_zero()


def test_leaderboard_statistics_and_ranks(tmp_path: Path) -> None:
    proto = make_protocol()
    write_run(tmp_path, proto, standard_records(proto))
    board = board_of(compare(load_records([tmp_path])))

    a = row(board, "a", 0.9)
    assert (a.n_seeds, a.seeds, a.missing_seeds) == (3, [0, 1, 2], [])
    assert a.top1_mean == pytest.approx(0.92) and a.top1_std == pytest.approx(0.02)
    assert a.top1_ci_high == pytest.approx(0.92 + T2 * 0.02 / math.sqrt(3))
    # Dense accuracy per seed: 0.95, 0.96, 0.97 -> differences -0.05, -0.04, -0.03.
    assert a.dense_top1_mean == pytest.approx(0.96)
    assert a.delta_dense_mean == pytest.approx(-0.04)
    assert a.delta_dense_std == pytest.approx(0.01)
    assert a.delta_dense_ci_low == pytest.approx(-0.04 - T2 * 0.01 / math.sqrt(3))
    assert a.achieved_sparsity_mean == pytest.approx(0.9)
    assert a.flops_speedup == pytest.approx(10.0) and a.compression == pytest.approx(10.0)
    assert a.flops_reduction == pytest.approx(0.9)
    assert (a.retrain_epochs, a.retrain_epochs_limit, a.budget_used) == (2.0, 2.0, pytest.approx(0.5))
    assert (a.retraining_regime, a.lr_schedule, a.comparison, a.status) == ("fine_tune", "constant", "S3.2", "ok")

    # a leads; b is below a on every seed (raw p 0.038) but not after Holm's correction for the two comparisons
    # (0.076), c is all over the place (p 0.38): with three seeds all three share rank 1 with the leader.
    ranked = [r for r in board.rows if r.sparsity_target == 0.9]
    assert [r.method for r in ranked] == ["a", "b", "c"]
    assert [r.rank for r in ranked] == [1, 1, 1] and all(r.rank_shared for r in ranked)
    b, c = ranked[1], ranked[2]
    assert (b.vs_leader_method, b.vs_leader_verdict) == ("a", "tied")
    assert b.vs_leader_delta == pytest.approx(-0.025 / 3)
    assert b.vs_leader_p == pytest.approx(0.0377, abs=1e-3) and b.vs_leader_p_holm == pytest.approx(2 * b.vs_leader_p)
    assert (c.vs_leader_method, c.vs_leader_verdict) == ("a", "tied")
    assert c.vs_leader_ci_low < 0 < c.vs_leader_ci_high

    dense = board.dense
    assert dense is not None and dense.kind == "dense"
    assert dense.top1_mean == pytest.approx(0.96) and dense.top1_std == pytest.approx(0.01)
    assert board.issues == [] and board.expected_seeds == [0, 1, 2]


def test_one_seed_gives_na_not_invented_spread(tmp_path: Path) -> None:
    proto = make_protocol(**{"seeds: [0, 1, 2]": "seeds: [0]"})
    write_run(tmp_path, proto, [make_record(proto, m, 0.9, 0, acc) for m, acc in (("a", 0.9), ("b", 0.8))])
    board = board_of(compare(load_records([tmp_path])))
    a, b = row(board, "a", 0.9), row(board, "b", 0.9)
    assert a.top1_std is None and a.top1_ci_low is None and a.delta_dense_ci_low is None
    assert a.rank is None and b.rank is None and b.vs_leader_verdict is None  # one seed ranks nothing
    text = render(compare(load_records([tmp_path])), "markdown")
    assert "NOT RANKED: rows with 1 seed(s) have no rank; a rank needs 3 seeds" in text


# ---- grouping by protocol -----------------------------------------------------------------------
def test_refuses_to_rank_different_protocols_together(tmp_path: Path) -> None:
    p1 = make_protocol()
    p2 = make_protocol(**{"retrain: {epochs: 2}": "retrain: {epochs: 3}"})
    assert p1.hash != p2.hash
    write_run(tmp_path, p1, [make_record(p1, "a", 0.9, s, A[s]) for s in range(3)])
    write_run(tmp_path, p2, [make_record(p2, "a", 0.9, s, B[s]) for s in range(3)])
    c = compare(load_records([tmp_path]))
    assert len(c.boards) == 2
    for board in c.boards:
        assert len(board.protocol_hashes) == 1 and not board.mixed
        assert row(board, "a", 0.9).n_seeds == 3
    assert {b.protocol_hashes[0] for b in c.boards} == {p1.hash, p2.hash}
    (notice,) = c.notices
    assert "not ranked together" in notice
    assert "retrain.epochs: 2 vs 3" in notice or "retrain.epochs: 3 vs 2" in notice

    mixed = compare(load_records([tmp_path]), mix_protocols=True)
    board = board_of(mixed)
    assert board.mixed and "MIXED PROTOCOLS" in board.title
    assert row(board, "a", 0.9).mixed_protocols
    assert "MIXED PROTOCOLS" in render(mixed, "markdown")
    # Two results for one job (one per protocol) with different accuracies are never both ranked.
    assert {i.kind for i in board.issues} == {"duplicate", "missing_seed"}  # b and c declared, never run
    assert all(i.method == "a" for i in board.issues if i.kind == "duplicate")


def test_adding_a_method_keeps_the_setup(tmp_path: Path) -> None:
    """The protocol hash covers the method list; results of a protocol that only adds a method
    are ranked with the others (the CI gate relies on it)."""
    p1 = make_protocol()
    p2 = make_protocol(PROTOCOL + "  - {name: random, label: d}\n")
    assert p1.hash != p2.hash
    write_run(tmp_path / "ref", p1, [make_record(p1, "a", 0.9, s, A[s]) for s in range(3)])
    write_run(tmp_path / "new", p2, [make_record(p2, "d", 0.9, s, B[s]) for s in range(3)])
    c = compare(load_records([tmp_path]))
    board = board_of(c)
    assert c.notices == [] and sorted(board.protocol_hashes) == sorted([p1.hash, p2.hash])
    assert row(board, "d", 0.9).n_seeds == 3 and row(board, "a", 0.9).n_seeds == 3


def test_hashed_content_mirrors_the_protocol() -> None:
    proto = make_protocol()
    assert hashed_content_of(proto.model_dump(mode="json")) == proto.hashed_content()


def test_summary_model_mirrors_the_record() -> None:
    assert set(ResultSummary.model_fields) == set(ResultRecord.model_fields) - {"curves"}


# ---- the audit ----------------------------------------------------------------------------------
def test_each_audit_reason_is_shown_apart(tmp_path: Path) -> None:
    proto = make_protocol()
    good = [make_record(proto, "a", 0.9, s, A[s]) for s in range(3)]
    bad = [
        make_record(proto, "b", 0.9, 0, 0.99, status="failed", reasons=("retraining raised RuntimeError: nan",)),
        make_record(
            proto,
            "b",
            0.9,
            1,
            0.99,
            status="violation",
            violations=("trained 1.00 epochs while pruning; the budget allows 0",),
            reasons=("trained 1.00 epochs while pruning; the budget allows 0",),
        ),
        # Marked ok, yet off target: audited from the measurement, not the status.
        make_record(proto, "b", 0.9, 2, 0.99, achieved=0.85),
        make_record(proto, "c", 0.9, 0, 0.99, base_sha="another-dense-model"),
        make_record(proto, "c", 0.9, 1, 0.90),
        make_record(proto, "c", 0.9, 2, 0.91),
        make_record(proto, "c", 0.5, 0, 0.99, config={"lr_boost": 2}),
        make_record(proto, "c", 0.5, 1, 0.93),
        make_record(proto, "c", 0.5, 2, 0.93),
        make_record(proto, "a", 0.5, 0, 0.97),
        make_record(proto, "a", 0.5, 1, 0.97, measured=False),
        # seed 2 of a at 0.5 is missing
    ]
    run_dir = write_run(tmp_path, proto, good + bad)
    # A second, different copy of a job: conflicting duplicates are both shown apart.
    dup = make_record(proto, "b", 0.5, 0, 0.5)
    save_result(run_dir / "copies" / "b" / "sparsity-0.5_seed-0.json", dup)
    save_result(run_dir / "b" / "sparsity-0.5_seed-0.json", make_record(proto, "b", 0.5, 0, 0.6))

    board = board_of(compare(load_records([tmp_path])))
    kinds = {(i.kind, i.method, i.sparsity, i.seed) for i in board.issues}
    assert ("failed", "b", 0.9, 0) in kinds
    assert ("budget", "b", 0.9, 1) in kinds
    assert ("sparsity", "b", 0.9, 2) in kinds
    assert ("base_checkpoint", "c", 0.9, 0) in kinds
    assert ("method_config", "c", 0.5, 0) in kinds
    assert ("incomplete_record", "a", 0.5, 1) in kinds
    assert ("missing_seed", "a", 0.5, 2) in kinds
    assert ("duplicate", "b", 0.5, 0) in kinds
    reasons = {i.kind: i.reason for i in board.issues}
    assert "RuntimeError: nan" in reasons["failed"]
    assert reasons["sparsity"] == "achieved 0.8500, target 0.9, tolerance 0.005"
    assert "another-den" in reasons["base_checkpoint"]
    assert "lr_boost" in reasons["method_config"]
    assert "conflicting" in reasons["duplicate"]
    # A violation recorded by the runner is not explained twice.
    assert not any(i.kind == "violation" for i in board.issues)

    b = row(board, "b", 0.9)
    assert (b.n_seeds, b.rank, b.status) == (0, None, "excluded (see audit)")
    assert len(b.issues) == 3
    c = row(board, "c", 0.9)
    assert (c.n_seeds, c.seeds, c.status) == (2, [1, 2], "incomplete (2/3 seeds)")
    assert c.top1_mean == pytest.approx(0.905)
    a5 = row(board, "a", 0.5)
    assert (a5.n_seeds, a5.missing_seeds, a5.status) == (1, [2], "incomplete (1/3 seeds)")
    assert row(board, "b", 0.5).n_seeds == 0
    assert [r.method for r in board.rows if r.sparsity_target == 0.9 and r.rank is not None] == ["a"]  # c: 2 seeds
    text = render(compare(load_records([tmp_path])), "rich")
    for kind in ("failed", "budget", "sparsity", "base_checkpoint", "method_config", "missing_seed", "duplicate"):
        assert kind in text


def test_identical_duplicates_are_counted_once(tmp_path: Path) -> None:
    proto = make_protocol()
    run_dir = write_run(tmp_path, proto, [make_record(proto, "a", 0.9, s, A[s]) for s in range(3)])
    save_result(run_dir / "backup" / "a" / "sparsity-0.9_seed-0.json", make_record(proto, "a", 0.9, 0, A[0]))
    board = board_of(compare(load_records([tmp_path, run_dir])))  # overlapping arguments count once too
    a = row(board, "a", 0.9)
    assert a.n_seeds == 3 and a.top1_mean == pytest.approx(0.92) and a.status == "ok (see audit)"
    (dup,) = [i for i in board.issues if i.kind == "copy"]
    assert "counted once" in dup.reason
    # Declared but never run: one line per row (a at 0.5, b and c at both sparsities).
    missing = {(i.method, i.sparsity, i.seed) for i in board.issues if i.kind == "missing_seed"}
    assert missing == {(m, s, None) for m in "abc" for s in (0.5, 0.9)} - {("a", 0.9, None)}


def test_corrupt_files_warn_and_are_skipped(tmp_path: Path) -> None:
    proto = make_protocol()
    run_dir = write_run(tmp_path, proto, [make_record(proto, "a", 0.9, s, A[s]) for s in range(3)])
    good = (run_dir / "a" / "sparsity-0.9_seed-0.json").read_text()
    (run_dir / "a" / "truncated.json").write_text(good[: len(good) // 2])
    (run_dir / "foreign.json").write_text('{"accuracy": 0.99}')
    (run_dir / "future.json").write_text(good.replace('"schema_version": 1', '"schema_version": 2'))
    with pytest.warns(ResultFileWarning) as caught:
        loaded = load_records([tmp_path])
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 3
    assert any("truncated.json: skipped: not readable JSON" in m for m in messages)
    assert any("foreign.json: skipped: not a prunebench result record" in m for m in messages)
    assert any("future.json: skipped: schema version 2" in m for m in messages)
    assert row(board_of(compare(loaded)), "a", 0.9).n_seeds == 3


# ---- export formats -----------------------------------------------------------------------------
@pytest.fixture
def audited(tmp_path: Path) -> Comparison:
    proto = make_protocol()
    records = standard_records(proto)
    records[0] = make_record(proto, "a", 0.9, 0, 0.9, status="failed", reasons=("boom | & % _ <b>",))
    write_run(tmp_path, proto, records)
    return compare(load_records([tmp_path]))


def test_json_carries_every_column(audited: Comparison) -> None:
    pd = pytest.importorskip("pandas")
    doc = json.loads(render(audited, "json"))
    frame = pd.DataFrame(doc["rows"])
    assert list(frame.columns) == COLUMNS
    assert len(frame) == sum(len(b.rows) for b in audited.boards)
    a = frame[(frame.method == "a") & (frame.sparsity_target == 0.9)].iloc[0]
    assert a.n_seeds == 2 and a.top1_mean == pytest.approx(0.93)
    assert doc["audit"][0]["kind"] == "failed" and "boom" in doc["audit"][0]["reason"]
    assert doc["tables"][0]["protocol"] == "tiny"
    assert "tied" in doc["definitions"]


def test_csv_carries_every_column(audited: Comparison) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.read_csv(io.StringIO(render(audited, "csv")))
    assert list(frame.columns) == COLUMNS
    rows = [r for b in audited.boards for r in b.rows]
    assert len(frame) == len(rows)
    for got, want in zip(frame.itertuples(), rows, strict=True):
        assert got.method == want.method
        if want.top1_mean is not None:
            assert got.top1_mean == pytest.approx(want.top1_mean)
    assert "boom" in frame[frame.n_issues > 0].issues.iloc[0]
    assert next(csv.reader(io.StringIO(render(audited, "csv")))) == COLUMNS


def _table_lines(text: str) -> list[list[str]]:
    out = []
    for line in text.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip().replace("\\|", "|") for c in line.strip().strip("|").split(" | ")]
            out.append(cells)
    return out


def test_markdown_parses_back(audited: Comparison) -> None:
    text = render(audited, "markdown")
    lines = _table_lines(text)
    headers = pick(HUMAN_HEADERS, shown(audited.boards[0], HUMAN_HEADERS))
    assert lines[0] == headers and "speedup (measured)" not in headers  # nothing was timed: no such column
    body = [ln for ln in lines[1:] if len(ln) == len(headers) and ln != headers]
    assert len(body) == len(audited.boards[0].rows)
    a = next(ln for ln in body if ln[1] == "a" and ln[2] == "0.9")
    assert a[3] == "93.00 ± 1.41" and a[5] == "2/3"
    assert AUDIT_HEADERS in lines
    assert any("boom | & % _ &lt;b>" in " ".join(ln) for ln in lines)  # no raw HTML into a GitHub page
    assert "share rank =1 with it" in text


def test_latex_is_the_papers_table_and_parses_back(audited: Comparison) -> None:
    """LaTeX is the method x sparsity table (booktabs), the audit in comments: the file \\input{}s as a table."""
    text = render(audited, "latex")
    assert r"\begin{tabular}{@{}lrr@{}}" in text and r"\toprule" in text
    assert text.rstrip().endswith(r"\end{table}")  # no paragraph after the table
    body = text.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    rows = {ln.split(" & ")[0]: [c.strip() for c in ln.removesuffix(r"\\").split(" & ")[1:]] for ln in body}
    assert set(rows) == {"dense", "a", "b", "c"} and all(len(r) == 2 for r in rows.values())  # sparsities 0.5, 0.9
    assert rows["a"][1].startswith(r"$93.00_{\pm 1.41}$") and r"\resizebox{\ifdim\width>\columnwidth" in text
    assert r"%   failed; a; 0.9; 0; " in text and r"boom | & % _ <b>" in text  # the audit, verbatim in a comment


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def test_html_parses_back(audited: Comparison) -> None:
    parser = _Cells()
    parser.feed(render(audited, "html"))
    headers = pick(HUMAN_HEADERS, shown(audited.boards[0], HUMAN_HEADERS))
    assert parser.rows[0] == headers
    body = [r for r in parser.rows if len(r) == len(headers) and r != headers]
    assert len(body) == len(audited.boards[0].rows)
    assert next(r for r in body if r[1] == "a" and r[2] == "0.9")[3] == "93.00 ± 1.41"
    assert any("boom | & % _ <b>" in cell for r in parser.rows for cell in r)


def test_rich_output_names_the_audit(audited: Comparison) -> None:
    text = render(audited, "rich")
    assert "Fairness audit of tiny: 1 result(s) shown apart" in text
    assert "boom" in text


# ---- the command line ---------------------------------------------------------------------------
def test_cli_compare_exports_and_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proto = make_protocol()
    run_dir = write_run(tmp_path / "r", proto, standard_records(proto))
    (run_dir / "broken.json").write_text("{not json")
    out = tmp_path / "board.csv"
    code, _, err = run_cli(capsys, "compare", str(tmp_path / "r"), "--output", str(out))
    assert code == 0, err
    assert "warning:" in err and "broken.json: skipped: not readable JSON" in err
    assert out.read_text().splitlines()[0].split(",") == COLUMNS
    code, stdout, _ = run_cli(capsys, "compare", str(tmp_path / "r"), "--format", "json")
    assert code == 0 and len(json.loads(stdout)["rows"]) == 7
    code, stdout, _ = run_cli(capsys, "compare", str(tmp_path / "r"), "--methods", "a", "--sparsities", "0.9")
    assert code == 0 and "Fairness audit of tiny" in stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(capsys, "compare", str(empty))
    assert code == 2 and err.startswith("error: no valid result records") and "Traceback" not in err
    code, _, err = run_cli(capsys, "compare", str(tmp_path / "nowhere"))
    assert code == 2 and "no such file or directory" in err
    code, _, err = run_cli(capsys, "compare", str(tmp_path / "r"), "--format", "yaml")
    assert code == 2 and "--format must be one of" in err


@pytest.mark.skipif(
    shutil.which("pdflatex") is None, reason="pdflatex is not installed (Debian: texlive-latex-recommended)"
)
def test_the_latex_table_fits_one_column_of_a_two_column_paper(tmp_path: Path) -> None:
    """Compiled in an ICML-sized column (234.9 pt), the paper's table of the committed references is not
    overfull."""
    table = render(compare(load_records([Path(__file__).resolve().parents[2] / "results"])), "latex")
    (tmp_path / "table.tex").write_text(table)
    (tmp_path / "doc.tex").write_text(
        "\\documentclass[twocolumn]{article}\\usepackage{booktabs,graphicx}"
        "\\usepackage[textwidth=487.8pt]{geometry}\\setlength{\\columnsep}{18pt}"
        "\\begin{document}\\input{table.tex}text\\end{document}\n"
    )
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "doc.tex"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    log = (tmp_path / "doc.log").read_text(errors="replace")
    assert done.returncode == 0 and "Overfull \\hbox" not in log, log[-2000:]
