"""`prunebench export`: a job's pruned model as a file another program can run, checked by running it.

The model is the one the record was measured on: its saved weights (`run --save-models`, verified by the
record's sha256) in the protocol's architecture, physically compacted when the method prunes whole filters
(prunebench.efficiency.compact), else the masked model with its zeros. `pt` is a `torch.export` program
(`torch.export.load(FILE).module()` runs it, no prunebench needed); `onnx` is ONNX through torch's exporter.
The export is loaded back (ONNX by onnxruntime) and must predict the same classes as the record's model on
the first test batches; a file that does not is removed, and the command fails.
"""

from __future__ import annotations

import importlib.util
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from prunebench.data import load_data
from prunebench.efficiency import CompactionError, compact
from prunebench.errors import PrunebenchError
from prunebench.results import RunDirectory, describe_os_error, load_result
from prunebench.run.dense.cache import weights_sha256
from prunebench.run.measurement.measure import Measurer
from prunebench.run.measurement.verify import run_directory_of

Format = Literal["pt", "onnx"]
FORMATS: tuple[Format, ...] = ("pt", "onnx")
ONNX_PACKAGES = ("onnx", "onnxruntime", "onnxscript")
CHECK_BATCHES, CHECK_BATCH = 4, 64
MARGIN = 1e-3  # a prediction whose top two logits lie closer than this may flip in another runtime's arithmetic


class ExportError(PrunebenchError):
    pass


@dataclass
class Exported:
    path: Path
    kind: Literal["compacted", "masked"]
    params: int
    checked: int  # test examples whose predicted class was compared
    max_abs_diff: float  # of the logits, between the export and the record's model


def check_format(fmt: str) -> None:
    """Before any work: the packages the format needs are installed."""
    missing = [p for p in ONNX_PACKAGES if importlib.util.find_spec(p) is None] if fmt == "onnx" else []
    if missing:
        raise ExportError(
            f"--format onnx needs {', '.join(missing)}, which is not installed: pip install 'prunebench[onnx]'"
        )


def export(record_file: Path, fmt: Format, output: Path) -> Exported:
    check_format(fmt)
    try:
        record = load_result(record_file)
    except (OSError, ValueError) as exc:
        raise ExportError(f"{record_file}: {str(exc).splitlines()[0][:200]}") from None
    found = run_directory_of(record_file)
    if found is None:
        raise ExportError(f"{record_file}: no protocol.json of its run directory, so no architecture to export")
    run_dir, protocol = found
    if record.weights_sha256 is None or record.metrics is None:
        raise ExportError(f"{record_file}: the record has no measured final weights (status {record.status})")
    model_file = RunDirectory(run_dir).model_path(record.job_id)
    if not model_file.is_file():
        raise ExportError(f"{record_file}: no saved weights at {model_file}; run it again with --save-models")
    state = torch.load(model_file, map_location="cpu", weights_only=True)
    if weights_sha256(state) != record.weights_sha256:
        raise ExportError(f"{model_file}: not the weights the record was measured on (sha256 differs)")
    measurer = Measurer(protocol, load_data(protocol.data), torch.device("cpu"))
    problems = measurer.load(state)
    if problems:
        raise ExportError(f"{model_file}: {problems[0]}")
    reference = measurer.model.eval()
    batch = measurer.check_batch()
    model: nn.Module = reference
    kind: Literal["compacted", "masked"] = "masked"
    if record.method.taxonomy.get("granularity") == "filter":
        try:
            model, kind = compact(reference, batch).model, "compacted"
        except CompactionError as exc:
            raise ExportError(f"{record_file}: the pruned model cannot be compacted: {exc}") from None
    _write(model, batch, fmt, output)
    try:
        run = _loaded(output, fmt)
        checked, diff = _same_classes(run, reference, measurer)
    except Exception:
        output.unlink(missing_ok=True)
        raise
    return Exported(output, kind, sum(p.numel() for p in model.parameters()), checked, diff)


def _write(model: nn.Module, example: Tensor, fmt: Format, output: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=65536)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "pt":
            program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
            buffer = io.BytesIO()  # (torch.export.save warns about a file name not ending in .pt2)
            torch.export.save(program, buffer)
            tmp.write_bytes(buffer.getvalue())
        else:
            # One self-contained file (weights inside, not beside it): ONNX's limit of 2 GiB is far above these.
            torch.onnx.export(
                model, (example,), tmp, dynamo=True, dynamic_shapes=({0: batch},), external_data=False, verbose=False
            )
        os.replace(tmp, output)
    except OSError as exc:
        raise ExportError(f"cannot write {output} ({describe_os_error(exc)})") from None
    finally:
        tmp.unlink(missing_ok=True)


def _loaded(path: Path, fmt: Format):  # type: ignore[no-untyped-def]
    """A function from an input batch to logits, running the file as its consumer would."""
    if fmt == "pt":
        module = torch.export.load(io.BytesIO(path.read_bytes())).module()  # any file name, not only .pt2
        return lambda x: module(x).detach()
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])


def _same_classes(run, reference: nn.Module, measurer: Measurer) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    assert measurer.data.test is not None
    checked, diff = 0, 0.0
    batches = measurer.data.test.batches(CHECK_BATCH, shuffle=False, train=False, generator=None, device="cpu")
    for i, (x, _) in enumerate(batches):
        if i == CHECK_BATCHES:
            break
        with torch.no_grad():
            want = reference(x).float()
        got = run(x).float()
        top2 = want.topk(2, dim=1).values
        clear = (top2[:, 0] - top2[:, 1]) > MARGIN
        wrong = int(((got.argmax(1) != want.argmax(1)) & clear).sum())
        if wrong:
            raise ExportError(f"the export predicts another class than the record's model for {wrong} test example(s)")
        checked += x.shape[0]
        diff = max(diff, float((got - want).abs().max()))
    return checked, diff
