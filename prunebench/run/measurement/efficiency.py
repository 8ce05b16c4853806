"""The runner's measurement of a job's speed and memory (the protocol's `efficiency:` section), in the runner's
process, by its own code: the pruned model as hardware can run it, beside the dense base model it came from,
on the same device, threads and inputs (real test examples), in paired rounds (docs/efficiency.md).

The pruned model is timed as the best kernel there is for its granularity: a filter method's model physically
compacted (prunebench.efficiency.compact); a 2:4 model with semi-structured sparse kernels where the device has
them; anything else with dense kernels over its zeros, which is what most hardware gives unstructured
sparsity (a speedup near 1.0, recorded as measured).
"""

from __future__ import annotations

import copy
import platform
import statistics
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from prunebench.data import Split
from prunebench.efficiency import Compacted, Times, peak_memory, semi_structured, time_forward, weight_bytes
from prunebench.models import layer_macs
from prunebench.protocol import EfficiencySpec
from prunebench.results import EfficiencyRecord, Kernel, ModelEfficiency, Speedup, Timing

UNSTRUCTURED = "none: unstructured zeros run on dense kernels (torch has no sparse kernel that speeds them up here)"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def inputs(split: Split, size: int, device: torch.device) -> Tensor:
    """`size` test inputs (the split's first examples, repeated when it has fewer)."""
    x, _ = next(
        iter(split.batches(min(size, split.num_examples), shuffle=False, train=False, generator=None, device=device))
    )
    return x.repeat((-(-size // x.shape[0]),) + (1,) * (x.dim() - 1))[:size]


class EfficiencyMeasurement:
    """Measures one job: `record()` gives the EfficiencyRecord, with why nothing was timed where that is so."""

    def __init__(self, spec: EfficiencySpec, *, test: Split, device: torch.device) -> None:
        self.spec, self.device = spec, device
        self.x = inputs(test, max(spec.batch_sizes), device)
        self.shape = tuple(self.x.shape[1:])
        self._header = {  # the same for every job of the run: the device's name is read once
            "device": str(device),
            "device_name": device_name(device),
            "threads": spec.threads,
            "torch": torch.__version__,
            "compiled": spec.compile,
            "rounds": spec.rounds,
        }

    def header(self) -> dict[str, object]:
        return dict(self._header)

    def not_measured(self, why: str, sparse_kernel: str | None = None) -> EfficiencyRecord:
        return EfficiencyRecord(**self.header(), sparse_kernel=sparse_kernel, not_measured=why)  # type: ignore[arg-type]

    def record(
        self, pruned: nn.Module, dense: nn.Module, *, granularity: str, compacted: Compacted | None, why: str | None
    ) -> EfficiencyRecord:
        """`pruned` with the masks' zeros in place, `dense` the base model; `compacted` a filter method's model
        compacted, or `why` it could not be."""
        kernel: Kernel = "dense"
        sparse_kernel: str | None = UNSTRUCTURED
        if granularity == "filter":
            sparse_kernel = "none needed: the pruned filters are removed"
            if compacted is None:
                return self.not_measured(f"the pruned model could not be compacted: {why}", sparse_kernel)
            pruned, kernel = compacted.model, "compacted"
        elif granularity == "n:m":
            converted, sparse_kernel = semi_structured(pruned, self.device)
            if converted is not None:
                pruned, kernel, dense = converted, "semi_structured", copy.deepcopy(dense).half()  # the same precision
        pruned, dense = pruned.eval(), dense.eval()
        with torch_threads(self.spec.threads):
            try:
                timed = {"dense": self._prepare(dense), "pruned": self._prepare(pruned)}
                return self._time(timed, {"dense": dense, "pruned": pruned}, kernel, sparse_kernel)
            except Exception as exc:  # compiling or running on this device failed: the job keeps its results
                first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
                return self.not_measured(f"timing failed ({type(exc).__name__}: {first})", sparse_kernel)

    def _prepare(self, model: nn.Module) -> nn.Module:
        return torch.compile(model) if self.spec.compile else model  # type: ignore[return-value]

    def _time(
        self, timed: dict[str, nn.Module], modules: dict[str, nn.Module], kernel: Kernel, sparse_kernel: str | None
    ) -> EfficiencyRecord:
        spec = self.spec
        times = {(which, b): Times() for which in timed for b in spec.batch_sizes}
        ratios: dict[int, list[float]] = {b: [] for b in spec.batch_sizes}
        for _ in range(spec.rounds):
            for b in spec.batch_sizes:
                medians = {}
                for which in ("dense", "pruned"):  # dense first, then pruned, in every round
                    samples = time_forward(
                        timed[which],
                        self._batch(modules[which], b),
                        min_run_time=spec.min_run_time,
                        threads=spec.threads,
                    )
                    times[which, b].samples.extend(samples)
                    medians[which] = statistics.median(samples)
                ratios[b].append(medians["dense"] / medians["pruned"])
        models = {}
        # A sparse kernel's module is not traced: its MACs, zeros included, are the dense model's.
        counted = {"dense": modules["dense"], "pruned": modules["dense" if kernel == "semi_structured" else "pruned"]}
        for which, module in modules.items():
            timings = [
                Timing(
                    batch_size=b,
                    median_s=times[which, b].median,
                    iqr_s=times[which, b].iqr,
                    throughput=b / times[which, b].median,
                    peak_memory_bytes=peak_memory(timed[which], self._batch(module, b)),
                )
                for b in spec.batch_sizes
            ]
            models[which] = ModelEfficiency(
                kernel=kernel if which == "pruned" else "dense",
                params=sum(p.numel() for p in module.parameters()),
                macs=float(sum(layer_macs(counted[which], self.shape).values())),
                weight_bytes=weight_bytes(module),
                timings=timings,
            )
        speedup = [
            Speedup(batch_size=b, median=statistics.median(r), low=min(r), high=max(r)) for b, r in ratios.items()
        ]
        return EfficiencyRecord(
            **self.header(),  # type: ignore[arg-type]
            sparse_kernel=sparse_kernel,
            pruned=models["pruned"],
            dense=models["dense"],
            speedup=speedup,
        )

    def _batch(self, model: nn.Module, size: int) -> Tensor:
        if not self.x.is_floating_point():  # token ids (a causal LM's windows): never cast to the model's dtype
            return self.x[:size]
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), self.x.dtype)
        return self.x[:size].to(dtype)
