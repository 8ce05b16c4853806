"""Leaderboards as LaTeX: one booktabs table per board (\\usepackage{booktabs}), the audit as a list."""

from __future__ import annotations

from prunebench.report.board import Comparison
from prunebench.report.cells import CAPTION, HUMAN_HEADERS, audit_cells, human_cells

_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "\u00d7": r"$\times$",  # multiplication sign
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in text)


def to_latex(c: Comparison) -> str:
    """One booktabs table per protocol (\\usepackage{booktabs}), the audit as a list below it."""
    out: list[str] = []
    for notice in c.notices:
        out.append(f"% Note: {notice}")
    for b in c.boards:
        out += [
            r"\begin{table}[t]",
            r"\centering",
            r"\scriptsize",
            rf"\caption{{{latex_escape(b.title)}. {latex_escape(' '.join(b.notes))} {latex_escape(CAPTION)}}}",
            r"\begin{tabular}{" + "l" * len(HUMAN_HEADERS) + "}",
            r"\toprule",
            " & ".join(latex_escape(h) for h in HUMAN_HEADERS) + r" \\",
            r"\midrule",
        ]
        for r in b.rows:
            out.append(" & ".join(latex_escape(x) for x in human_cells(r)) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
        out.append(rf"\paragraph{{Fairness audit ({len(b.issues)})}}")
        if b.issues:
            out.append(r"\begin{itemize}")
            for i in b.issues:
                out.append(r"\item " + latex_escape("; ".join(audit_cells(i))))
            out.append(r"\end{itemize}")
        else:
            out.append("No fairness problems.")
        out.append("")
    return "\n".join(out)
