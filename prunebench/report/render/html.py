"""Leaderboards as one self-contained HTML page: every board and its fairness audit, columns that sort on a
click, a filter over every row, the figures embedded, and the provenance of each row (its result files,
seeds, method version, protocol hashes, dense checkpoints, machines) on hover, and in full on a click.

Nothing is fetched: styles, script and figures are inline, so the page opens from a file, an artifact store
or a mail attachment alike. The script only sorts, filters and shows; every number is in the HTML itself.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import replace

import prunebench
from prunebench.errors import ResultsError
from prunebench.report.board import Comparison, Leaderboard
from prunebench.report.cells import (
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
from prunebench.report.metric import quality
from prunebench.report.row import Row

NUMBER = re.compile(r"^[=~]?\s*([+-]?\d+(?:\.\d+)?)")

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 2em 3em;color:#222}
header{position:sticky;top:0;background:#fff;padding:.6em 0;border-bottom:1px solid #ddd;z-index:2}
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.1em;margin:1.6em 0 .4em}h3{font-size:1em}
table{border-collapse:collapse;font-size:13px;margin:.4em 0}
td,th{border:1px solid #ccc;padding:3px 7px;vertical-align:top;white-space:nowrap}
th{background:#f3f3f3;cursor:pointer;user-select:none;white-space:nowrap}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
tr.row:nth-child(4n+1){background:#fafafa}tr.row{cursor:pointer}tr.row:hover{background:#eef5ff}
tr.dense{color:#666;font-style:italic}tr.unfair td{color:#a05a00}
tr.prov td{background:#f7f7f2;font-size:12px;color:#333;white-space:normal}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;margin:4px}dt{font-weight:600}dd{margin:0}
.audit td{color:#a00}.note{color:#444;font-weight:600}.caption{color:#555;font-size:12px;max-width:80em}
#filter{font-size:14px;padding:3px 6px;width:22em}#shown{color:#555;margin-left:1em}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
"""

SCRIPT = """
(function () {
  function key(cell) { return cell.getAttribute("data-key") || ""; }
  function compare(a, b) {
    var x = parseFloat(a), y = parseFloat(b);
    if (!isNaN(x) && !isNaN(y)) { return x - y; }
    if (a === "" || b === "") { return a === "" ? 1 : -1; }
    return a.localeCompare(b);
  }
  document.querySelectorAll("table.leaderboard").forEach(function (table) {
    var headers = table.querySelectorAll("th");
    headers.forEach(function (th, column) {
      th.addEventListener("click", function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        headers.forEach(function (h) { h.setAttribute("aria-sort", "none"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.querySelectorAll("tr.row"));
        rows.sort(function (a, b) {
          var c = compare(key(a.cells[column]), key(b.cells[column]));
          return ascending ? c : -c;
        });
        rows.forEach(function (row) {
          var details = document.getElementById(row.getAttribute("data-prov"));
          body.appendChild(row);
          if (details) { body.appendChild(details); }
        });
      });
    });
  });
  document.querySelectorAll("tr.row").forEach(function (row) {
    row.addEventListener("click", function () {
      var details = document.getElementById(row.getAttribute("data-prov"));
      if (details) { details.hidden = !details.hidden; }
    });
  });
  var filter = document.getElementById("filter"), count = document.getElementById("shown");
  function apply() {
    var words = filter.value.toLowerCase().split(/\\s+/).filter(Boolean), n = 0, all = 0;
    document.querySelectorAll("tr.row").forEach(function (row) {
      var text = row.textContent.toLowerCase();
      var match = words.every(function (w) { return text.indexOf(w) >= 0; });
      row.hidden = !match;
      var details = document.getElementById(row.getAttribute("data-prov"));
      if (details && !match) { details.hidden = true; }
      all += 1; n += match ? 1 : 0;
    });
    count.textContent = n + " of " + all + " rows shown";
  }
  filter.addEventListener("input", apply);
  apply();
})();
"""


def sort_key(text: str) -> str:
    """What a cell sorts by: its leading number (a rank "=1", "98.14 ± 0.16", "+0.84 [...]"), else its text;
    empty for a cell without a value ("-", "n/a"), which sorts last."""
    if text in ("-", "n/a", ""):
        return ""
    match = NUMBER.match(text)
    return match.group(1) if match else text.lower()


def provenance(row: Row, board: Leaderboard) -> list[tuple[str, str]]:
    """Where a row's numbers come from, as (what, value) pairs."""
    items = [
        ("method", f"{row.method_name or row.method} {row.method_version or ''}".strip()),
        ("seeds", ", ".join(map(str, row.seeds)) or "none"),
        ("protocol hashes", ", ".join(h[:12] for h in row.protocol_hashes)),
        ("setup", row.setup_hash[:12]),
        ("dense checkpoints", ", ".join(f"seed {s}: {sha[:12]}" for s, sha in board.dense_checkpoints.items())),
        ("computed on", "; ".join(board.machines) or "unknown"),
        ("result files", "\n".join(row.files) or "none"),
    ]
    if row.issues:
        items.append(("shown apart", "; ".join(row.issues)))
    if row.speedup_devices:
        items.append(("timed on", "; ".join(row.speedup_devices)))
    return items


