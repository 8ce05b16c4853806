"""Loading a protocol file: YAML with every error located at the file, line, column and field."""

from __future__ import annotations

import difflib
import re
import stat
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import BaseModel, ValidationError

from prunebench.errors import ProtocolError
from prunebench.protocol.base import Loc, dotted, nearest_mark
from prunebench.protocol.overrides import SOURCE as OVERRIDES
from prunebench.protocol.overrides import apply_overrides, override_at
from prunebench.protocol.sections import MethodSpec
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
        got = repr(error["input"])
        msg += f" (got {got if len(got) <= 120 else got[:100] + f'... ({len(got):,} characters)'})"
    return msg


MAX_BYTES = 256 * 1024  # a protocol is a few kilobytes; this bounds parsing time and memory
MAX_DEPTH = 32  # nesting of mappings and lists; the protocol format needs about 6
# YAML 1.2 floats: PyYAML (YAML 1.1) reads `1e-3` as a string and `.inf`/`.nan` as floats; here numbers written
# with an exponent are floats, and infinities are left to the models (which refuse them).
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)$")


class _Refused(yaml.MarkedYAMLError):
    """YAML that is valid but not a protocol's: aliases, deep nesting, a repeated key."""


class _ProtocolLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases (their expansion is unbounded: a billion laughs), nesting deeper than
    MAX_DEPTH (no recursion limit is ever reached) and repeated keys (the last would silently win)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(
                problem=f"YAML aliases (*{event.anchor}) are not allowed in a protocol: write the value out",
                problem_mark=event.start_mark,
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(
                    problem=f"nested more than {MAX_DEPTH} levels deep; a protocol needs a few",
                    problem_mark=self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if isinstance(key, (list, dict)):
                raise _Refused(problem="a mapping key must be a plain value", problem_mark=key_node.start_mark)
            if key in seen:
                raise _Refused(
                    problem=f"the key {key!r} appears twice in one mapping", problem_mark=key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


_ProtocolLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def _read_yaml(text: str, source: str | Path | None) -> tuple[Any, yaml.Node | None]:
    """(the constructed document, its node tree) of protocol YAML; a ProtocolError naming the line otherwise."""
    loader: _ProtocolLoader | None = None
    try:
        loader = _ProtocolLoader(text)  # the reader already refuses control characters
        node = loader.get_single_node()
        raw = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProtocolError(
            problem if isinstance(exc, _Refused) else f"YAML syntax error: {problem}",
            file=source,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    return raw, node


def parse_protocol(text: str, source: str | Path | None = None, overrides: Sequence[str] = ()) -> Protocol:
    """Parse and validate protocol YAML text, with command-line `overrides` (prunebench.protocol.overrides) set
    into it first; every error is a ProtocolError with a location (an override's error names the override)."""
    if len(text) > MAX_BYTES:
        raise ProtocolError(f"{len(text):,} characters: a protocol is at most {MAX_BYTES:,}", file=source)
    raw, node = _read_yaml(text, source)
    if not isinstance(raw, dict) or node is None:
        raise ProtocolError("a protocol is a YAML mapping (name:, data:, model:, ...)", file=source, line=1)
    marks: dict[Loc, tuple[int, int]] = {}
    _marks_of(node, (), marks)
    where: dict[Loc, str] = {}
    if overrides:
        raw, where = apply_overrides(raw, overrides)
    return validated(raw, Path(source) if source is not None else None, marks, where)


def validated(
    raw: Any, source: Path | None, marks: dict[Loc, tuple[int, int]], overrides: dict[Loc, str] | None = None
) -> Protocol:
    """A protocol from its raw content; a validation error becomes a ProtocolError at the field's line, or at the
    command-line override that set the field."""
    overrides = overrides or {}
    try:
        protocol = Protocol.model_validate(raw)
    except ValidationError as exc:
        # An unknown key usually explains a "missing" one (a misspelling): report it first.
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        first = errors[0]
        loc: Loc = tuple(first["loc"])
        more = f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        item = override_at(overrides, loc)
        if item is not None:
            raise ProtocolError(_explain(first) + more, file=OVERRIDES, field=item) from None
        line, col = nearest_mark(marks, loc)
        raise ProtocolError(
            _explain(first) + more, file=source, line=line, column=col, field=dotted(loc) or None
        ) from None
    return protocol.located(source, marks, overrides)


def with_methods(protocol: Protocol, methods: list[MethodSpec]) -> Protocol:
    """The protocol with another method list, validated again (labels unique, variants that refer to them),
    its errors located in the same file."""
    raw = {**protocol.model_dump(mode="json"), "methods": [m.model_dump(mode="json") for m in methods]}
    return validated(raw, protocol.source, protocol.marks, protocol.override_locs)


def load_protocol(path: str | Path, overrides: Sequence[str] = ()) -> Protocol:
    """Read and validate a protocol file, with command-line `overrides`: a regular file of at most MAX_BYTES (a
    FIFO, a device or a directory is refused before anything is read from it)."""
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ProtocolError("not a regular file (a protocol is a YAML file)", file=path)
        if info.st_size > MAX_BYTES:
            raise ProtocolError(f"{info.st_size:,} bytes: a protocol is at most {MAX_BYTES:,}", file=path)
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise ProtocolError("no such protocol file", file=path) from None
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"not UTF-8 text (byte {exc.start})", file=path) from None
    except OSError as exc:
        raise ProtocolError(f"cannot read the protocol: {exc.strerror or exc.__class__.__name__}", file=path) from None
    return parse_protocol(text, path, overrides)


def resolved_yaml(protocol: Protocol) -> str:
    """The protocol with every default filled in, as YAML."""
    return yaml.safe_dump(protocol.model_dump(mode="json"), sort_keys=False)
