"""Leaderboards as LaTeX: the paper's table of each board (\\usepackage{booktabs}), the audit as comments."""

from __future__ import annotations

from prunebench.report.board import Comparison
from prunebench.report.cells import audit_cells


def to_latex(c: Comparison) -> str:
    r"""Per board, the paper's table (method x sparsity, booktabs, one column wide: prunebench.report.pivot); the
    notices and the audit as comments, so that the file \input{}s as nothing but tables."""
    from prunebench.report.pivot import pivot, pivot_latex

    out = [f"% Note: {' '.join(n.split())}" for n in c.notices]
    for b in c.boards:
        out.append(f"% {b.title}: fairness audit: {len(b.issues)} result(s) kept out of the ranking")
        out += [f"%   {' '.join('; '.join(audit_cells(i, b.target_kind)).split())}" for i in b.issues]
        out.append(pivot_latex(pivot(b)))
    return "\n".join(out)
