"""Leaderboards as one HTML page."""

from __future__ import annotations

import html

from prunebench.report.board import Comparison
from prunebench.report.cells import AUDIT_HEADERS, CAPTION, HUMAN_HEADERS, audit_cells, human_cells


def to_html(c: Comparison) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"><title>prunebench leaderboard</title>',
        "<style>table{border-collapse:collapse;font:13px sans-serif}td,th{border:1px solid #ccc;padding:2px 6px}"
        ".audit td{color:#a00}caption{caption-side:bottom;text-align:left;max-width:80em}</style>",
        "</head><body>",
    ]
    for notice in c.notices:
        out.append(f'<p class="notice"><strong>Note:</strong> {e(notice)}</p>')
    for b in c.boards:
        out.append(f"<h2>{e(b.title)}</h2>")
        for note in b.notes:
            out.append(f'<p class="note"><strong>{e(note)}</strong></p>')
        out.append(f'<table class="leaderboard" data-protocol="{e(b.protocol)}"><caption>{e(CAPTION)}</caption>')
        out.append("<thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in HUMAN_HEADERS) + "</tr></thead><tbody>")
        for r in b.rows:
            out.append("<tr>" + "".join(f"<td>{e(x)}</td>" for x in human_cells(r)) + "</tr>")
        out.append("</tbody></table>")
        out.append(f"<h3>Fairness audit ({len(b.issues)})</h3>")
        if b.issues:
            out.append(
                '<table class="audit"><thead><tr>'
                + "".join(f"<th>{e(h)}</th>" for h in AUDIT_HEADERS)
                + "</tr></thead><tbody>"
            )
            for i in b.issues:
                out.append("<tr>" + "".join(f"<td>{e(x)}</td>" for x in audit_cells(i)) + "</tr>")
            out.append("</tbody></table>")
        else:
            out.append("<p>No fairness problems.</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
