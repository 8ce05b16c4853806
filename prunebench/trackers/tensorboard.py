"""TensorBoard: event files in `<run directory>/tensorboard/<job>/`, one folder per job (TensorBoard shows each
as a run; `tensorboard --logdir <run directory>/tensorboard` compares them)."""

from __future__ import annotations

import json

from prunebench.results import ResultRecord
from prunebench.trackers.base import Tracker, curve_points, final_metrics, params_of


class TensorBoardTracker(Tracker):
    def log(self, record: ResultRecord) -> None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard" / record.job_id))
        try:
            for name, step, value in curve_points(record):
                writer.add_scalar(name, value, step)
            final = final_metrics(record)
            for name, value in final.items():
                writer.add_scalar(f"final/{name}", value, 0)
            params = params_of(record)
            writer.add_text("job", f"```\n{json.dumps(params, indent=1, default=str)}\n```")
            # The hyperparameters view: one row per job, its parameters beside its test accuracy.
            hparams = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in params.items()}
            writer.add_hparams(hparams, {f"hparam/{k}": v for k, v in final.items()}, run_name=".")
        finally:
            writer.close()


TRACKER = TensorBoardTracker
