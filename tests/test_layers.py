"""The import layers as drawn (pyproject's [tool.importlinter]): no module imports upward, no cycle of any kind
(imports for type annotations count too)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_contracts_hold() -> None:
    # import-linter is a test dependency: a missing one fails here rather than skipping the layers unchecked.
    command = [sys.executable, "-c", "from importlinter.cli import lint_imports_command as main; main()"]
    done = subprocess.run([*command, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_type_only_imports_count() -> None:
    """An `if TYPE_CHECKING:` import closes a cycle as surely as any other: the contracts see them."""
    text = (ROOT / "pyproject.toml").read_text()
    assert "[tool.importlinter]" in text
    assert not re.search(r"^exclude_type_checking_imports\s*=\s*true", text, re.MULTILINE)
