"""One rule for the format a report command writes: --format, else --output's suffix, else the terminal's table;
a suffix the command does not write is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from prunebench.errors import ResultsError
from prunebench.report import FORMATS, SWAP_FORMATS, format_for
from prunebench.report.render import SUFFIX_FORMATS


def test_compare_takes_its_format_from_the_option_else_the_suffix() -> None:
    assert format_for(None, None) == "rich" and format_for(None, Path("board")) == "rich"
    assert [format_for(None, Path(f"board{s}")) for s in SUFFIX_FORMATS] == list(SUFFIX_FORMATS.values())
    assert format_for(None, Path("BOARD.MD")) == "markdown"
    assert format_for("json", Path("board.csv")) == "json"  # --format wins over the suffix
    with pytest.raises(ResultsError) as unknown:
        format_for(None, Path("board.xlsx"), FORMATS)
    assert str(unknown.value) == (
        "--output board.xlsx: .xlsx names no format prunebench writes (.md, .markdown, .csv, .json, .tex, .html, "
        ".htm, .txt); pass --format to choose one"
    )
    with pytest.raises(ResultsError, match=r"^--format must be one of rich, markdown, csv, json, latex, html "):
        format_for("yaml", None)


def test_swap_refuses_a_suffix_of_a_format_it_does_not_write() -> None:
    assert [format_for(None, Path(f"b{s}"), SWAP_FORMATS) for s in (".md", ".json", ".txt", "")] == [
        "markdown",
        "json",
        "rich",
        "rich",
    ]
    for name, why in (("b.csv", ".csv names csv, which this command does not write"), ("b.xlsx", "names no format")):
        with pytest.raises(ResultsError, match=f"^--output {name}: .*{why}") as refused:
            format_for(None, Path(name), SWAP_FORMATS)
        assert ".md, .markdown, .json, .txt" in str(refused.value) and ".csv," not in str(refused.value)
    with pytest.raises(ResultsError, match=r"^--format must be one of rich, markdown, json \(got 'csv'\)"):
        format_for("csv", Path("b.md"), SWAP_FORMATS)
