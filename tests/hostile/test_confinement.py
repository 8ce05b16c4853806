"""The operating system's confinement of job processes (prunebench.confine), attack by attack: each cheat is a
method file of its own (tests/methods/fixtures/cheats/confine_*.py) run through the CLI; confined, none of them
has an effect; with confinement off (PRUNEBENCH_CONFINE=off, as on a system without it), every one of them
works, the run says so in one line, its records say `confined: false`, and `prunebench check` fails them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path

import pytest

from prunebench import confine
from prunebench.results import ResultRecord, load_result

pytestmark = pytest.mark.slow

CHEATS = Path(__file__).parents[1] / "methods" / "fixtures" / "cheats"
ATTACKS = ["write_outside", "read_private", "network", "leave_process", "carry_tmp", "rebuild_test_split"]
ATTACKS += ["reach_engine"]
PROTOCOL = textwrap.dedent(
    """\
    name: confinement
    data: {{name: digits, root: {data}}}
    model: {{name: small_cnn, args: {{width: 0.25}}}}
    base: {{epochs: 1, batch_size: 128, optimizer: {{lr: 0.1}}}}
    pruning: {{sparsities: [0.5, 0.9]}}
    retrain: {{epochs: 1, batch_size: 128, optimizer: {{lr: 0.05}}}}
    seeds: [0]
    runtime: {{job_timeout: 60}}
    methods:
    {methods}
    """
)


class Listener:
    """A TCP server on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                self.accepted += 1
                conn.close()

    def close(self) -> None:
        self.sock.close()


