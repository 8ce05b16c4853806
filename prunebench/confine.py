"""The operating system's confinement of job processes (Linux: bubblewrap and namespaces).

The fork server every job process starts from (prunebench.forkserver) runs under `bwrap`: the file system
read-only, no network (a network namespace of its own: only an unconfigured loopback), a PID namespace of its own
whose init is the server itself (`--as-pid-1`: no process of the sandbox can see, signal or trace the runner or
any other process of the machine), its own IPC namespace, a session of its own, dying with the runner. The server
keeps the capabilities of its (user) namespace so that each job process, before it runs a method's code
(`enter_job`), can give itself a mount namespace of its own: a fresh tmpfs on /tmp and /dev/shm (its private
scratch: the next job gets fresh ones, so nothing carries over through a file), and an empty read-only tmpfs over
the results directory, the cache and the protocol's data root (`hide`), which it can then neither read nor write;
it then drops every capability for good (bounding set, no_new_privs) so that it cannot undo any of it, and is not
dumpable, so that no process of the sandbox can reach another's files through /proc/PID/root. Once a job ends, the
runner kills every process left in the sandbox but the server (`leftovers`): a daemon that left the job's process
group with setsid dies with the job.

Where this is not available (another OS, bwrap missing, a container that forbids namespaces, PRUNEBENCH_CONFINE=off)
job processes run as before, and their records say `confined: false`.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ENV_SWITCH = "PRUNEBENCH_CONFINE"  # "off": never confine
ENV_INSIDE = "PRUNEBENCH_CONFINED"  # set inside the sandbox, for the job processes
SCRATCH_SIZE = "size=50%"  # of the machine's memory, each of /tmp and /dev/shm

_hidden: list[str] = []


def hide(*paths: Path | str | None) -> None:
    """Paths no job process may read or write (the results directory, the cache, data roots)."""
    for path in paths:
        if path is not None:
            text = str(Path(path).expanduser().absolute())
            if text not in _hidden:
                _hidden.append(text)


def hidden() -> tuple[str, ...]:
    return tuple(_hidden)


def _bwrap_args(executable: str) -> list[str]:
    args = [
        "--unshare-user",
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--as-pid-1",
        "--die-with-parent",
        "--new-session",
        "--cap-add",
        "ALL",  # of the sandbox's own user namespace; each job process drops them all (enter_job)
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--setenv",
        "TMPDIR",
        "/dev/shm",  # the server's scratch (bwrap's /dev is its own tmpfs); each job process gets fresh ones
        "--setenv",
        ENV_INSIDE,
        "1",
    ]
    # CUDA (untested here): the GPUs' device files, read-write.
    for device in sorted(Path("/dev").glob("nvidia*")):
        args += ["--dev-bind", str(device), str(device)]
    return args


@functools.cache
def unavailable() -> str | None:
    """Why job processes cannot be confined here; None when they can."""
    if os.environ.get(ENV_SWITCH, "").lower() in ("off", "0", "no", "false"):
        return f"{ENV_SWITCH}={os.environ[ENV_SWITCH]}"
    if not sys.platform.startswith("linux"):
        return f"confinement needs Linux namespaces, not {sys.platform}"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    try:
        probe = subprocess.run(
            [bwrap, *_bwrap_args(sys.executable), "--", "/bin/true"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bwrap failed: {exc}"
    if probe.returncode != 0:
        return f"bwrap cannot make namespaces here: {probe.stderr.strip().splitlines()[-1:] or probe.returncode}"
    return None


def wrapper() -> str:
    """An executable that runs Python (with the arguments it is given) in the sandbox: what multiprocessing
    starts the fork server with. The fds it passes the server stay open through bwrap."""
    bwrap = shutil.which("bwrap")
    assert bwrap is not None
    folder = tempfile.mkdtemp(prefix="prunebench-confine-")
    atexit.register(shutil.rmtree, folder, True)
    script = Path(folder) / "python"
    quoted = " ".join(_quote(a) for a in [bwrap, *_bwrap_args(sys.executable), "--", sys.executable])
    script.write_text(f'#!/bin/sh\nexec {quoted} "$@"\n')
    script.chmod(0o700)
    return str(script)


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\"'\"'") + "'"


# --- inside the sandbox ------------------------------------------------------------------------------------------

CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 0x1000, 0x4000, 0x40000
PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 4, 24, 38, 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class ConfinementFailed(Exception):
    pass


def inside() -> bool:
    return os.environ.get(ENV_INSIDE) == "1"


def server_setup() -> None:
    """In the fork server (and so in every job process it forks): not dumpable, so that no process of the sandbox
    reaches another's memory or files through /proc."""
    _prctl(PR_SET_DUMPABLE, 0)


