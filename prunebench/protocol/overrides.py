"""Command-line overrides of protocol fields in Hydra's dotted grammar: `retrain.epochs=5`,
`'pruning.sparsities=[0.5,0.9]'`, `methods.0.config.power=2` (a list is indexed by number).

Values are parsed by OmegaConf (Hydra's own parser: `5` is an integer, `0.5` a float, `[0.5,0.9]` a list,
`{width: 0.5}` a mapping, `null` none, anything else a string) and set into the YAML's content before it is
validated: an overridden protocol is validated, hashed and recorded as written that way, and an error in an
override names the override, not the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prunebench.errors import ProtocolError
from prunebench.protocol.base import Loc

SOURCE = "command line"
MAX_OVERRIDES = 100


def _parsed(item: str) -> tuple[str, Any]:
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    key, sep, _ = item.partition("=")
    if not sep or not key.strip():
        raise ProtocolError("an override is FIELD=VALUE (e.g. retrain.epochs=5)", file=SOURCE, field=item)
    try:
        value = OmegaConf.select(OmegaConf.from_dotlist([item]), key, throw_on_missing=True)
    except (OmegaConfBaseException, ValueError, yaml.YAMLError) as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ProtocolError(f"the value cannot be parsed ({reason})", file=SOURCE, field=item) from None
    return key, OmegaConf.to_container(value, resolve=False) if OmegaConf.is_config(value) else value


def _loc(raw: dict[str, Any], key: str) -> Loc:
    """The field path of a dotted key: numbers index lists."""
    loc: list[str | int] = []
    node: Any = raw
    for part in key.split("."):
        if isinstance(node, list) and part.isdigit():
            loc.append(int(part))
            node = node[int(part)] if int(part) < len(node) else None
        else:
            loc.append(part)
            node = node.get(part) if isinstance(node, dict) else None
    return tuple(loc)


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> tuple[dict[str, Any], dict[Loc, str]]:
    """(`raw` with every override set, in order; the field path each override set -> the override as given)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if len(overrides) > MAX_OVERRIDES:
        raise ProtocolError(f"{len(overrides)} overrides: at most {MAX_OVERRIDES}", file=SOURCE)
    config = OmegaConf.create(raw)
    where: dict[Loc, str] = {}
    for item in overrides:
        key, value = _parsed(item)
        try:
            OmegaConf.update(config, key, value, merge=False, force_add=True)
        except (OmegaConfBaseException, ValueError, IndexError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ProtocolError(f"cannot be set ({reason})", file=SOURCE, field=item) from None
        where[_loc(raw, key)] = item
    result = OmegaConf.to_container(config, resolve=False)  # ${VAR} in data.root stays for the loader
    assert isinstance(result, dict)
    return result, where


def override_at(where: dict[Loc, str], loc: Loc) -> str | None:
    """The override that set the field at `loc` or a field holding it (the latest such)."""
    found = None
    for set_at, item in where.items():
        if tuple(loc[: len(set_at)]) == set_at:
            found = item
    return found
