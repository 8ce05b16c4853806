"""MLflow: one experiment per protocol (its name and hash), one MLflow run per job. The tracking store is
$MLFLOW_TRACKING_URI when set (a server, a database), else a local file store in `<run directory>/mlruns`
(`mlflow ui --backend-store-uri <run directory>/mlruns` shows it), which needs no server and no network."""

from __future__ import annotations

import os

from prunebench.results import ResultRecord
from prunebench.trackers.base import Tracker, curve_points, final_metrics, params_of

MAX_PARAM = 500  # characters of a parameter's value MLflow keeps


class MlflowTracker(Tracker):
    @property
    def tracking_uri(self) -> str:
        return os.environ.get("MLFLOW_TRACKING_URI") or (self.run_dir / "mlruns").resolve().as_uri()

    def log(self, record: ResultRecord) -> None:
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient

        uri = self.tracking_uri
        if uri.startswith("file:"):
            # MLflow 3 keeps its file store for those who ask for it: a local folder, no server, no database.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(self.group)
        experiment_id = experiment.experiment_id if experiment is not None else client.create_experiment(self.group)
        tags = {"protocol_hash": self.protocol_hash, "status": record.status, "mlflow.runName": record.job_id}
        run = client.create_run(experiment_id, run_name=record.job_id, tags=tags)
        run_id = run.info.run_id
        params = [Param(k, str(v)[:MAX_PARAM]) for k, v in params_of(record).items()]
        metrics = [Metric(name.replace("/", "."), value, 0, step) for name, step, value in curve_points(record)]
        metrics += [Metric(name, value, 0, 0) for name, value in final_metrics(record).items()]
        client.log_batch(run_id, metrics=metrics, params=params, tags=[RunTag(k, v) for k, v in tags.items()])
        client.set_terminated(run_id, status="FINISHED" if record.status != "failed" else "FAILED")


TRACKER = MlflowTracker
