"""What the submission workflow asks of a change: which methods it needs to re-run (`affected`), and whether it
touches the committed references (`changed_references`).

For a pull request against `base_ref`, the methods of a protocol (the quickstart, by default) whose results
the change can alter are re-run and judged against the committed references:

- a method added to, or changed in, the protocol's `methods:` list;
- a method registered (through the entry-point group) from a changed module of `baselines/`.

Anything else that can change results (the engine, a shared helper, the protocol's setup as the one identity
rule defines it) re-runs every method of the protocol. Documentation, tests, CI files, results and
`pyproject.toml` (where entry points are declared) cannot change one method's numbers alone.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from prunebench.errors import ProtocolError, PrunebenchError
from prunebench.methods import ENTRY_POINT_GROUP
from prunebench.protocol import Protocol, load_protocol, parse_protocol, setup_content

BASELINES = "baselines/"
BASELINES_PACKAGE = "prunebench_baselines"
NEUTRAL_PREFIXES = (".github/", "docs/", "results/", "tests/")


@dataclass(frozen=True)
class Affected:
    labels: list[str]  # the method labels to run, in the protocol's order
    why: str  # one line: why these


def _git(repo: Path, *args: str) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, timeout=60
        ).stdout
    except subprocess.CalledProcessError as exc:
        raise PrunebenchError(f"git {' '.join(args)}: {exc.stderr.strip() or exc}") from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PrunebenchError(f"git {' '.join(args)}: {exc}") from None


def _method_module(path: str) -> str | None:
    if path.startswith(BASELINES) and path.endswith(".py") and not path.endswith("__init__.py"):
        return f"{BASELINES_PACKAGE}.{path[len(BASELINES) : -3].replace('/', '.')}"
    return None


def affected(protocol_path: Path, base_ref: str, *, repo: Path = Path(".")) -> Affected:
    """The methods of the protocol at `protocol_path` (relative to `repo`) that the change from `base_ref` to
    HEAD needs to re-run."""
    head = load_protocol(repo / protocol_path)
    everyone = [m.key for m in head.methods]
    changed = _git(repo, "diff", "--name-only", f"{base_ref}...HEAD").split()
    try:
        base: Protocol | None = parse_protocol(_git(repo, "show", f"{base_ref}:{protocol_path.as_posix()}"))
    except (PrunebenchError, ProtocolError):
        base = None
    if base is None:
        return Affected(everyone, f"{protocol_path} is new or unreadable at {base_ref}: every method runs")
    if setup_content(base.hashed_content()) != setup_content(head.hashed_content()):
        return Affected(everyone, f"the setup of {protocol_path} changed: every method runs")
    modules = {m for m in (_method_module(p) for p in changed) if m is not None}
    others = [
        p
        for p in changed
        if _method_module(p) is None
        and p not in (protocol_path.as_posix(), "pyproject.toml")
        and not p.startswith(NEUTRAL_PREFIXES)
    ]
    if others:
        return Affected(
            everyone, f"{others[0]} (and {len(others) - 1} more) can change every method: every method runs"
        )
    registered = {ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.value.split(":")[0] in modules}
    old = {m.key: m for m in base.methods}
    chosen = [m.key for m in head.methods if m.name in registered or old.get(m.key) != m]
    if modules and not chosen:
        raise PrunebenchError(
            f"changed module(s) {', '.join(sorted(modules))} register no method that {protocol_path} runs: add your "
            "method to its `methods:` list (see docs/submitting.md)"
        )
    if not chosen:
        return Affected(everyone, "no method-specific change: every method runs")
    return Affected(chosen, "methods added or changed in the protocol, or registered from changed modules")


REFERENCES = "results/"


def changed_references(base_ref: str, *, repo: Path = Path(".")) -> list[str]:
    """The files under results/ that the change from `base_ref` to HEAD adds, edits or deletes: the references
    every submission is judged against, which only a maintainer may change."""
    changed = _git(repo, "diff", "--name-only", f"{base_ref}...HEAD", "--", REFERENCES).split()
    return sorted(changed)
