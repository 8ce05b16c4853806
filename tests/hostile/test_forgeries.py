"""Methods whose job process forges the files the runner takes decisions from (tests/methods/fixtures/cheats/),
run through the CLI as a user runs them: each one found its paths from the runner's command line, as a cheater
would. Before records, leases and checkpoints were sealed with the cache's integrity key
(prunebench.results.integrity), each of these was recorded `ok` with a top-1 the method never reached (or, for the
squatted lease, the run waited for ever); now the runner's records are the honest ones.

A stage checkpoint forged with a recomputed sha256 (to launder privately trained weights through a resume) is
shown refused directly, as the job would write it, in tests/run/test_integrity.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from prunebench.results import IntegrityKey, ResultRecord, load_checked, record_domain, record_sealed

pytestmark = pytest.mark.slow

CHEATS = Path(__file__).parents[1] / "methods" / "fixtures" / "cheats"
PROTOCOL = textwrap.dedent(
    """\
    name: forgeries
    data: {{name: digits}}
    model: {{name: small_cnn, args: {{width: 0.25}}}}
    base: {{epochs: 2, batch_size: 128, optimizer: {{lr: 0.1}}}}
    pruning: {{sparsities: {sparsities}}}
    retrain: {{epochs: 1, batch_size: 128, optimizer: {{lr: 0.05}}}}
    seeds: [0]
    runtime: {{job_timeout: 60}}
    methods:
    {methods}
    """
)


def run(tmp: Path, cache: Path, methods: list[str], sparsities: str, timeout: float = 300) -> tuple[str, dict]:
    """`prunebench run` in a process of its own: (its output, the records by job id, each with whether the cache's
    key seals it)."""
    entries = [
        f"  - {{name: global_magnitude, label: {m}}}" if m == "honest" else f"  - {{name: '{CHEATS / m}.py:Cheat'}}"
        for m in methods
    ]
    protocol = tmp / "forgeries.yaml"
    protocol.write_text(PROTOCOL.format(sparsities=sparsities, methods="\n".join(entries)))
    command = [sys.executable, "-m", "prunebench.cli", "run", str(protocol), "--results", str(tmp / "r")]
    done = subprocess.run(
        [*command, "--cache", str(cache), "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp,  # no shipped dense model
        # Unconfined: these forgeries test the keyed seals themselves (a confined job cannot even see the files it
        # would forge: tests/hostile/test_confinement.py).
        env={**os.environ, "OMP_NUM_THREADS": "1", "PRUNEBENCH_CONFINE": "off"},
    )
    key = IntegrityKey.of_cache(cache, create=False)
    records: dict[str, tuple[ResultRecord, bool]] = {}
    for path in sorted((tmp / "r").rglob("sparsity-*.json")):
        record, intact = load_checked(path)
        sealed = bool(intact) and record_sealed(record, key, record_domain(path.parents[1].name, record.job_id))
        records[record.job_id] = (record, sealed)
    return done.stderr + done.stdout, records


def _top1(record: ResultRecord) -> float:
    assert record.metrics is not None
    return record.metrics.test_top1


def test_a_job_that_forges_its_record_and_its_lease_gets_the_runners_record(tmp_path: Path) -> None:
    output, records = run(tmp_path, tmp_path / "c", ["honest", "forge_own_record"], "[0.5]")
    forged, sealed = records["forge_own_record/sparsity-0.5_seed-0"]
    honest, _ = records["honest/sparsity-0.5_seed-0"]
    assert sealed and _top1(forged) != 0.999, output[-3000:]
    assert forged.weights_sha256 == honest.weights_sha256 and _top1(forged) == _top1(honest)
    assert "holds no record sealed by a worker of this cache" in " ".join(output.split())


def test_a_job_that_writes_the_record_of_a_later_job_does_not_skip_it(tmp_path: Path) -> None:
    output, records = run(tmp_path, tmp_path / "c", ["honest", "forge_later_record"], "[0.5, 0.9]")
    later, sealed = records["forge_later_record/sparsity-0.9_seed-0"]
    honest, _ = records["honest/sparsity-0.9_seed-0"]
    assert sealed and _top1(later) != 0.999, output[-3000:]
    assert later.weights_sha256 == honest.weights_sha256 and "done by another worker" not in output


def test_a_job_that_squats_the_lease_of_the_next_job_delays_nothing(tmp_path: Path) -> None:
    # Before leases were sealed, the squatted lease (renewed far into the future) held the run for ever.
    output, records = run(tmp_path, tmp_path / "c", ["squat_next_lease"], "[0.5, 0.9]", timeout=240)
    later, sealed = records["squat_next_lease/sparsity-0.9_seed-0"]
    assert sealed and later.status == "ok", output[-3000:]
    assert not list((tmp_path / "r").rglob("*.lease"))


def test_a_job_that_poisons_the_dense_cache_poisons_no_later_run(tmp_path: Path) -> None:
    cache = tmp_path / "c"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _, poisoned = run(tmp_path / "a", cache, ["honest", "poison_dense_cache"], "[0.5]")
    second, records = run(tmp_path / "b", cache, ["honest"], "[0.5]")
    before, _ = poisoned["honest/sparsity-0.5_seed-0"]
    after, sealed = records["honest/sparsity-0.5_seed-0"]
    assert sealed and after.base is not None and before.base is not None, second[-3000:]
    assert "does not verify; training it again" in second, second[-3000:]
    assert after.base.checkpoint_sha256 == before.base.checkpoint_sha256  # retrained: the very same model
    assert after.weights_sha256 == before.weights_sha256 and after.metrics == before.metrics
