"""Loading a protocol file: YAML with every error located at the file, line, column and field."""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import BaseModel, ValidationError

from prunebench.errors import ProtocolError
from prunebench.protocol.base import Loc, dotted, nearest_mark
from prunebench.protocol.spec import Protocol


def _marks_of(node: yaml.Node, path: Loc, marks: dict[Loc, tuple[int, int]]) -> None:
    marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            marks[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            _marks_of(value_node, (*path, key), marks)
            marks[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _marks_of(item, (*path, i), marks)


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The pydantic model that holds the field at `loc` (to suggest a spelling for an unknown key)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return None
        current = _unwrap(current.model_fields[part].annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType, list, Annotated):
        for arg in typing.get_args(annotation):
            inner = _unwrap(arg)
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return annotation


def _explain(error: Any) -> str:
    loc: Loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden":
        key = str(loc[-1])
        holder = _model_at(Protocol, loc[:-1])
        hint = ""
        if holder is not None:
            close = difflib.get_close_matches(key, list(holder.model_fields), n=1)
            known = ", ".join(holder.model_fields)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {known})"
        return f"unknown field {key!r}{hint}"
    if error["type"] == "missing":
        return "required field is missing"
    msg = str(error["msg"])
    msg = msg.removeprefix("Value error, ")
    if error["type"] not in ("value_error", "assertion_error") and "input" in error:
        msg += f" (got {error['input']!r})"
    return msg


def parse_protocol(text: str, source: str | Path | None = None) -> Protocol:
    """Parse and validate protocol YAML text; every error is a ProtocolError with a location."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProtocolError(
            f"YAML syntax error: {problem}",
            file=source,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from None
    if not isinstance(raw, dict) or node is None:
        raise ProtocolError("a protocol is a YAML mapping (name:, data:, model:, ...)", file=source, line=1)
    marks: dict[Loc, tuple[int, int]] = {}
    _marks_of(node, (), marks)
    try:
        protocol = Protocol.model_validate(raw)
    except ValidationError as exc:
        # An unknown key usually explains a "missing" one (a misspelling): report it first.
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        first = errors[0]
        loc: Loc = tuple(first["loc"])
        line, col = nearest_mark(marks, loc)
        more = f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise ProtocolError(
            _explain(first) + more, file=source, line=line, column=col, field=dotted(loc) or None
        ) from None
    return protocol.located(Path(source) if source is not None else None, marks)


def load_protocol(path: str | Path) -> Protocol:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProtocolError("no such protocol file", file=path) from None
    except (IsADirectoryError, UnicodeDecodeError, PermissionError) as exc:
        raise ProtocolError(f"cannot read the protocol: {exc.__class__.__name__}", file=path) from None
    return parse_protocol(text, path)


def resolved_yaml(protocol: Protocol) -> str:
    """The protocol with every default filled in, as YAML."""
    return yaml.safe_dump(protocol.model_dump(mode="json"), sort_keys=False)
