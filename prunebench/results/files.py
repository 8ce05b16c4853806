"""Files the way a shared results directory needs them: atomic writes whose temporary files name their owner,
the modes the user's umask asks for, writability checked before any work, and reads of regular files only.

- `write_atomic`: a temporary file beside the target, flushed to disk, renamed over it; a reader (or a killed
  run) sees the old file or the new one, never half of one. The temporary file is named
  `.<name>.<host>.<pid>.<random>.tmp`, so that cleaning up (`remove_stale_temporaries`) removes only the files
  of writers that are gone, never those of a run still writing.
- `ensure_writable`: a folder can be created and written in, or one clear error says why not; `make_folder`
  creates one that another worker may remove at the same moment (an empty claims/).
- `read_regular`: the bytes of a regular file of bounded size; a FIFO, a device or a directory is refused
  without reading from it.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import socket
import stat
import tempfile
import time
from pathlib import Path

from prunebench.errors import ResultsError

TEMPORARY_SUFFIX = ".tmp"
_TEMPORARY_PATTERN = f".*{TEMPORARY_SUFFIX}"  # what write_atomic and ensure_writable name their temporary files
_VANISHING_TRIES = 10  # a folder removed by another worker as often in a row is not a race but a fault
FOREIGN_TEMPORARY_AGE_S = 24 * 3600  # another host's temporary file is stale after a day
HOST = socket.gethostname().replace(".", "-") or "host"  # as temporary files name their writer
_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: files get 0o666 & ~umask, as open() would give them (mkstemp gives 0o600)


def write_atomic(path: Path, data: str | bytes, *, durable: bool = True) -> None:
    """Write text (UTF-8) or bytes atomically; the temporary file is removed if anything fails. `durable`: flushed
    to disk before it is renamed in (results, dense models); checkpoints that a crash may lose say False."""
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}.{HOST}.{os.getpid()}."
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=TEMPORARY_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _owner_is_gone(name: str, age_s: float) -> bool:
    """Whether the writer named in a temporary file's name (host, pid) no longer runs."""
    parts = name.rsplit(".", 4)  # .<target>.<host>.<pid>.<random>.tmp
    if len(parts) < 5 or not parts[2].isdigit():
        return age_s > FOREIGN_TEMPORARY_AGE_S  # not one of ours: only when long abandoned
    host, pid = parts[1], int(parts[2])
    if host != HOST:
        return age_s > FOREIGN_TEMPORARY_AGE_S
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's live process
        return False
    return False


def remove_stale_temporaries(folder: Path) -> int:
    """Remove the temporary files under `folder` whose writers are gone (killed mid-write); returns how many.
    Best effort, and safe while other workers share the folder: a subfolder removed meanwhile (a worker's empty
    claims/), a file gone or one that cannot be removed is skipped, never an error."""
    removed = 0
    now = time.time()
    # os.walk, not Path.rglob: os.walk skips a folder that vanishes between its listing and its own (errors of
    # os.scandir are ignored), where rglob (Python < 3.13) raises FileNotFoundError from it.
    for directory, _, names in os.walk(folder):
        for name in names:
            if not fnmatch.fnmatchcase(name, _TEMPORARY_PATTERN):
                continue
            tmp = Path(directory, name)
            try:
                if _owner_is_gone(name, now - tmp.stat().st_mtime):
                    tmp.unlink()
                    removed += 1
            except OSError:  # removed meanwhile (by its writer, or with its folder), or not ours to remove
                continue
    return removed


def make_folder(folder: Path) -> None:
    """`folder.mkdir(parents=True, exist_ok=True)` where another worker may remove the folder at the same moment:
    Path.mkdir raises FileExistsError when the folder it found existing is gone by the time it checks that it is
    a directory; it is tried again (a file in the way fails every time, and its error is raised)."""
    for _ in range(_VANISHING_TRIES - 1):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return
        except FileExistsError:
            continue
    folder.mkdir(parents=True, exist_ok=True)


def ensure_writable(folder: Path, what: str) -> None:
    """Create `folder` if needed and write a file in it; a ResultsError naming `what` (e.g. "--results") and the
    reason otherwise. Called before any work, so that no training is lost to a folder that cannot take it."""
    for attempt in range(_VANISHING_TRIES):
        try:
            make_folder(folder)
            fd, probe = tempfile.mkstemp(dir=folder, prefix=f".write-check.{HOST}.{os.getpid()}.", suffix=".tmp")
            os.close(fd)
            os.unlink(probe)
            return
        except FileNotFoundError as exc:
            # Another worker removed the folder (its empty claims/) between the mkdir and the write: again.
            if attempt == _VANISHING_TRIES - 1:
                raise ResultsError(f"{what} {folder}: cannot write there ({describe_os_error(exc)})") from None
        except OSError as exc:
            raise ResultsError(f"{what} {folder}: cannot write there ({describe_os_error(exc)})") from None


def describe_os_error(exc: OSError) -> str:
    """An OSError as a reader wants it: what went wrong, and the file when there is one."""
    reason = exc.strerror or exc.__class__.__name__
    if exc.errno == errno.ENOSPC:
        reason = "no space left on the device"
    where = f": {exc.filename}" if exc.filename else ""
    return reason + where


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; ValueError naming why not (a FIFO, a device, a
    directory, a file too large), without reading anything from such a file."""
    try:
        info = os.stat(path)  # follows symbolic links: what would be read is what is checked
    except OSError as exc:
        raise ValueError(f"cannot read it ({describe_os_error(exc)})") from None
    if not stat.S_ISREG(info.st_mode):
        raise ValueError("not a regular file")
    if info.st_size > limit:
        raise ValueError(f"{info.st_size:,} bytes, more than the {limit:,} a record may hold")
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise ValueError(f"cannot read it ({describe_os_error(exc)})") from None
    if len(data) > limit:
        raise ValueError(f"more than the {limit:,} bytes a record may hold")
    return data
