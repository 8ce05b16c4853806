"""Experiment trackers (`run --log tensorboard|mlflow|wandb`): every finished job logged as one run of the
tracker, with its per-epoch curves, its method and config, its sparsity, ledger and final metrics, and grouped
by the protocol's hash. Each tracker is an optional extra; TensorBoard's event files and MLflow's local file
store need no server and no network.

Trackers only read records the runner wrote: nothing they do feeds back into a result.
"""

from __future__ import annotations

from prunebench.trackers.base import TRACKERS, Tracker, make_trackers

__all__ = ["TRACKERS", "Tracker", "make_trackers"]
