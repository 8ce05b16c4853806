"""Nudges the weights in place from inside the loss term it hands the engine."""

from __future__ import annotations

import torch
from prunebench_baselines.magnitude import GlobalMagnitude


class Cheat(GlobalMagnitude):
    name = "train_in_loss_term"

    def loss_term(self, model):
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1.001)
        return None
