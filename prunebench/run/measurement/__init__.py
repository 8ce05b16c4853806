"""The runner's own measurement of what a job returns, by its own code in its own process: accuracy, sparsity and
cost (`measure`), latency and memory (`efficiency`), the optional evaluations beside the dense model
(`evaluation`: robustness, calibration, forgetting), measuring saved weights again (`verify`), and the pruned
model as a file others can run (`export`)."""

from prunebench.run.measurement.efficiency import EfficiencyMeasurement
from prunebench.run.measurement.evaluation import EvaluationMeasurement
from prunebench.run.measurement.measure import Measured, Measurer

__all__ = ["EfficiencyMeasurement", "EvaluationMeasurement", "Measured", "Measurer"]