def enter_job(hide_paths: tuple[str, ...], visible: tuple[str, ...] = ()) -> None:
    """In a job process of a confined fork server, before any method code: a mount namespace of its own with a
    fresh scratch (/tmp, /dev/shm) and `hide_paths` covered, then no capability left. Directories in `visible`
    (the working directory, the import path, the protocol's and its methods' directories) that the fresh /tmp
    covers are bound into it again, read-only. Raises ConfinementFailed."""
    if not inside():
        return
    libc = ctypes.CDLL(None, use_errno=True)
    _check(libc.unshare(CLONE_NEWNS), "unshare a mount namespace")
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make the mounts private")
    kept = _under("/tmp", visible)
    handles = [os.open(path, os.O_PATH | os.O_DIRECTORY) for path in kept]  # reachable once /tmp is covered
    for scratch in ("/tmp", "/dev/shm"):
        if os.path.isdir(scratch):
            _mount_tmpfs(libc, scratch, 0o1777, read_only=False)
    for path, handle in zip(kept, handles, strict=True):
        os.makedirs(path, exist_ok=True)
        source = f"/proc/self/fd/{handle}".encode()
        _check(libc.mount(source, path.encode(), None, MS_BIND | MS_REC, None), f"keep {path} visible")
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV
        _check(libc.mount(None, path.encode(), None, flags, None), f"make {path} read-only")
        os.close(handle)
    for path in hide_paths:
        if os.path.isdir(path):
            _mount_tmpfs(libc, path, 0o500, read_only=True)
        elif os.path.exists(path):
            _check(libc.mount(b"/dev/null", path.encode(), None, MS_BIND, None), f"hide {path}")
    os.environ["TMPDIR"] = "/tmp"
    tempfile.tempdir = None
    _drop_capabilities(libc)


def _under(folder: str, paths: tuple[str, ...]) -> list[str]:
    """The existing directories of `paths` inside `folder`, none inside another."""
    candidates = sorted({os.path.realpath(p) for p in paths if p and os.path.isdir(p)})
    inside_folder = [p for p in candidates if p.startswith(folder.rstrip("/") + "/")]
    return [p for p in inside_folder if not any(p.startswith(q + "/") for q in inside_folder if q != p)]


def _mount_tmpfs(libc: ctypes.CDLL, path: str, mode: int, *, read_only: bool) -> None:
    flags = MS_NOSUID | MS_NODEV | (MS_RDONLY if read_only else 0)
    options = f"mode={mode:o},{'size=4k' if read_only else SCRATCH_SIZE}".encode()
    _check(libc.mount(b"tmpfs", path.encode(), b"tmpfs", flags, options), f"mount a tmpfs on {path}")


def _drop_capabilities(libc: ctypes.CDLL) -> None:
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == 22:  # EINVAL: past the last
            break
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    _check(libc.capset(ctypes.byref(Header(_LINUX_CAPABILITY_VERSION_3, 0)), (Data * 2)()), "drop capabilities")
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "set no_new_privs")
    status = Path("/proc/self/status").read_text()
    effective = next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff:"))
    if int(effective, 16) != 0:
        raise ConfinementFailed(f"capabilities left after dropping them: {effective}")


def _prctl(option: int, value: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def _check(code: int, what: str) -> None:
    if code != 0:
        errno = ctypes.get_errno()
        raise ConfinementFailed(f"the job's process could not {what}: {os.strerror(errno)}")


# --- from the runner ---------------------------------------------------------------------------------------------


def sandbox_processes(bwrap_pid: int) -> tuple[int | None, list[int]]:
    """(the fork server's pid, every other process in the sandbox), as this process sees them: processes in the
    server's PID namespace (bwrap's child). Linux /proc."""
    server: int | None = None
    namespace: str | None = None
    others: list[int] = []
    members: list[tuple[int, str]] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            status = (entry / "status").read_text()
            ns = os.readlink(entry / "ns" / "pid")
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        nspid = fields.get("NSpid", "").split()
        ppid = int(fields.get("PPid", "0").strip() or 0)
        if len(nspid) >= 2 and nspid[-1] == "1" and ppid == bwrap_pid:
            server, namespace = pid, ns
        elif len(nspid) >= 2 and not fields.get("State", "").strip().startswith(("Z", "X")):
            members.append((pid, ns))
    if namespace is not None:
        others = [pid for pid, ns in members if ns == namespace]
    return server, others


def kill_leftovers(bwrap_pid: int) -> list[int]:
    """SIGKILL to every process of the sandbox but its fork server: what a job left behind (again while a
    process forks faster than it is killed, up to a bound)."""
    killed: list[int] = []
    for _ in range(50):
        _, others = sandbox_processes(bwrap_pid)
        if not others:
            break
        for pid in others:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        killed += others
    return killed
