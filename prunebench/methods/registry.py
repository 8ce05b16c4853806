"""Finding methods: the `prunebench.methods` entry-point group, `package.module:Class`, `path/to/file.py:Class`.

The built-in methods in `baselines/` are found exactly like a user's: through the entry-point group. A plugin
whose entry point fails to load is skipped with one warning naming it, so it cannot take the others down;
only a protocol that uses it fails. Two plugins that register one name are an error naming both.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import re
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from prunebench.errors import FieldError, MethodError
from prunebench.methods.api import Method, MethodConfig
from prunebench.protocol import LABEL_PATTERN, MethodSpec, Protocol, with_methods

ENTRY_POINT_GROUP = "prunebench.methods"


class PluginWarning(UserWarning):
    """An installed method plugin that cannot be used; the other methods are unaffected."""


@dataclass(frozen=True)
class LoadedMethod:
    cls: type[Method[Any]]
    source: str

    def instantiate(self, config: MethodConfig) -> Method[Any]:
        """A fresh instance with a validated config: one per job, so no state outlives its job."""
        return self.cls(config)


_warned: set[str] = set()


def _plugins(only: str | None = None) -> tuple[dict[str, LoadedMethod], dict[str, str]]:
    """(the usable methods of the entry-point group by name, why each unusable name cannot be used); with `only`,
    just that name is loaded (a job imports its own method, not every plugin installed)."""
    found: dict[str, LoadedMethod] = {}
    broken: dict[str, str] = {}
    values: dict[str, set[str]] = {}
    points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    for ep in points:
        values.setdefault(ep.name, set()).add(ep.value)
    for ep in points:
        if ep.name in found or ep.name in broken or (only is not None and ep.name != only):
            continue
        if len(values[ep.name]) > 1:
            both = " and ".join(sorted(values[ep.name]))
            broken[ep.name] = f"two plugins register the method name {ep.name!r}: {both}"
            continue
        try:
            found[ep.name] = LoadedMethod(_checked(ep.load(), ep.value), f"entry point {ep.value}")
        except MethodError as exc:
            broken[ep.name] = f"entry point {ep.name} = {ep.value}: {exc}"
        except Exception as exc:  # a broken third-party plugin must not take the others down
            broken[ep.name] = f"entry point {ep.name} = {ep.value} failed to load: {exc.__class__.__name__}: {exc}"
    for why in broken.values():
        if why not in _warned:
            _warned.add(why)
            warnings.warn(f"method plugin skipped: {why}", PluginWarning, stacklevel=3)
    return found, broken


def registered_methods() -> dict[str, LoadedMethod]:
    """Methods installed through the entry-point group, by name (broken plugins skipped, with a warning)."""
    return _plugins()[0]


def _checked(cls: Any, where: str) -> type[Method[Any]]:
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise MethodError(f"{where} is not a prunebench.methods.Method subclass")
    for attr in ("name", "taxonomy"):
        if not hasattr(cls, attr):
            raise MethodError(f"{where} does not set `{attr}`")
    if not (isinstance(cls.Config, type) and issubclass(cls.Config, MethodConfig)):
        raise MethodError(f"{where}: Config must subclass prunebench.methods.MethodConfig")
    return cls


def load_method(name: str, *, base_dir: Path | None = None) -> LoadedMethod:
    """Find a method by registered name, `package.module:Class` or `path/to/file.py:Class`
    (a relative path is taken from the working directory, then from base_dir)."""
    if ":" not in name:
        registry, broken = _plugins(only=name)
        if name in registry:
            return registry[name]
        if name in broken:
            raise MethodError(f"method {name!r} cannot be used: {broken[name]}")
        known = sorted({ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)})
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
        raise MethodError(f"unknown method {name!r} ({hint})")
    target, _, attr = name.rpartition(":")
    if not target or not attr:
        raise MethodError(f"{name!r} is neither a registered name nor package.module:Class nor path/to/file.py:Class")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_absolute() and not path.exists() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise MethodError(f"method file {target} not found")
        module_name = f"prunebench_user_method_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise MethodError(f"method file {target} cannot be imported")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise MethodError(f"importing {target} failed: {exc.__class__.__name__}: {exc}") from None
        source = f"file {path}"
    else:
        try:
            module = importlib.import_module(target)
        except (ImportError, ValueError) as exc:
            raise MethodError(f"cannot import module {target}: {exc}") from None
        source = f"module {target}"
    if not hasattr(module, attr):
        raise MethodError(f"{target} has no class {attr}")
    return LoadedMethod(_checked(getattr(module, attr), name), f"{source}:{attr}")


def validated_config(spec: MethodSpec, index: int, loaded: LoadedMethod) -> MethodConfig:
    """The method's config from `protocol.methods[index]`, validated; errors name that field."""
    try:
        return loaded.cls.Config.model_validate(spec.config)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ("methods", index, "config", *err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            known = ", ".join(loaded.cls.Config.model_fields) or "none"
            msg = f"unknown hyperparameter of {loaded.cls.name} (known: {known})"
        raise FieldError(loc, msg) from None


def instantiate(spec: MethodSpec, index: int, *, base_dir: Path | None = None) -> tuple[Method[Any], LoadedMethod]:
    """Load and configure the method of `protocol.methods[index]`; errors name that field."""
    try:
        loaded = load_method(spec.name, base_dir=base_dir)
    except MethodError as exc:
        raise FieldError(("methods", index, "name"), str(exc)) from None
    return loaded.instantiate(validated_config(spec, index, loaded)), loaded


def label_methods(protocol: Protocol, names: Sequence[str]) -> Protocol:
    """The protocol with a label for every method given as `package.module:Class` or `path/to/file.py:Class`:
    `names[i]`, the registered `name` of method i's class (loaded where method code may run: the runner asks a
    job process), so that no result lands in a folder named after a path. A registered name is its own label.
    Idempotent; a protocol without such methods is returned as it is (and keeps its hash)."""
    methods = list(protocol.methods)
    changed = False
    for i, spec in enumerate(methods):
        if spec.label is not None or ":" not in spec.name:
            continue
        name = names[i]
        if not isinstance(name, str) or not re.fullmatch(LABEL_PATTERN, name) or len(name) > 100:
            raise protocol.locate(
                FieldError(
                    ("methods", i, "name"),
                    f"the method's name {str(name)[:100]!r} cannot name the folder of its results: give it a `label`",
                )
            )
        methods[i] = spec.model_copy(update={"label": name})
        changed = True
    return with_methods(protocol, methods) if changed else protocol


def needs_labels(protocol: Protocol) -> bool:
    """Whether some method is given by path and has no label yet."""
    return any(spec.label is None and ":" in spec.name for spec in protocol.methods)


def config_table(cls: type[Method[Any]]) -> list[tuple[str, str, str]]:
    """(name, default, description) of each hyperparameter, for `prunebench methods`."""
    rows = []
    for name, info in cls.Config.model_fields.items():
        default = "required" if info.is_required() else repr(info.get_default(call_default_factory=True))
        rows.append((name, default, info.description or ""))
    return rows
