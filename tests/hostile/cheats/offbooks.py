"""Shared by the cheats that train off the books: SGD on the model's own weights, outside the engine."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def train_privately(model: torch.nn.Module, batches: list, steps: int = 5, lr: float = 0.05) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        for x, y in batches:
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
