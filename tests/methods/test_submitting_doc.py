"""docs/submitting.md's unit-test example runs as written: a researcher copies it first."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "submitting.md"


def test_the_unit_test_example_runs_and_its_assertion_holds() -> None:
    section = DOC.read_text().split("### Unit-testing and debugging a method", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None, "the section lost its example"
    namespace: dict[str, object] = {}
    exec(compile(code.group(1), str(DOC), "exec"), namespace)
    tests = [f for name, f in namespace.items() if name.startswith("test_") and callable(f)]
    assert len(tests) == 1
    tests[0]()  # type: ignore[operator]
