"""The cache's integrity key and what it seals: a stage checkpoint a job forges (to launder weights it trained
privately through a resume) does not verify even with a sha256 recomputed the way the unsealed format had it;
the key file is made once, private, and shared by every worker of the cache."""

from __future__ import annotations

import hashlib
import io
import json
import stat
from pathlib import Path

import pytest
import torch

from prunebench.results import IntegrityKey
from prunebench.run.checkpoints import MAGIC, StageCheckpoints


def _forge(path: Path, key: str, payload: dict, head: dict) -> None:
    """A checkpoint written as a job can: its bytes, and the plain sha256 the unsealed format carried."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    digest = hashlib.sha256(f"prunebench-progress/1/{key}/".encode() + data).hexdigest()
    info = {"format": head.get("format", 1), "key": key, "digest": digest, "bytes": len(data), **head}
    path.write_bytes(MAGIC + json.dumps(info).encode() + b"\n" + data)


def test_a_forged_stage_checkpoint_is_not_used(tmp_path: Path) -> None:
    key = IntegrityKey.of_cache(tmp_path)
    checkpoints = StageCheckpoints(tmp_path, key=key)
    honest = {"child": {"state": torch.zeros(3)}}
    checkpoints.save("job-x", honest)
    assert torch.equal(checkpoints.load("job-x")["child"]["state"], torch.zeros(3))  # type: ignore[index]
    laundered = {"child": {"state": torch.ones(3)}}  # weights trained privately
    for head in ({}, {"format": 2}, {"format": 2, "mac": "0" * 64}):
        _forge(checkpoints.path("job-x"), "job-x", laundered, head)
        checkpoints.previous("job-x").unlink(missing_ok=True)
        with pytest.warns(UserWarning, match="does not verify; not used"):
            assert checkpoints.load("job-x") is None  # the stage starts over
    other = StageCheckpoints(tmp_path, key=IntegrityKey.of_cache(tmp_path))  # another worker of the cache
    other.save("job-y", honest)
    assert checkpoints.load("job-y") is not None


def test_the_key_is_made_once_private_and_shared(tmp_path: Path) -> None:
    assert IntegrityKey.of_cache(tmp_path, create=False) is None
    first, second = IntegrityKey.of_cache(tmp_path), IntegrityKey.of_cache(tmp_path)
    assert first is not None and second is not None
    assert first.mac("d", b"x") == second.mac("d", b"x") != first.mac("e", b"x")
    path = tmp_path / "keys" / "integrity.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert "integrity.key" in repr(first) and path.read_text() not in repr(first)
    assert not first.verify("d", b"x", "0" * 64) and not first.verify("d", b"x", None)
