"""Storage and process faults: one clear line and a non-zero exit, every finished result kept, no temporary file
left behind, none of another run's deleted, files readable by the team (the umask's mode)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import prunebench.results.files as files
from prunebench.protocol import load_protocol
from prunebench.report.listing import run_directories
from prunebench.results import load_result, write_atomic
from prunebench.results.files import ensure_writable, remove_stale_temporaries
from prunebench.run import Runner, plan
from prunebench.run.leases import Claims
from prunebench.run.measurement.verify import _record_files
from prunebench.testing import TINY

SLOW = TINY.replace("retrain: {epochs: 1,", "retrain: {epochs: 8,")  # long enough to be interrupted mid-grid


def one_error_line(text: str) -> str:
    # Where jobs cannot be confined (no bubblewrap), a run says so first: a notice, not part of the error.
    notice = "prunebench: job processes run unconfined ("
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith(notice)]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in text, text[-3000:]
    return " ".join(text.split())


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A real 3 MiB filesystem (tmpfs), so that writes run out of space; skipped where mounting is not allowed."""
    mount = tmp_path / "small"
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_result_file_replaced_by_a_directory(tiny_protocol: Path, tmp_path: Path, shared_cache: Path, cli) -> None:  # type: ignore[no-untyped-def]
    results = tmp_path / "r"
    assert cli("run", tiny_protocol, "--results", results, "--cache", shared_cache, "--device", "cpu").code == 0
    files = sorted(results.rglob("sparsity-*.json"))
    files[2].unlink()
    files[2].mkdir()  # a directory where a result belongs
    result = cli("run", tiny_protocol, "--results", results, "--cache", shared_cache, "--device", "cpu", "--force")
    assert result.code == 2
    message = one_error_line(result.err)
    assert str(files[2]) in message and "kept" in message
    assert [load_result(f).status for f in files if f != files[2]] == ["ok"] * 5  # the others are still there


def test_results_pointing_at_a_file(tiny_protocol: Path, tmp_path: Path, shared_cache: Path, cli) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "afile").write_text("not a folder")
    result = cli("run", tiny_protocol, "--results", tmp_path / "afile", "--cache", shared_cache)
    assert result.code == 2 and "--results" in one_error_line(result.err)
    assert (tmp_path / "afile").read_text() == "not a folder"


def test_a_read_only_results_folder(tiny_protocol: Path, small_filesystem: Path, shared_cache: Path, cli) -> None:  # type: ignore[no-untyped-def]
    subprocess.run(["mount", "-o", "remount,ro", str(small_filesystem)], check=True)
    result = cli("run", tiny_protocol, "--results", small_filesystem / "r", "--cache", shared_cache)
    assert result.code == 2
    assert "--results" in (message := one_error_line(result.err)) and "Read-only file system" in message


def test_a_lease_folder_on_a_read_only_path(
    tiny_protocol: Path, small_filesystem: Path, shared_cache: Path, tmp_path: Path, cli
) -> None:  # type: ignore[no-untyped-def]
    """The run directory can be written, the folder the leases go to (claims/, here a link to a read-only file
    system) cannot: one line naming it, before any training."""
    run_dir = tmp_path / "r" / load_protocol(tiny_protocol).run_name
    run_dir.mkdir(parents=True)
    (run_dir / "claims").symlink_to(small_filesystem)
    subprocess.run(["mount", "-o", "remount,ro", str(small_filesystem)], check=True)
    result = cli("run", tiny_protocol, "--results", tmp_path / "r", "--cache", shared_cache)
    message = one_error_line(result.err)
    assert result.code == 2 and "claims/" in message and "Read-only file system" in message
    assert not list(run_dir.rglob("sparsity-*.json"))


def test_a_full_disk_keeps_the_finished_results(
    tiny_protocol: Path, small_filesystem: Path, shared_cache: Path, cli
) -> None:  # type: ignore[no-untyped-def]
    # The dense model is cached elsewhere; the results fill the small filesystem after a few jobs.
    ballast = small_filesystem / "ballast"
    with open(ballast, "wb") as f:
        f.write(b"\0" * (3 * 1024 * 1024 - 20 * 1024))  # room for protocol.json and a record or two
    result = cli("run", tiny_protocol, "--results", small_filesystem / "r", "--cache", shared_cache)
    assert result.code == 2
    message = one_error_line(result.err)
    assert "no space left on the device" in message and "run the same command again to resume" in message
    kept = list((small_filesystem / "r").rglob("sparsity-*.json"))
    assert all(load_result(f).status == "ok" for f in kept)
    assert not list((small_filesystem / "r").rglob("*.tmp"))


