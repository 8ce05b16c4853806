"""The optional evaluations of `evaluation:`: what pruning takes away beyond test accuracy (docs/analyses.md).

- `robustness`: accuracy on corrupted copies of the test split, the corruptions of Hendrycks & Dietterich 2019
  generated here, deterministically, from the test split (prunebench.data.corruptions): not CIFAR-10-C's files.
- `calibration`: expected calibration error (15 bins) and negative log-likelihood on the test split.
- `forgetting`: per-class accuracy and per-example predictions on the test split, beside the dense model's
  (Hooker et al. 2019): what the report needs for the per-class change, the agreement with the dense model and
  the pruning-identified exemplars across seeds.

Each is measured by the runner on the job's final weights and on its dense base model's, and changes what a record
holds, never what is trained: hashed when set (protocols without them keep their hash) and outside the comparison
setup (results with and without them are ranked together).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from prunebench.protocol.base import MAX_SEED, StrictModel

# The corruptions prunebench generates (prunebench.data.corruptions holds their definitions; a test keeps the two
# alike): Hendrycks & Dietterich 2019's noise, blur and digital corruptions that need no image files or image
# libraries beyond numpy and PIL. Weather (snow, frost, fog, spatter) and the geometric ones are left out.
Corruption = Literal[
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "speckle_noise",
    "gaussian_blur",
    "contrast",
    "brightness",
    "jpeg_compression",
    "pixelate",
]
CORRUPTIONS: tuple[str, ...] = Corruption.__args__  # type: ignore[attr-defined]
ECE_BINS = 15  # Guo et al. 2017's equal-width confidence bins


class RobustnessSpec(StrictModel):
    """Accuracy under corruption (Hendrycks & Dietterich 2019) on copies of the test split generated here."""

    corruptions: list[Corruption] = Field(
        default_factory=lambda: list(CORRUPTIONS),
        min_length=1,
        max_length=len(CORRUPTIONS),
        description="Corruptions applied to the test split's stored pixels, each at every severity: "
        + ", ".join(CORRUPTIONS)
        + " (docs/analyses.md gives each one's parameters per severity, those of the CIFAR-10-C code).",
    )
    severities: list[Annotated[int, Field(ge=1, le=5)]] = Field(
        default_factory=lambda: [1, 2, 3, 4, 5],
        min_length=1,
        max_length=5,
        description="Severities 1 (mildest) to 5 of every corruption; the mean corruption accuracy averages "
        "every corruption at every severity.",
    )
    seed: int = Field(
        0,
        ge=0,
        le=MAX_SEED,
        description="Seed of the random corruptions (noise, impulses): each (corruption, severity) draws from its "
        "own generator seeded by it, so every job and its dense model see the same corrupted images.",
    )

    @field_validator("corruptions", "severities")
    @classmethod
    def _distinct(cls, v: list[str] | list[int]) -> list[str] | list[int]:
        if len(set(v)) != len(v):
            raise ValueError("entries must not repeat")
        return v
