"""Image classification: one prediction per image, ranked by test top-1 accuracy (higher is better)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor


from prunebench.tasks.base import Metric, Task


class Classification(Task):
    """A class score per image: the outputs are the predictions as they are (the loop's arithmetic unchanged)."""

    name = "classification"
    title = "image classification"
    ranking = Metric("test_top1", "test top-1 %", higher_is_better=True, percent=True)

    def predictions(self, out: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        return out, y


CLASSIFICATION = Classification()
