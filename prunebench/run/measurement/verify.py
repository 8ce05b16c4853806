"""`prunebench check --verify`: the weights a run saved (`run --save-models`) measured again, against the records.

For every record that names its final weights (`weights_sha256`), the saved file must hold exactly those
weights (its sha256), and the runner's own measurement of them (prunebench.run.measurement.measure, on the protocol's
data) must give the record's sparsity and accuracy: the same zeros exactly, test and validation top-1 within
one example (another machine may order a sum differently). A record whose weights are missing, altered or
measure otherwise is a failure; a record with a number someone edited by hand cannot pass.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

import torch

from prunebench.data import load_data
from prunebench.errors import FieldError, PrunebenchError
from prunebench.protocol import Protocol
from prunebench.results import ResultRecord, RunDirectory, load_result
from prunebench.results.store import read_protocol_file
from prunebench.results.targets import TargetKind
from prunebench.run.dense.cache import weights_sha256
from prunebench.run.measurement.measure import Measurer


@dataclass
class Verification:
    verified: int = 0
    problems: list[str] = field(default_factory=list)


def _is_record_name(name: str) -> bool:
    """A job record's file name: `<target kind>-<value>_seed-<seed>.json` (prunebench.results.RunDirectory)."""
    return any(fnmatch.fnmatchcase(name, f"{kind}-*_seed-*.json") for kind in get_args(TargetKind))


def _record_files(paths: Sequence[Path]) -> list[Path]:
    """The record files given, and those under the folders given, each folder's sorted."""
    out: list[Path] = []
    for path in paths:
        if not path.is_dir():
            out.append(path)
            continue
        # os.walk, not Path.rglob: a folder that a running worker removes meanwhile (its empty claims/) is skipped,
        # where rglob (Python < 3.13) raises FileNotFoundError.
        walked = os.walk(path)
        out += sorted(Path(d, n) for d, _, names in walked for n in names if _is_record_name(n))
    return out


def run_directory_of(record_file: Path) -> tuple[Path, Protocol] | None:
    for candidate in RunDirectory.candidates(record_file):
        content = read_protocol_file(candidate)
        if content is not None and isinstance(content.get("protocol"), dict):
            return candidate.parent, Protocol.model_validate_json(json.dumps(content["protocol"]))
    return None


def verify(paths: Sequence[Path], device: str = "cpu") -> Verification:
    """Measure the saved weights of every record under `paths` again; see the module's docstring."""
    out = Verification()
    measurers: dict[str, Measurer] = {}
    for file in _record_files(paths):
        try:
            record = load_result(file)
        except ValueError:
            continue  # the reporter names the files that are not records
        if record.status == "failed" or record.metrics is None:
            continue
        if record.weights_sha256 is None:
            out.problems.append(f"{file}: the record names no final weights (written before weights_sha256)")
            continue
        found = run_directory_of(file)
        if found is None:
            out.problems.append(f"{file}: no protocol.json of its run directory, nothing to measure it with")
            continue
        run_dir, protocol = found
        model_file = RunDirectory(run_dir).model_path(record.job_id)
        problem = _check(record, model_file, protocol, measurers, torch.device(device))
        if problem is None:
            out.verified += 1
        else:
            out.problems.append(f"{file}: {problem}")
    return out


def _check(
    record: ResultRecord, model_file: Path, protocol: Protocol, measurers: dict[str, Measurer], device: torch.device
) -> str | None:
    if not model_file.is_file():
        return f"no saved weights at {model_file} (run with --save-models)"
    try:
        state = torch.load(model_file, map_location="cpu", weights_only=True)
    except Exception as exc:  # a file that is not weights, whatever torch raises
        return f"{model_file} cannot be loaded as weights ({exc.__class__.__name__})"
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return f"{model_file} does not hold named tensors"
    if weights_sha256(state) != record.weights_sha256:
        return "the saved weights are not the ones the record was measured on (sha256 differs)"
    if protocol.hash not in measurers:
        try:
            measurers[protocol.hash] = Measurer(protocol, load_data(protocol.data), device)
        except FieldError as exc:
            raise PrunebenchError(f"--verify: the data of protocol {protocol.name}: {exc}") from None
    measurer = measurers[protocol.hash]
    # (bfloat16 evaluation on CUDA follows the retraining recipe; every variant keeps the protocol's setting)
    measured = measurer.measure(
        state,
        record.target_sparsity,  # None for a cost target: its reduction is the record's, checked as the cost
        mixed_precision=protocol.retrain.mixed_precision,
        granularity=str(record.method.taxonomy.get("granularity", "unstructured")),
    )
    if measured.test is None or measured.val is None or measured.sparsity is None:
        return "the saved weights are not the protocol's architecture: " + "; ".join(measured.problems)
    assert record.metrics is not None and record.sparsity is not None
    one = 1 / max(1, measurer.data.test.num_examples if measurer.data.test is not None else 1)
    checks = [
        ("test top-1", record.metrics.test_top1, measured.test.top1, one),
        ("validation top-1", record.metrics.val_top1, measured.val.top1, 1 / measurer.data.val.num_examples),
        ("sparsity", record.sparsity.achieved, measured.sparsity.achieved, 0.0),
    ]
    if record.sparsity.effective is not None and measured.sparsity.effective is not None:  # older records have none
        checks.append(("effective sparsity", record.sparsity.effective, measured.sparsity.effective, 0.0))
    wrong = [
        f"{what} {100 * claimed:.2f}% in the record, {100 * real:.2f}% measured"
        for what, claimed, real, slack in checks
        if abs(claimed - real) > slack + 1e-12
    ]
    return "; ".join(wrong) if wrong else None
