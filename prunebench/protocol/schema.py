"""The protocol's JSON Schema, generated from the pydantic models (every description, default and enum), for
editors: a protocol whose first line is `# yaml-language-server: $schema=protocol.schema.json` is completed and
checked as it is typed (the YAML language server of VS Code, Neovim, JetBrains' IDEs).

The schema describes the file as written; what only the loader can check (a method's hyperparameters, labels
that must be unique, a rewind epoch within base training) is left to `prunebench validate`.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, NoDefault
from pydantic_core import core_schema

from prunebench.protocol.spec import Protocol

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


class _WithFactoryDefaults(GenerateJsonSchema):
    """Defaults made by a factory (a list of seeds, a whole section) are shown too: an editor offers them."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            value = factory()  # type: ignore[call-arg]
            return value.model_dump(mode="json") if hasattr(value, "model_dump") else value
        return schema.get("default", NoDefault)


def protocol_schema() -> dict[str, Any]:
    schema = Protocol.model_json_schema(mode="validation", schema_generator=_WithFactoryDefaults)
    return {"$schema": SCHEMA_DIALECT, "title": "prunebench protocol", **schema}


def schema_text() -> str:
    """The schema as the file holds it: sorted keys, indented, one trailing newline (stable under regeneration)."""
    return json.dumps(protocol_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
