"""The base of every record model, and the bounds every recorded number is held to."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# Every number is bounded: a record that claims 750% accuracy, a negative loss or 1e30 parameters is refused
# when it is loaded (with a warning naming the file), never ranked.
Fraction = Annotated[float, Field(ge=0, le=1)]
Count = Annotated[int, Field(ge=0, le=10**15)]
Amount = Annotated[float, Field(ge=0, le=1e30)]  # epochs, FLOPs
Loss = Annotated[float, Field(ge=0)]  # finite; a diverging model's loss is large, and a measurement
Rate = Annotated[float, Field(ge=0, le=1e6)]


class Record(BaseModel):
    """Strict: unknown keys, numbers written as strings, booleans for numbers, NaN and infinity are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
