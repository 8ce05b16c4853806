"""What a protocol's model is trained and judged on: its task (image classification today; causal language
modelling is the next tenant, prunebench.language). A task says how the model's outputs on a batch become
predictions to score (`Task.predictions`), and which metric ranks results, in which direction (`Task.ranking`).
The engine's loop and evaluation are written once against it; adding a task is a module here, not edits across
the engine.
"""

from __future__ import annotations

from prunebench.tasks.base import Metric, Task
from prunebench.tasks.classification import CLASSIFICATION, Classification

TASKS: dict[str, Task] = {CLASSIFICATION.name: CLASSIFICATION}

__all__ = ["CLASSIFICATION", "TASKS", "Classification", "Metric", "Task"]
