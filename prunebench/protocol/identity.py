"""What a protocol's identity is, declared once, as metadata on the fields of the protocol models.

A protocol is identified by the sha256 of its *hashed content*: the fields that change results. Each field
says how it takes part, in its `json_schema_extra` (so the JSON Schema shows it too):

- (nothing): hashed, always.
- `NOT_HASHED`: never hashed: where data lives, how many workers load it, descriptions. The same protocol
  run on two machines keeps one identity.
- `HASHED_WHEN_SET`: hashed only while it differs from its default (for a section: while anything in it is
  hashed). Fields added after protocols were written are declared so: old protocols keep their hash, as
  OpenLTH's hyperparameters omit defaults.
- `HASHED_WHEN_ENABLED`: a section with an `enabled` switch is hashed only while it is enabled (analyses).

A second mark, `OUTSIDE_SETUP`, names the fields that are part of the protocol's hash but not of its
*setup*: results of protocols that differ only there stay comparable (the method list, analyses, retraining
variants). The reporter groups results by the setup hash; the CI gate decides which methods to re-run by it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

NOT_HASHED = {"identity": "not hashed"}
HASHED_WHEN_SET = {"identity": "hashed when set"}
HASHED_WHEN_ENABLED = {"identity": "hashed when enabled"}
OUTSIDE_SETUP = {"setup": False}


def _mark(info: FieldInfo, key: str) -> Any:
    extra = info.json_schema_extra
    return extra.get(key) if isinstance(extra, dict) else None


def hashed_content(model: BaseModel) -> dict[str, Any]:
    """The JSON content of `model` that its identity covers, by the marks of its fields (recursively)."""
    return _model_content(model, model.model_dump(mode="json"))


def _model_content(model: BaseModel, dump: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, info in type(model).model_fields.items():
        rule = _mark(info, "identity")
        value = getattr(model, name)
        if rule == NOT_HASHED["identity"]:
            continue
        if rule == HASHED_WHEN_ENABLED["identity"] and not getattr(value, "enabled", False):
            continue
        content = _content(value, dump[name])
        if rule == HASHED_WHEN_SET["identity"] and (
            value == info.get_default(call_default_factory=True) or content == {}
        ):
            continue
        out[name] = content
    return out


def _content(value: Any, dump: Any) -> Any:
    if isinstance(value, BaseModel):
        return _model_content(value, dump)
    if isinstance(value, (list, tuple)):
        return [_content(v, d) for v, d in zip(value, dump, strict=True)]
    if isinstance(value, dict):
        return {k: _content(value[k], dump[k]) for k in value}
    return dump


def outside_setup(model: type[BaseModel]) -> tuple[str, ...]:
    """The top-level fields of `model` marked OUTSIDE_SETUP."""
    return tuple(name for name, info in model.model_fields.items() if _mark(info, "setup") is False)


def content_hash(content: Any) -> str:
    """sha256 of canonical JSON (sorted keys, no whitespace, no NaN or infinity)."""
    blob = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(blob.encode()).hexdigest()
