"""Weights & Biases: one W&B run per job in project `prunebench`, grouped by the protocol (name and hash). Offline
unless $WANDB_MODE says otherwise (the runs are then in `<run directory>/wandb`, `wandb sync` uploads them)."""

from __future__ import annotations

import os

from prunebench.results import ResultRecord
from prunebench.trackers.base import Tracker, curve_points, final_metrics, params_of


class WandbTracker(Tracker):
    def log(self, record: ResultRecord) -> None:
        import wandb

        run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "prunebench"),
            group=self.group,
            name=record.job_id,
            config=params_of(record),
            dir=str(self.run_dir),
            mode=os.environ.get("WANDB_MODE", "offline"),  # type: ignore[arg-type]
            reinit="create_new",
        )
        try:
            for name, step, value in curve_points(record):
                run.log({name: value, "epoch": step})
            run.summary.update(final_metrics(record))
        finally:
            run.finish()


TRACKER = WandbTracker
