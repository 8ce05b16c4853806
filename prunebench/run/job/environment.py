"""What a job gets from its run, frozen before it starts: a job never sees the runner, its scheduler or its
other jobs. `RunResources` makes what every job of a run shares, once, when first needed."""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Callable
from dataclasses import dataclass

import torch

from prunebench import forkserver
from prunebench.data import DataBundle, draw_calibration, load_data
from prunebench.errors import FieldError
from prunebench.protocol import Protocol
from prunebench.run.checkpoints import StageCheckpoints
from prunebench.run.dense import BaseCheckpoint
from prunebench.run.events import RunnerEvents
from prunebench.run.measurement import EfficiencyMeasurement, EvaluationMeasurement, Measurer
from prunebench.run.provenance import RunProvenance
from prunebench.run.writing import RunWriter


@dataclass(frozen=True)
class JobEnvironment:
    """Everything one job runs under besides its `Job`: the run's protocol (its hash and source name every
    record; a retraining variant's job carries its own recipe in `Job.protocol`), the data and its copy for the
    job process, the seed's dense model, the device and smoke-run limit, the runner's measuring model and timing,
    where the job's checkpoints and files go, and who hears of its epochs."""

    protocol: Protocol
    data: DataBundle
    job_data: bytes  # the data without its test split, pickled once a run: what the job process gets
    base: BaseCheckpoint
    # The dense model's saved states a job of a method pruning `when` gets, pickled once a seed and kind (a method
    # that prunes before training never gets the trained weights: prunebench.fairness.job_states).
    base_states: Callable[[str], bytes]
    device: torch.device
    limit: int | None  # a smoke run (`run --limit N`): batches of every stage and evaluation
    in_process: bool  # `run --in-process`: the method's code runs here, for a debugger; never ranked
    measurer: Measurer
    efficiency: EfficiencyMeasurement | None  # None: the protocol times nothing (or this rank does not)
    evaluations: EvaluationMeasurement | None  # None: the protocol asks for no optional evaluation
    provenance: RunProvenance
    checkpoints: StageCheckpoints
    writer: RunWriter
    events: RunnerEvents


def with_calibration(protocol: Protocol, data: DataBundle) -> DataBundle:
    """The data with the calibration windows of every seed of the protocol drawn (pruning.calibration), here in the
    runner: a job's process gets its seed's windows, not what they are drawn from."""
    spec = protocol.pruning.calibration
    if spec is None or data.text is None or protocol.data.text is None:
        return data
    try:
        text = draw_calibration(data.text, spec, protocol.data.text.seqlen, protocol.seeds)
    except ValueError as exc:
        raise FieldError(("pruning", "calibration"), str(exc)) from None
    return dataclasses.replace(data, text=text)


class RunResources:
    """What every job of one run shares, made once when first needed (so that validating, planning or asking
    for status never loads the data)."""

    def __init__(
        self, protocol: Protocol, device: torch.device, *, limit: int | None, rank: int, in_process: bool = False
    ) -> None:
        self.protocol, self.device, self.limit, self.rank = protocol, device, limit, rank
        self.in_process = in_process
        self._data: DataBundle | None = None
        self._job_data: bytes | None = None
        self._measurer: Measurer | None = None
        self._efficiency: EfficiencyMeasurement | None = None
        self._evaluations: EvaluationMeasurement | None = None
        self._provenance: RunProvenance | None = None

    @property
    def data(self) -> DataBundle:
        if self._data is None:
            try:
                self._data = with_calibration(self.protocol, load_data(self.protocol.data))
            except FieldError as exc:
                raise self.protocol.locate(exc) from None
        return self._data

    def environment(
        self,
        base: BaseCheckpoint,
        base_states: Callable[[str], bytes],
        *,
        checkpoints: StageCheckpoints,
        writer: RunWriter,
        events: RunnerEvents,
    ) -> JobEnvironment:
        """The environment of a job of the seed whose dense model is `base`."""
        return JobEnvironment(
            protocol=self.protocol,
            data=self.data,
            job_data=self.job_data,
            base=base,
            base_states=base_states,
            device=self.device,
            limit=self.limit,
            in_process=self.in_process,
            measurer=self.measurer,
            efficiency=self.efficiency,
            evaluations=self.evaluations,
            provenance=self.provenance,
            checkpoints=checkpoints,
            writer=writer,
            events=events,
        )

    @property
    def job_data(self) -> bytes:
        if self._job_data is None:
            self._job_data = pickle.dumps(self.data.without_test(), protocol=pickle.HIGHEST_PROTOCOL)
        return self._job_data

    @property
    def measurer(self) -> Measurer:
        """The model of the protocol's architecture the runner measures every job's weights with."""
        if self._measurer is None:
            self._measurer = Measurer(self.protocol, self.data, self.device, limit=self.limit)
        return self._measurer

    @property
    def efficiency(self) -> EfficiencyMeasurement | None:
        """How the runner times jobs (the protocol's `efficiency:` section); None: it does not. On several ranks
        only rank 0 times, so that no rank's timing runs beside another's."""
        spec = self.protocol.efficiency
        if spec is None or self.rank != 0 or self.data.test is None:
            return None
        if self._efficiency is None:
            self._efficiency = EfficiencyMeasurement(spec, test=self.data.test, device=self.device)
        return self._efficiency

    @property
    def evaluations(self) -> EvaluationMeasurement | None:
        """How the runner measures the optional evaluations (evaluation.robustness, calibration, forgetting); None:
        the protocol asks for none. The dense models' outcomes it keeps are shared by every job of this process."""
        spec = self.protocol.evaluation
        if not spec.extras or self.data.test is None:
            return None
        if self._evaluations is None:
            self._evaluations = EvaluationMeasurement(
                spec,
                self.data.test,
                num_classes=self.data.num_classes,
                batch_size=self.protocol.data.eval_batch_size,
                device=self.device,
                limit=self.limit,
            )
        return self._evaluations

    @property
    def provenance(self) -> RunProvenance:
        """What every record of this run shares (the code revision is looked up once per run)."""
        if self._provenance is None:
            self._provenance = RunProvenance.now(
                self.device,
                tuple(self.protocol.overrides),
                in_process=self.in_process,
                confined=not self.in_process and forkserver.confined(),
            )
        return self._provenance
