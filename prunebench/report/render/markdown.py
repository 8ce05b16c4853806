"""Leaderboards as GitHub-flavoured markdown (a pull-request comment, a README table)."""

from __future__ import annotations

from prunebench.report.board import Comparison
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
    return "\n".join(lines)