def _evaluations(b: Leaderboard) -> list[str]:
    """The board's optional evaluations (`compare --show`) as a table under it; nothing when none are shown."""
    if not b.evaluations:
        return []
    e = html.escape
    out = [f"<h3>What pruning takes away ({e(', '.join(b.shown))})</h3>", '<table class="evaluations"><thead><tr>']
    out.append("".join(f"<th>{e(h)}</th>" for h in evaluation_headers(b.shown)) + "</tr></thead><tbody>")
    for row in b.evaluations:
        target = "-" if row.sparsity_target is None else f"{row.sparsity_target:g}"
        kind = ' class="dense"' if row.kind == "dense" else ""
        out.append(
            f"<tr{kind}>" + "".join(f"<td>{e(x)}</td>" for x in evaluation_cells(row, b.shown, target)) + "</tr>"
        )
    out.append(f'</tbody></table><p class="caption">{e(evaluation_caption(b.shown))}</p>')
    return out


def _figures(c: Comparison) -> list[tuple[str, bytes]]:
    from prunebench.report.efficiency_plots import efficiency_figure
    from prunebench.report.figures import png_bytes
    from prunebench.report.plots import accuracy_figure

    own = replace(c, boards=[b for b in c.boards if b.variant is None])
    metrics = list(dict.fromkeys(b.metric for b in own.boards))  # what the figures' values are: test top-1, ...
    value = " / ".join(m.label.removesuffix(" %") for m in metrics)
    what = " / ".join(quality(m) for m in metrics)
    out = []
    drawn = [
        (f"{value} against the weights remaining", lambda: accuracy_figure(own)),
        (f"{what} against measured latency; counted FLOPs against measured speedup", lambda: efficiency_figure(own)),
    ]
    if any(b.evaluations for b in own.boards):  # shown on request only (`compare --show`)
        from prunebench.report.evaluation_plots import evaluations_figure

        drawn.append(("what pruning takes away against the weights remaining", lambda: evaluations_figure(own)))
    for alt, draw in drawn:
        try:
            out.append((alt, png_bytes(draw())))
        except ResultsError:
            continue  # nothing ranked, nothing timed: no such figure
    return out


def to_html(c: Comparison, figures: bool = True) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',  # no favicon request: the page fetches nothing
        f"<title>prunebench leaderboard</title><style>{STYLE}</style></head><body>",
        "<header><h1>prunebench leaderboard</h1>",
        f"<div>{c.files} result file(s), {len(c.boards)} board(s); prunebench {e(prunebench.__version__)}. "
        "Click a column to sort, a row for where its numbers come from.</div>",
        '<label>Filter rows <input id="filter" type="search" placeholder="method, sparsity, status ..."></label>'
        '<span id="shown"></span></header>',
    ]
    for notice in c.notices:
        out.append(f'<p class="notice"><strong>Note:</strong> {e(notice)}</p>')
    for i, b in enumerate(c.boards):
        out.append(f'<section class="board" id="board-{i}"><h2>{e(b.title)}</h2>')
        for note in b.notes:
            out.append(f'<p class="note">{e(note)}</p>')
        keep = shown(b, HUMAN_HEADERS)
        headers = pick(board_headers(b), keep)
        out.append(f'<table class="leaderboard" data-protocol="{e(b.protocol)}">')
        columns = "".join(f'<th aria-sort="none">{e(h)}</th>' for h in headers)
        out.append(f"<thead><tr>{columns}</tr></thead><tbody>")
        for j, r in enumerate(b.rows):
            prov = provenance(r, b)
            hover = "; ".join(f"{k}: {v}" for k, v in prov[:4])
            kind = "dense" if r.kind == "dense" else ("unfair" if r.status != "ok" else "")
            cells = pick(human_cells(r, b.target_kind), keep)
            out.append(
                f'<tr class="row {kind}" data-prov="prov-{i}-{j}" title="{e(hover)}">'
                + "".join(f'<td data-key="{e(sort_key(x))}">{e(x)}</td>' for x in cells)
                + "</tr>"
            )
            listing = "".join(f"<dt>{e(k)}</dt><dd>{e(v).replace(chr(10), '<br>')}</dd>" for k, v in prov)
            span = len(headers)
            out.append(f'<tr class="prov" id="prov-{i}-{j}" hidden><td colspan="{span}"><dl>{listing}</dl></td></tr>')
        out.append(f'</tbody></table><p class="caption">{e(caption(b.metric))}</p>')
        out += _evaluations(b)
        out.append(f"<h3>Fairness audit ({len(b.issues)})</h3>")
        if b.issues:
            out.append('<table class="audit"><thead><tr>' + "".join(f"<th>{e(h)}</th>" for h in audit_headers(b)))
            out.append("</tr></thead><tbody>")
            for issue in b.issues:
                out.append("<tr>" + "".join(f"<td>{e(x)}</td>" for x in audit_cells(issue, b.target_kind)) + "</tr>")
            out.append("</tbody></table>")
        else:
            out.append("<p>No fairness problems: every expected result is present, within budget and on target.</p>")
        out.append("</section>")
    if figures:  # after the boards: the page opens on the numbers
        out.append('<section id="figures"><h2>Figures</h2>')
        for alt, png in _figures(c):
            data = base64.b64encode(png).decode("ascii")
            image = f'<img alt="{e(alt)}" src="data:image/png;base64,{data}">'
            out.append(f"<figure>{image}<figcaption>{e(alt)}</figcaption></figure>")
        out.append("</section>")
    out.append(f"<script>{SCRIPT}</script></body></html>")
    return "\n".join(out) + "\n"
