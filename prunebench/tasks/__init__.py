"""What a protocol's model is trained and judged on: its task (image classification; causal language modelling,
whose protocols, data and methods are being wired: prunebench.language). A task says how the model's outputs on a
batch become predictions to score (`Task.predictions`), and which metric ranks results, in which direction
(`Task.ranking`). The engine's loop and evaluation are written once against it; adding a task is a module here,
not edits across the engine.
"""

from __future__ import annotations

from prunebench.tasks.base import Metric, Task
from prunebench.tasks.causal_lm import CAUSAL_LM, IGNORED, CausalLM
from prunebench.tasks.classification import CLASSIFICATION, Classification

TASKS: dict[str, Task] = {task.name: task for task in (CLASSIFICATION, CAUSAL_LM)}

__all__ = ["CAUSAL_LM", "CLASSIFICATION", "IGNORED", "TASKS", "CausalLM", "Classification", "Metric", "Task"]
