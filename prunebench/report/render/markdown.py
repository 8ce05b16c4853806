"""Leaderboards as GitHub-flavoured markdown (a pull-request comment, a README table)."""

from __future__ import annotations

from prunebench.report.board import Comparison, Leaderboard
from prunebench.report.cells import (
    AUDIT_HEADERS,
    HUMAN_HEADERS,
    audit_cells,
    audit_headers,
    board_headers,
    caption,
    human_cells,
    pick,
    shown,
)
from prunebench.report.evaluation_cells import evaluation_caption, evaluation_cells, evaluation_headers


def md_escape(text: str) -> str:
    # "|" would end the cell, "<" could open an HTML tag on GitHub.
    return text.replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def to_markdown(c: Comparison) -> str:
    lines: list[str] = []
    for notice in c.notices:
        lines += [f"> **Note:** {md_escape(notice)}", ""]
    for b in c.boards:
        lines += [f"### {md_escape(b.title)}", ""]
        for note in b.notes:
            lines += [f"> **{md_escape(note)}**", ""]
        keep = shown(b, HUMAN_HEADERS)
        headers = pick(board_headers(b), keep)
        lines.append("| " + " | ".join(headers) + " |")
        lines.append("|" + "|".join("---" for _ in headers) + "|")
        for r in b.rows:
            lines.append("| " + " | ".join(md_escape(c_) for c_ in pick(human_cells(r, b.target_kind), keep)) + " |")
        lines += ["", f"*{caption(b.metric)}*", "", f"**Fairness audit ({len(b.issues)})**", ""]
        if b.issues:
            lines.append("| " + " | ".join(audit_headers(b)) + " |")
            lines.append("|" + "|".join("---" for _ in AUDIT_HEADERS) + "|")
            for i in b.issues:
                lines.append("| " + " | ".join(md_escape(x) for x in audit_cells(i, b.target_kind)) + " |")
        else:
            lines.append(
                "No fairness problems: every expected result is present, within budget, on target sparsity and "
                "from the shared dense checkpoints."
            )
        lines.append("")
        lines += evaluations_markdown(b)
    return "\n".join(lines)


def evaluations_markdown(b: Leaderboard) -> list[str]:
    """The board's optional evaluations (`compare --show`), a table under it; nothing when none are shown."""
    if not b.evaluations:
        return []
    headers = evaluation_headers(b.shown)
    lines = [f"**What pruning takes away ({', '.join(b.shown)})**", ""]
    lines.append("| " + " | ".join(md_escape(h) for h in headers) + " |")
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    for e in b.evaluations:
        target = "-" if e.sparsity_target is None else f"{e.sparsity_target:g}"
        lines.append("| " + " | ".join(md_escape(c) for c in evaluation_cells(e, b.shown, target)) + " |")
    return [*lines, "", f"*{md_escape(evaluation_caption(b.shown))}*", ""]
