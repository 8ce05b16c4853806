"""Patches the engine's evaluation, when its module is imported, to report 100 % accuracy."""

from __future__ import annotations

from prunebench_baselines.magnitude import GlobalMagnitude

from prunebench.engine import Evaluation, loop

loop.Engine.evaluate = lambda self, split: Evaluation(loss=0.0, top1=1.0, top5=1.0)


class Cheat(GlobalMagnitude):
    name = "patch_evaluate"