def processes_with(token: str) -> list[int]:
    """Processes whose environment holds `token` (every process of one run has it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if token.encode() in (entry / "environ").read_bytes():
                    state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
                    if state not in ("Z", "X"):
                        found.append(int(entry.name))
    return found


def run_attacks(tmp: Path, env: dict[str, str]) -> tuple[int, str, dict[str, list[ResultRecord]], dict]:
    results, cache, host_tmp, data = tmp / "r", tmp / "c", tmp / "host-tmp", tmp / "data"
    for folder in (host_tmp, data):
        folder.mkdir()
    (data / "secret.txt").write_text("the data root")
    methods = "\n".join(f"  - {{name: '{CHEATS / f'confine_{a}'}.py:Cheat', label: {a}}}" for a in ATTACKS)
    protocol = tmp / "confinement.yaml"
    protocol.write_text(PROTOCOL.format(data=data, methods=methods))
    listener = Listener()
    token = uuid.uuid4().hex
    targets = {
        "write": [str(results), str(cache), str(host_tmp)],
        "read": [str(results), str(cache), str(data)],
        "port": listener.port,
        "token": token,
    }
    command = [sys.executable, "-m", "prunebench.cli", "run", str(protocol), "--results", str(results)]
    done = subprocess.run(
        [*command, "--cache", str(cache), "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **env, "OMP_NUM_THREADS": "1", "CONFINE_TARGETS": json.dumps(targets)},
        cwd=tmp,
    )
    listener.close()
    left = processes_with(token)
    for pid in left:  # unconfined, the daemon outlives the run: not this test's either
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    records: dict[str, list[ResultRecord]] = {}
    for path in sorted(results.rglob("sparsity-*.json")):
        record = load_result(path)
        records.setdefault(record.method.label, []).append(record)
    facts = {"accepted": listener.accepted, "left": left, "planted": sorted(p.name for p in tmp.rglob("planted-*"))}
    return done.returncode, done.stderr + done.stdout, records, facts


def notes(records: dict[str, list[ResultRecord]], label: str, key: str) -> list:
    return [r.method.notes.get(key) for r in records[label]]


needs_confinement = pytest.mark.skipif(confine.unavailable() is not None, reason=f"{confine.unavailable()}")


@pytest.fixture(scope="module")
def confined(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, dict, dict]:
    return run_attacks(tmp_path_factory.mktemp("confined"), {})


@needs_confinement
def test_every_job_ran_confined_and_ok(confined: tuple[int, str, dict, dict]) -> None:
    code, output, records, _ = confined
    assert code == 0, output[-3000:]
    assert "unconfined" not in output
    assert sorted(records) == sorted(ATTACKS), output[-3000:]
    for label in ATTACKS:
        assert [(r.status, r.provenance.confined) for r in records[label]] == [("ok", True)] * 2, label


@needs_confinement
def test_nothing_is_written_outside_the_scratch(confined: tuple[int, str, dict, dict]) -> None:
    _, _, records, facts = confined
    assert notes(records, "write_outside", "written") == ["[]", "[]"]
    assert facts["planted"] == []


@needs_confinement
def test_results_cache_and_data_are_invisible(confined: tuple[int, str, dict, dict]) -> None:
    _, _, records, _ = confined
    for seen in notes(records, "read_private", "seen"):
        assert set(json.loads(seen).values()) == {0}, seen  # not one file, not even through the server's root


def digits_test_split() -> str:
    """What the rebuilding attack notes when it rebuilds the test split the runner measures on."""
    import hashlib

    from prunebench.data import load_data
    from prunebench.protocol import DataSpec

    test = load_data(DataSpec(name="digits")).test
    assert test is not None
    return f"{test.num_examples} {hashlib.sha256(test.labels.numpy().tobytes()).hexdigest()[:16]}"


@needs_confinement
def test_the_test_split_cannot_be_rebuilt_from_installed_files(confined: tuple[int, str, dict, dict]) -> None:
    """scikit-learn's digits file (and every other data set's files on the machine) is hidden: load_digits fails
    in the job, and the method picks its masks on nothing."""
    _, _, records, _ = confined
    assert notes(records, "rebuild_test_split", "test_split") == [0, 0]
    assert notes(records, "rebuild_test_split", "picked") == [None, None]
    assert all(why for why in notes(records, "rebuild_test_split", "why"))


@pytest.mark.parametrize("mode", ["on", "off"])
def test_loading_methods_sees_no_data_set_either(tmp_path: Path, mode: str) -> None:
    """The job process that loads a protocol's methods (`prunebench validate`: no runner hid anything before it)
    cannot read scikit-learn's digits either; unconfined it can."""
    if mode == "on" and confine.unavailable() is not None:
        pytest.skip(str(confine.unavailable()))
    protocol = tmp_path / "describe.yaml"
    method = f"  - {{name: '{CHEATS / 'confine_describe_reads_digits.py'}:Cheat'}}"
    protocol.write_text(PROTOCOL.format(data=tmp_path, methods=method))
    done = subprocess.run(
        [sys.executable, "-m", "prunebench.cli", "validate", str(protocol)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PRUNEBENCH_CONFINE": mode},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"label: describe_saw_{0 if mode == 'on' else 1797}" in done.stdout, done.stdout[-2000:]


@needs_confinement
def test_no_network(confined: tuple[int, str, dict, dict]) -> None:
    _, _, records, facts = confined
    assert all(n.startswith("no: ") for n in notes(records, "network", "connected"))
    assert facts["accepted"] == 0


@needs_confinement
def test_no_process_outlives_its_job(confined: tuple[int, str, dict, dict]) -> None:
    _, _, records, facts = confined
    assert notes(records, "leave_process", "daemons") == [0, 0]  # the second job sees no daemon of the first
    assert facts["left"] == []


@needs_confinement
def test_no_process_of_the_sandbox_reaches_anothers_memory(confined: tuple[int, str, dict, dict]) -> None:
    _, _, records, _ = confined
    assert notes(records, "reach_engine", "reached") == [0, 0]  # not the engine's process, not the fork server


@needs_confinement
def test_nothing_carries_over_through_tmp(confined: tuple[int, str, dict, dict]) -> None:
    _, _, records, _ = confined
    assert notes(records, "carry_tmp", "stored") == [2, 2]  # the scratch is writable...
    assert notes(records, "carry_tmp", "found") == [0, 0]  # ...and the next job's is a fresh one
    assert not Path("/tmp/prunebench-carried").exists()


def test_unconfined_the_attacks_work_and_the_records_fail_check(tmp_path: Path) -> None:
    """What the tests above would see without confinement: each attack works; one line says so; check fails."""
    code, output, records, facts = run_attacks(tmp_path, {"PRUNEBENCH_CONFINE": "off"})
    with contextlib.suppress(FileNotFoundError):
        os.unlink("/tmp/prunebench-carried")
    with contextlib.suppress(FileNotFoundError):
        os.unlink("/dev/shm/prunebench-carried")
    assert code == 0, output[-3000:]
    lines = [line for line in output.splitlines() if line.startswith("prunebench:")]
    assert lines == [
        "prunebench: job processes run unconfined (PRUNEBENCH_CONFINE=off): their records say confined: false"
    ]
    assert {r.provenance.confined for rs in records.values() for r in rs} == {False}
    assert len(facts["planted"]) == 8  # results, cache, host /tmp, working directory: twice each
    assert all(json.loads(seen)[str(tmp_path / "data")] == 1 for seen in notes(records, "read_private", "seen"))
    assert facts["accepted"] == 2
    assert notes(records, "leave_process", "daemons") == [0, 1]  # (the run ends once it has: it holds its pipes)
    assert notes(records, "carry_tmp", "found") == [0, 2]
    assert all(n >= 1 for n in notes(records, "reach_engine", "reached"))  # root with every capability: any process
    assert notes(records, "rebuild_test_split", "test_split") == [digits_test_split()] * 2  # the runner's very split
    assert all(picked.startswith(tuple("0123")) for picked in notes(records, "rebuild_test_split", "picked"))
    check = subprocess.run(
        [sys.executable, "-m", "prunebench.cli", "check", str(tmp_path / "r"), "--reference", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert check.returncode != 0
    assert "FAIL" in check.stdout and "ran unconfined" in check.stdout


@needs_confinement
def test_records_are_the_same_confined_or_not(tmp_path: Path) -> None:
    """Confinement changes where a job's process runs, never what it computes: the records of TINY, but for their
    provenance (times, `confined`) and its digest, are bit-identical (the weights too: their sha256)."""
    from prunebench.testing import TINY

    protocol = tmp_path / "tiny.yaml"
    protocol.write_text(TINY)
    runs = {}
    for mode in ("on", "off"):
        command = [sys.executable, "-m", "prunebench.cli", "run", str(protocol), "--results", str(tmp_path / mode)]
        done = subprocess.run(
            [*command, "--cache", str(tmp_path / "c"), "--device", "cpu"],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "OMP_NUM_THREADS": "1", "PRUNEBENCH_CONFINE": mode},
        )
        assert done.returncode == 0, done.stderr[-3000:]
        runs[mode] = {}
        for path in sorted((tmp_path / mode).rglob("sparsity-*.json")):
            record = json.loads(path.read_text())
            record.pop("digest"), record.pop("mac")  # of the whole record, provenance included
            runs[mode][str(path.relative_to(tmp_path / mode))] = (record.pop("provenance")["confined"], record)
    assert len(runs["on"]) == 6 and runs["on"].keys() == runs["off"].keys()
    for name, (confined, record) in runs["on"].items():
        assert confined is True and runs["off"][name] == (False, record), name
