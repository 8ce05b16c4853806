"""The reporter: result records to leaderboards, audits, figures and the regression gate.

- `load`: the protocols behind the records (each run directory's protocol.json).
- `stats`: means, intervals and paired differences over seeds.
- `audit`: the fairness audit of a group of records.
- `row`, `board` and `cells`: a leaderboard's row, its board, and their human-readable cells.
- `compare`: records grouped by protocol setup, one board per group; `variants` and `recipe_selection`: the
  boards of retraining variants and the choice of the validation-selected recipe; `swap`: the swap test.
- `formats`: which format a command writes; `render/`: one module per export format.
- `plots` and `science_plots`: figures (matplotlib is imported only by them).
- `check`: the CI regression gate.
- `summary`: the plan of a run and the table that closes it.
"""

from prunebench.report.audit import AUDIT_KINDS, Entry, Issue
from prunebench.report.board import Comparison, Leaderboard
from prunebench.report.cells import AUDIT_HEADERS, CAPTION, HUMAN_HEADERS, TIED_DEFINITION, audit_cells, human_cells
from prunebench.report.check import CheckReport, run_check
from prunebench.report.compare import compare
from prunebench.report.load import ProtocolIndex, ProtocolInfo, describe_differences
from prunebench.report.render import FORMATS, format_for, render, rich_tables
from prunebench.report.row import COLUMNS, Row
from prunebench.report.stats import CONFIDENCE, Estimate, Paired, estimate, paired_difference, t_quantile
from prunebench.report.swap import SWAP_FORMATS, SwapReport, swap_render, swap_report

__all__ = [
    "AUDIT_HEADERS",
    "AUDIT_KINDS",
    "CAPTION",
    "COLUMNS",
    "CONFIDENCE",
    "FORMATS",
    "HUMAN_HEADERS",
    "SWAP_FORMATS",
    "TIED_DEFINITION",
    "CheckReport",
    "Comparison",
    "Entry",
    "Estimate",
    "Issue",
    "Leaderboard",
    "Paired",
    "ProtocolIndex",
    "ProtocolInfo",
    "Row",
    "SwapReport",
    "audit_cells",
    "compare",
    "describe_differences",
    "estimate",
    "format_for",
    "human_cells",
    "paired_difference",
    "render",
    "rich_tables",
    "run_check",
    "swap_render",
    "swap_report",
    "t_quantile",
]