def test_a_full_cache_is_one_line_too(tiny_protocol: Path, small_filesystem: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    with open(small_filesystem / "ballast", "wb") as f:
        f.write(b"\0" * (3 * 1024 * 1024 - 8 * 1024))
    result = cli("run", tiny_protocol, "--results", tmp_path / "r", "--cache", small_filesystem / "c")
    assert result.code == 2
    message = one_error_line(result.err)
    assert "no space left" in message or "--cache" in message
    assert not list(small_filesystem.rglob("*.tmp"))


def test_files_are_created_with_the_umask_mode(tiny_protocol: Path, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        p = load_protocol(tiny_protocol)
        runner = Runner(p, results_dir=tmp_path / "r", cache_dir=tmp_path / "c", device="cpu")
        runner.run(plan(p, methods=["random"], sparsities=[0.5]))
    finally:
        os.umask(old)
    written = [*(tmp_path / "r").rglob("*.json"), *(tmp_path / "c").rglob("*.pt")]
    assert len(written) == 3 and {oct(f.stat().st_mode & 0o777) for f in written} == {"0o644"}


def test_cleanup_removes_only_the_temporaries_of_writers_that_are_gone(tmp_path: Path) -> None:
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        import prunebench.results.files as files

        host = files.HOST
        theirs = tmp_path / f".sparsity-0.5_seed-0.json.{host}.{live.pid}.abc123.tmp"
        killed = tmp_path / f".sparsity-0.9_seed-0.json.{host}.{dead.pid}.def456.tmp"
        theirs.write_text("a live run writing")
        killed.write_text("half a record")
        assert remove_stale_temporaries(tmp_path) == 1
        assert theirs.exists() and not killed.exists()
    finally:
        live.kill()
        live.wait()


def test_a_second_run_does_not_delete_a_live_runs_temporaries(tiny_protocol: Path, tmp_path: Path) -> None:
    """A real write in flight: a process holds a temporary file open (a killed write leaves the same name)."""
    target = tmp_path / "r" / "x.json"
    target.parent.mkdir(parents=True)
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, tempfile, time, os, socket; "
            "h = socket.gethostname().replace('.', '-') or 'host'; "
            f"fd, n = tempfile.mkstemp(dir={str(target.parent)!r}, "
            "prefix='.x.json.' + h + '.' + str(os.getpid()) + '.', suffix='.tmp'); "
            "print(n, flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        tmp = Path(writer.stdout.readline().strip())  # type: ignore[union-attr]
        assert tmp.exists()
        assert remove_stale_temporaries(tmp_path) == 0 and tmp.exists()
        writer.kill()
        writer.wait()
        assert remove_stale_temporaries(tmp_path) == 1 and not tmp.exists()
    finally:
        writer.kill()
        writer.wait()


def test_a_write_that_fails_leaves_no_temporary(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        write_atomic(tmp_path / "x.json", object())  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("change", ["init state", "a bit of the final weights", "the cached accuracy"])
def test_a_tampered_dense_checkpoint_is_never_used(change: str, tiny_protocol: Path, tmp_path: Path) -> None:
    p = load_protocol(tiny_protocol)
    jobs = plan(p, methods=["global_magnitude"], sparsities=[0.5])
    runner = Runner(p, results_dir=tmp_path / "r", cache_dir=tmp_path / "c", device="cpu")
    (first,) = runner.run(jobs)
    path, _ = runner.cache.locate(0)
    blob = torch.load(path, weights_only=True)
    if change == "init state":
        name = next(iter(blob["states"]["init"]))
        blob["states"]["init"][name] = blob["states"]["init"][name] + 1
    elif change == "a bit of the final weights":
        name = next(iter(blob["states"]["final"]))
        flat = blob["states"]["final"][name].view(-1).view(torch.int32)
        flat[0] ^= 1
    else:
        blob["meta"]["test"]["top1"] = 0.999
    torch.save(blob, path)
    again = Runner(p, results_dir=tmp_path / "r", cache_dir=tmp_path / "c", device="cpu", force=True)
    with pytest.warns(UserWarning, match="does not verify; training it again"):
        (second,) = again.run(jobs)
    assert second.base == first.base  # retrained, bit for bit, rather than trusted


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_ends_the_run_with_a_message_and_keeps_what_finished(
    sig: signal.Signals, code: int, tmp_path: Path, shared_cache: Path
) -> None:
    proc, results = _slow_run_with_a_result(tmp_path, shared_cache)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    flat = " ".join(err.split())
    assert f"interrupted by {sig.name}" in flat and "run the same command again to resume" in flat.lower()
    finished = list(results.rglob("sparsity-*.json"))
    assert finished and all(json.loads(f.read_text())["status"] == "ok" for f in finished)
    assert not list(results.rglob("*.tmp"))


def _slow_run_with_a_result(tmp_path: Path, cache: Path, **popen: Any) -> tuple[subprocess.Popen[str], Path]:
    """A run of the slow grid, once its first job's record is written (mid-grid): the process, and its results."""
    protocol = tmp_path / "slow.yaml"
    protocol.write_text(SLOW)
    results = tmp_path / "r"
    cmd = [sys.executable, "-m", "prunebench", "run", str(protocol), "--results", str(results)]
    proc = subprocess.Popen(
        [*cmd, "--cache", str(cache), "--device", "cpu"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        preexec_fn=_default_sigint,
        **popen,
    )
    deadline = time.time() + 300
    while time.time() < deadline and len(list(results.rglob("sparsity-*.json"))) < 1:
        time.sleep(0.05)
    return proc, results


def _default_sigint() -> None:
    """Ctrl-C as a terminal delivers it: a shell that starts the tests in the background (`&` without job control)
    has them ignore SIGINT, and a command started from there would ignore it too."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _session(sid: int) -> list[int]:
    """The processes of a session (Linux /proc), e.g. everything a command started, its job processes too."""
    out = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rpartition(")")[2].split()[3]) == sid:
                out.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c", "kill -9"])
def test_no_process_outlives_the_run(how: str, tmp_path: Path, shared_cache: Path) -> None:
    """Ctrl-C sends SIGINT to the whole foreground process group: the runner ends the job process (in a group of
    its own, it never sees the signal) and says what was kept. SIGKILL gives the runner no say: its fork server
    sees it gone, and a job process dies with the fork server. Either way nothing the run started outlives it."""
    proc, _ = _slow_run_with_a_result(tmp_path, shared_cache, start_new_session=True)  # a terminal's session
    assert len(_session(proc.pid)) >= 3  # the runner, the fork server, a job process
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.kill()
    _, err = proc.communicate(timeout=120)
    if how == "ctrl-c":
        assert proc.returncode == 130 and "interrupted by SIGINT" in " ".join(err.split()), err[-2000:]
    deadline = time.time() + 30
    while time.time() < deadline and _session(proc.pid):
        time.sleep(0.1)
    assert _session(proc.pid) == []


def _claim_and_release(claims: Path, stop: threading.Event, errors: list[BaseException]) -> None:
    """Another worker on the same results directory: claims a job, releases it and removes its empty claims/."""
    worker = Claims(claims, ttl=3600)
    try:
        while not stop.is_set():
            if worker.claim("m/sparsity-0.5_seed-0") is not None:
                worker.release("m/sparsity-0.5_seed-0")
            worker.remove_folder_if_empty()
    except BaseException as exc:  # reported by the test: an exception cannot fail it from a thread
        errors.append(exc)


def test_start_up_survives_another_worker_removing_its_claims_folder(tmp_path: Path) -> None:
    """The start-up's checks and cleanup (Runner.run) while another worker creates and removes claims/: a real
    race, bounded in count and time. The old code lost it within a few dozen tries: "cannot write there" from the
    check, FileNotFoundError from the cleanup's rglob, FileExistsError from the claim's mkdir."""
    run_dir = tmp_path / "r" / "tiny"
    (run_dir / "m").mkdir(parents=True)
    stop, errors = threading.Event(), []
    other = threading.Thread(target=_claim_and_release, args=(run_dir / "claims", stop, errors), daemon=True)
    other.start()
    try:
        deadline = time.monotonic() + 10
        for _ in range(2000):
            ensure_writable(run_dir / "claims", "--results (its claims/ folder)")
            assert remove_stale_temporaries(run_dir) == 0
            if time.monotonic() > deadline or errors:
                break
    finally:
        stop.set()
        other.join(10)
    assert not other.is_alive() and errors == []


class _Listed:
    """A folder's entries, read at once, as os.scandir's iterator gives them."""

    def __init__(self, entries: list[os.DirEntry[str]]) -> None:
        self.entries = iter(entries)

    def __iter__(self) -> _Listed:
        return self

    def __next__(self) -> os.DirEntry[str]:
        return next(self.entries)

    def __enter__(self) -> _Listed:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def close(self) -> None:
        pass


def _removed_once_listed(monkeypatch: pytest.MonkeyPatch, parent: Path, removed: Path) -> None:
    """Another worker claims and releases a job each time `parent` is listed: `removed` (its claims/) is in the
    listing, and gone right after it."""
    scandir = os.scandir

    def listed_then_removed(path: Any = ".") -> _Listed:
        if Path(path) == parent:
            removed.mkdir(exist_ok=True)
        with scandir(path) as entries:
            listed = _Listed(list(entries))
        if Path(path) == parent:
            removed.rmdir()
        return listed

    monkeypatch.setattr(os, "scandir", listed_then_removed)


def test_cleanup_skips_a_folder_removed_while_it_walks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race at the function level, every time: claims/ is removed between the listing of the run directory
    and the listing of claims/ itself; the temporary file of a killed writer elsewhere is still removed."""
    (tmp_path / "claims").mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    killed = tmp_path / "m" / f".x.json.{files.HOST}.{int(dead.stdout)}.abc123.tmp"
    killed.parent.mkdir()
    killed.write_text("half a record")
    _removed_once_listed(monkeypatch, tmp_path, tmp_path / "claims")
    assert remove_stale_temporaries(tmp_path) == 1 and not killed.exists()


@pytest.mark.parametrize("depth", [1, 2])
def test_listing_runs_skips_a_folder_removed_while_it_looks(
    depth: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ls`, `status`, `verify` look through run directories while workers run in them: claims/ may go. (A run
    directory deeper than MAX_DEPTH is still not listed.)"""
    root = tmp_path / "results"
    run_dir = root.joinpath(*["tiny"] * depth)
    (root / "a" / "b" / "c" / "too-deep").mkdir(parents=True)
    (root / "a" / "b" / "c" / "too-deep" / "protocol.json").write_text("{}")
    (run_dir / "claims").mkdir(parents=True)
    (run_dir / "protocol.json").write_text("{}")
    (run_dir / "m" / "sparsity-0.5_seed-0.json").parent.mkdir()
    (run_dir / "m" / "sparsity-0.5_seed-0.json").write_text("{}")
    _removed_once_listed(monkeypatch, run_dir, run_dir / "claims")
    assert run_directories([root]) == [run_dir]
    assert _record_files([root]) == [run_dir / "m" / "sparsity-0.5_seed-0.json"]


def test_a_folder_removed_while_it_is_made_is_made_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another worker removes the folder between Path.mkdir's finding it there and checking it is a directory
    (FileExistsError), and between its creation and the write that checks it (FileNotFoundError): the check and
    the claim make it again."""
    folder = tmp_path / "claims"
    mkdir, mkstemp = os.mkdir, files.tempfile.mkstemp
    races = {"mkdir": 0, "mkstemp": 0}

    def found_then_removed(path: Any, mode: int = 0o777) -> None:
        if Path(path) == folder and races["mkdir"]:
            races["mkdir"] -= 1
            mkdir(path, mode)  # it was there ...
            os.rmdir(path)  # ... and is gone before mkdir looks again
            raise FileExistsError(errno.EEXIST, "File exists", str(path))
        mkdir(path, mode)

    def removed_then_written(**kwargs: Any) -> tuple[int, str]:
        if races["mkstemp"]:
            races["mkstemp"] -= 1
            folder.rmdir()
        return mkstemp(**kwargs)

    monkeypatch.setattr(os, "mkdir", found_then_removed)
    monkeypatch.setattr(files.tempfile, "mkstemp", removed_then_written)
    races.update(mkdir=1, mkstemp=1)
    ensure_writable(folder, "--results (its claims/ folder)")
    assert folder.is_dir() and races == {"mkdir": 0, "mkstemp": 0}
    folder.rmdir()
    races.update(mkdir=1)
    lease = Claims(folder).claim("m/sparsity-0.5_seed-0")
    assert lease is not None and lease.path.exists() and races["mkdir"] == 0
    Claims(folder).release_all()
    lease.release()
