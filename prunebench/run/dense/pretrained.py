"""A dense model the user has (`base: {checkpoint: ..., sha256: ...}`), in place of base training: the file
verified by its sha256 (the protocol's identity names the hash, never the path), read with `weights_only`,
and loaded strictly into the protocol's architecture. Errors name the field and say what does not fit."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import Tensor, nn

from prunebench.errors import FieldError
from prunebench.protocol import BaseSpec
from prunebench.protocol.sections import expand_path

CHECKPOINT = ("base", "checkpoint")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_pretrained(spec: BaseSpec) -> dict[str, Tensor]:
    """The checkpoint's state dict, once its file's sha256 is the protocol's."""
    assert spec.checkpoint is not None and spec.sha256 is not None
    path = expand_path(spec.checkpoint, CHECKPOINT, "the dense checkpoint")
    if not path.is_file():
        raise FieldError(CHECKPOINT, f"{path} is not a file")
    digest = file_sha256(path)
    if digest != spec.sha256:
        raise FieldError(("base", "sha256"), f"{path} has sha256 {digest}, not the protocol's {spec.sha256}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch file, or one with code in it
        raise FieldError(
            CHECKPOINT, f"{path} cannot be read as a state dict ({str(exc).splitlines()[0][:200]})"
        ) from None
    for key in ("state_dict", "model"):  # the common wrappings of a state dict
        if isinstance(blob, dict) and isinstance(blob.get(key), dict):
            blob = blob[key]
    if not isinstance(blob, dict) or not blob or not all(isinstance(v, Tensor) for v in blob.values()):
        raise FieldError(CHECKPOINT, f"{path} holds no state dict (a mapping of names to tensors)")
    return {str(k).removeprefix("module."): v for k, v in blob.items()}  # DataParallel's prefix


def load_into(model: nn.Module, state: dict[str, Tensor], model_name: str) -> None:
    """Load strictly; a FieldError saying which keys are missing or unexpected and which shapes differ."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} (checkpoint {list(state[k].shape)}, model {list(v.shape)})"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    for what, names in (("missing", missing), ("unexpected", unexpected), ("of another shape", shapes)):
        if names:
            problems.append(f"{len(names)} key(s) {what}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}")
    if problems:
        raise FieldError(CHECKPOINT, f"the checkpoint does not fit the protocol's {model_name}: {'; '.join(problems)}")
    model.load_state_dict({k: state[k].to(v.dtype) for k, v in own.items()})
