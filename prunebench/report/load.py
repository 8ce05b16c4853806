"""The protocols behind result records: each run directory's protocol.json, found once per directory and
trusted only when its content has the hash it claims; how two protocols' setups differ."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prunebench.protocol import content_hash, hashed_content_of, setup_content, setup_hash
from prunebench.results import ProtocolRef, RunDirectory
from prunebench.results.store import read_protocol_file


@dataclass(frozen=True)
class ProtocolInfo:
    """A protocol as the results know it: the hash in the records and, when the run directory
    holds the runner's protocol.json, the content that hash covers (Protocol.hashed_content)."""

    name: str
    hash: str
    setup_hash: str
    content: dict[str, Any] | None
    # For a protocol with sanity ablations: which applied to which method, and why not, as its runner found
    # (protocol.json's "sanity"; prunebench.protocol.sanity.applicability).
    sanity: dict[str, dict[str, str | None]] | None = None

    @property
    def seeds(self) -> list[int]:
        return list(self.content.get("seeds", [])) if self.content else []

    @property
    def target_kind(self) -> str:
        """sparsity, or the kind of cost its `pruning.targets` state (prunebench.results.targets)."""
        targets = self.content.get("pruning", {}).get("targets") if self.content else None
        if not isinstance(targets, dict):
            return "sparsity"
        return "flops_reduction" if targets.get("flops_reduction") is not None else "params_reduction"

    @property
    def sparsities(self) -> list[float]:
        """The values of its targets: sparsities, or reduction factors (`target_kind`)."""
        if not self.content:
            return []
        pruning = self.content.get("pruning", {})
        if self.target_kind == "sparsity":
            return list(pruning.get("sparsities") or [])
        return list(pruning["targets"].get(self.target_kind) or [])

    @property
    def methods(self) -> list[str]:
        if not self.content:
            return []
        return [m.get("label") or m["name"] for m in self.content.get("methods", [])]

    @property
    def method_sparsities(self) -> dict[str, list[float]]:
        """The methods that run at some of the targets only (a protocol's `methods[i].sparsities`), by label."""
        if not self.content:
            return {}
        methods = self.content.get("methods", [])
        return {m.get("label") or m["name"]: list(m["sparsities"]) for m in methods if m.get("sparsities")}


class ProtocolIndex:
    """Finds the protocol.json the runner writes into each run directory, once per directory."""

    def __init__(self) -> None:
        self._by_file: dict[Path, dict[str, Any] | None] = {}
        self._infos: dict[tuple[str, str, Path], ProtocolInfo] = {}
        self._setups: dict[tuple[str, str], ProtocolInfo] = {}
        self._by_hash: dict[str, dict[str, Any]] = {}
        self._sanity: dict[str, dict[str, dict[str, str | None]]] = {}

    def _read(self, path: Path) -> dict[str, Any] | None:
        if path not in self._by_file:
            blob: dict[str, Any] | None = None
            raw = read_protocol_file(path) if path.exists() else None
            if raw is not None and isinstance(raw.get("protocol"), dict):
                hashed = hashed_content_of(raw["protocol"])
                # Trusted only when its content has the hash it claims (same content, same hashing rules).
                if hashed is not None and content_hash(hashed) == raw.get("hash"):
                    blob = {"hash": raw["hash"], "protocol": hashed, "sanity": sanity_table(raw.get("sanity"))}
            self._by_file[path] = blob
            if blob is not None:
                self._by_hash.setdefault(blob["hash"], blob["protocol"])
                if blob["sanity"] is not None:
                    self._sanity.setdefault(blob["hash"], blob["sanity"])
        return self._by_file[path]

    def info(self, ref: ProtocolRef, file: Path) -> ProtocolInfo:
        key = (ref.name, ref.hash, file.parent)
        if key not in self._infos:
            found: dict[str, Any] | None = None
            sanity = None
            for candidate in RunDirectory.candidates(file):
                blob = self._read(candidate)
                if blob is not None and blob["hash"] == ref.hash:
                    found, sanity = blob["protocol"], blob["sanity"]
                    break
            self._infos[key] = ProtocolInfo(
                name=ref.name,
                hash=ref.hash,
                setup_hash=setup_hash(found) if found is not None else ref.hash,
                content=found,
                sanity=sanity,
            )
            info = self._infos[key]
            if info.content is not None or (ref.name, info.setup_hash) not in self._setups:
                self._setups[(ref.name, info.setup_hash)] = info
        return self._infos[key]

    def resolve(self, info: ProtocolInfo) -> ProtocolInfo:
        """A record copied away from its run directory: the content of its protocol hash, when a
        protocol.json with that hash was found anywhere else."""
        if info.content is not None or info.hash not in self._by_hash:
            return info
        content = self._by_hash[info.hash]
        resolved = ProtocolInfo(info.name, info.hash, setup_hash(content), content, self._sanity.get(info.hash))
        self._setups.setdefault((info.name, resolved.setup_hash), resolved)
        return resolved

    def by_setup(self, name: str, setup: str) -> ProtocolInfo:
        """A protocol seen with this setup hash (its content, when a protocol.json was found)."""
        return self._setups.get((name, setup)) or ProtocolInfo(name, setup, setup, None)


def sanity_table(raw: Any) -> dict[str, dict[str, str | None]] | None:
    """protocol.json's "sanity" (which ablation applied to which method, and why not) when it has that shape."""
    if not isinstance(raw, dict):
        return None
    table: dict[str, dict[str, str | None]] = {}
    for label, row in raw.items():
        if not isinstance(label, str) or not isinstance(row, dict):
            return None
        if not all(isinstance(a, str) and (why is None or isinstance(why, str)) for a, why in row.items()):
            return None
        table[label] = dict(row)
    return table


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def describe_differences(a: ProtocolInfo, b: ProtocolInfo, limit: int = 8) -> str:
    """How two protocols' setups differ, field by field (the fields outside the setup aside)."""
    if a.content is None or b.content is None:
        return "the protocol.json of a run directory is missing, so which fields differ is unknown"
    fa, fb = _flatten(setup_content(a.content)), _flatten(setup_content(b.content))
    diffs = [
        f"{k}: {fa.get(k, '(absent)')!r} vs {fb.get(k, '(absent)')!r}"
        for k in sorted(fa.keys() | fb.keys())
        if fa.get(k) != fb.get(k)
    ]
    if not diffs:
        return "only their method lists differ"
    more = f" (and {len(diffs) - limit} more)" if len(diffs) > limit else ""
    return "; ".join(diffs[:limit]) + more
