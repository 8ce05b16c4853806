"""MLflow: one experiment per protocol (its name and hash), one MLflow run per job. The tracking store is
$MLFLOW_TRACKING_URI when set (a server, a database), else a local file store in `<run directory>/mlruns`
(`mlflow ui --backend-store-uri <run directory>/mlruns` shows it), which needs no server and no network."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from prunebench.results import ResultRecord
from prunebench.trackers.base import Tracker, curve_points, final_metrics, params_of

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

MAX_PARAM = 500  # characters of a parameter's value MLflow keeps


class MlflowTracker(Tracker):
    @property
    def tracking_uri(self) -> str:
        return os.environ.get("MLFLOW_TRACKING_URI") or (self.run_dir / "mlruns").resolve().as_uri()

    def log(self, record: ResultRecord) -> None:
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient
        from mlflow.utils.validation import MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH

        uri = self.tracking_uri
        if uri.startswith("file:"):
            # MLflow 3 keeps its file store for those who ask for it: a local folder, no server, no database.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        client = MlflowClient(tracking_uri=uri)
        experiment_id = self._experiment(client)
        tags = {"protocol_hash": self.protocol_hash, "status": record.status, "mlflow.runName": record.job_id}
        run = client.create_run(experiment_id, run_name=record.job_id, tags=tags)
        run_id = run.info.run_id
        params = [Param(k, str(v)[:MAX_PARAM]) for k, v in params_of(record).items()]
        metrics = [Metric(name.replace("/", "."), value, 0, step) for name, step, value in curve_points(record)]
        metrics += [Metric(name, value, 0, 0) for name, value in final_metrics(record).items()]
        # A server takes at most MAX_METRICS_PER_BATCH metrics and MAX_PARAMS_TAGS_PER_BATCH parameters and tags
        # a request (a 160-epoch recipe has more than a thousand curve points): logged in batches that fit.
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        for i in range(0, len(params), MAX_PARAMS_TAGS_PER_BATCH):
            client.log_batch(run_id, params=params[i : i + MAX_PARAMS_TAGS_PER_BATCH])
        for i in range(0, len(metrics), MAX_METRICS_PER_BATCH):
            client.log_batch(run_id, metrics=metrics[i : i + MAX_METRICS_PER_BATCH])
        client.set_terminated(run_id, status="FINISHED" if record.status != "failed" else "FAILED")

    def _experiment(self, client: MlflowClient) -> str:
        """The protocol's experiment, created by whichever worker logs first (`--workers N`, SLURM tasks)."""
        from mlflow.exceptions import MlflowException

        found = client.get_experiment_by_name(self.group)
        if found is not None:
            return str(found.experiment_id)
        try:
            return str(client.create_experiment(self.group))
        except MlflowException:  # another worker created it between the two calls
            again = client.get_experiment_by_name(self.group)
            if again is None:
                raise
            return str(again.experiment_id)


TRACKER = MlflowTracker
