"""A fuzz test of the protocol loader (hypothesis): the shipped protocols, mutated, give exit 0 or exactly one
`error:` line with exit 2; never a traceback, never a file written outside the results directory."""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "protocols").glob("*.yaml"))
HOSTILE = [
    ".inf",
    "-.inf",
    ".nan",
    "-1",
    "0",
    "1e308",
    "1.0e+400",
    "10000000000000000000",
    "true",
    "null",
    "'2'",
    "[]",
    "{}",
    "[[[[[[[[]]]]]]]]",
    "*alias",
    "&anchor 1",
    "../../escaped",
    "/abs/path",
    "'..'",
    "':'",
    '"a\\0b"',
    '"a\\nb"',
    "'x' * 3",
    "!!python/object:os.system",
    "{a: 1, a: 2}",
    "*" * 3,
    "~",
    "- 1",
    ": :",
]
VALUE = re.compile(r"(?m)(?<=: )[^\n#]+")


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SHIPPED)).read_text()
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["value", "delete", "duplicate", "insert"]))
        lines = text.splitlines(keepends=True)
        if kind == "value":
            spots = list(VALUE.finditer(text))
            if spots:
                spot = draw(st.sampled_from(spots))
                text = text[: spot.start()] + draw(st.sampled_from(HOSTILE)) + text[spot.end() :]
        elif kind == "delete" and lines:
            del lines[draw(st.integers(0, len(lines) - 1))]
            text = "".join(lines)
        elif kind == "duplicate" and lines:
            i = draw(st.integers(0, len(lines) - 1))
            lines.insert(i, lines[i])
            text = "".join(lines)
        else:
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(st.text(alphabet=st.characters(codec="utf-8"), max_size=12)) + text[at:]
    return text


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    from prunebench.cli import main

    saved = sys.argv
    sys.argv = ["prunebench", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = saved
    return code, capsys.readouterr().err


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same examples in every CI run
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=mutated())
def test_mutated_protocols_fail_cleanly(text: str, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        monkeypatch.chdir(work)
        monkeypatch.setenv("PRUNEBENCH_CACHE", str(work / "cache"))
        (work / "p.yaml").write_text(text, encoding="utf-8")
        for args in (("validate", "p.yaml"), ("run", "p.yaml", "--results", "r", "--dry-run")):
            code, err = run_cli(capsys, *args)
            assert code in (0, 2), err[-3000:]
            assert "Traceback" not in err
            if code == 2:
                lines = [line for line in err.splitlines() if line.strip() and not line.startswith("warning:")]
                assert len(lines) == 1 and lines[0].startswith("error: "), err[-3000:]
        assert sorted(p.name for p in work.iterdir()) == ["p.yaml"]  # validate and a dry run write nothing
