"""The one way a run starts: a `RunRequest` (what the user asked for) is prepared into an `Execution` (the
protocol loaded and validated, the trackers made, the plan drawn) and run. The command line, each `--workers`
process, each torchrun rank and each SLURM task go through it; a request also knows its own command line, so
that a worker or a rank is started with the very same run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from prunebench.errors import PrunebenchError
from prunebench.protocol import load_protocol
from prunebench.results import ResultRecord
from prunebench.run.events import RunnerEvents
from prunebench.run.jobs import Job
from prunebench.run.runner import Runner
from prunebench.run.scheduling import plan


@dataclass(frozen=True)
class RunRequest:
    """A run as the user asked for it (`prunebench run`'s arguments, less how it is spread over processes)."""

    protocol: Path
    overrides: tuple[str, ...] = ()
    results: Path = Path("runs")
    cache: Path | None = None
    device: str = "auto"
    methods: tuple[str, ...] | None = None
    sparsities: tuple[float, ...] | None = None
    seeds: tuple[int, ...] | None = None
    shard: tuple[int, int] | None = None
    variants: tuple[str, ...] | None = None
    force: bool = False
    retry_failed: bool = False
    save_models: bool = False
    dense_from: tuple[Path, ...] | None = None
    threads: int | None = None
    update_references: bool = False
    keep_checkpoints: bool = False
    limit: int | None = None
    in_process: bool = False
    log: tuple[str, ...] = field(default_factory=tuple)

    def argv(self, *, threads: bool = True) -> list[str]:
        """The same run as `prunebench` arguments, for one process: a worker of `--workers`, a torchrun rank."""
        args = ["run", str(self.protocol), *self.overrides, "--results", str(self.results), "--device", self.device]
        args += ["--workers", "1"]
        joined = {
            "--cache": self.cache,
            "--methods": ",".join(self.methods) if self.methods else None,
            "--sparsities": ",".join(map(str, self.sparsities)) if self.sparsities else None,
            "--seeds": ",".join(map(str, self.seeds)) if self.seeds else None,
            "--shard": f"{self.shard[0]}/{self.shard[1]}" if self.shard else None,
            "--variants": ",".join(self.variants) if self.variants else None,
            "--limit": self.limit,
            "--threads": self.threads if threads else None,
        }
        for flag, value in joined.items():
            args += [flag, str(value)] if value is not None else []
        for path in self.dense_from or ():
            args += ["--dense-from", str(path)]
        for name in self.log:
            args += ["--log", name]
        switches = {
            "--force": self.force,
            "--retry-failed": self.retry_failed,
            "--save-models": self.save_models,
            "--update-references": self.update_references,
            "--keep-checkpoints": self.keep_checkpoints,
            "--in-process": self.in_process,
        }
        return args + [flag for flag, on in switches.items() if on]


@dataclass
class Execution:
    """A prepared run: its runner (the protocol validated) and its plan."""

    runner: Runner
    jobs: list[Job]

    def run(self, events: RunnerEvents | None = None) -> list[ResultRecord]:
        if events is not None:
            self.runner.events = events
        return self.runner.run(self.jobs)


def prepare(request: RunRequest) -> Execution:
    """Load and validate the protocol, make the trackers (one that is not installed is an error before any work),
    and draw the plan; a filter that selects nothing is an error."""
    runner = Runner(
        load_protocol(request.protocol, request.overrides),
        results_dir=request.results,
        cache_dir=request.cache,
        device=request.device,
        force=request.force,
        retry_failed=request.retry_failed,
        save_models=request.save_models,
        dense_from=list(request.dense_from) if request.dense_from is not None else None,
        threads=request.threads,
        update_references=request.update_references,
        keep_checkpoints=request.keep_checkpoints,
        limit=request.limit,
        in_process=request.in_process,
    )
    runner.validate()
    proto = runner.protocol  # methods given by path carry their registered name as label from here on
    if request.log and runner.rank == 0:
        from prunebench.trackers import make_trackers

        runner.trackers = make_trackers(list(request.log), runner.run_dir, proto.name, proto.hash)
    jobs = plan(
        proto,
        methods=request.methods,
        sparsities=request.sparsities,
        seeds=request.seeds,
        shard=request.shard,
        variants=request.variants,
        described=runner.methods,
    )
    if not jobs:
        raise PrunebenchError(
            "no job to run: the filters select nothing of the protocol's grid"
            + (
                f" (--shard {request.shard[0]}/{request.shard[1]} takes every n-th of the jobs the other filters leave)"
                if request.shard
                else ""
            )
        )
    return Execution(runner, jobs)


def execute(request: RunRequest, events: RunnerEvents | None = None) -> list[ResultRecord]:
    """Prepare the request and run it: the records this process wrote."""
    return prepare(request).run(events)
