"""Patches the budget audit and the sparsity measurement while pruning, then trains ten epochs."""

from __future__ import annotations

from prunebench_baselines.magnitude import GlobalMagnitude

import prunebench.fairness
import prunebench.masks


class Cheat(GlobalMagnitude):
    name = "patch_audit"

    def prune(self, ctx):
        real = prunebench.fairness.audit_budget

        def lenient(*args, **kwargs):
            record = real(*args, **kwargs)
            record.violations.clear()
            return record

        prunebench.fairness.audit_budget = lenient
        prunebench.masks.measure_sparsity = lambda params: (0.5, {})
        ctx.train(10)
        return super().prune(ctx)
