"""The runner's integrity key: what lets the runner trust, later, only the files it wrote itself.

A method's code runs in a job process that can write the machine's files: a record, a lease, a cached dense
model or a stage checkpoint carrying a plain sha256 could be forged by it (anyone can recompute a sha256). So
each of them carries a keyed MAC (HMAC-SHA256) instead, made with a key the job process never holds:

- the key is a file created once per cache root, `<cache>/keys/integrity.key` (mode 0600, in a folder of mode
  0700, written whole and linked into place, so that workers that start at once agree on one key); every worker
  that shares the cache shares it, and a record, lease or checkpoint written by any of them verifies for all;
- the runner reads it into its own memory only. Job processes are forked from the fork server, which was started
  by exec (multiprocessing's forkserver), never forked from the runner: they never have the key in memory, and
  the file is closed once read (no descriptor is inherited either).

What this does not stop yet: a job process that runs unconfined can read the key file itself (it runs as the
same user). Confining job processes away from the cache (bubblewrap) closes that; until then the MAC stops a job
that does not go looking for the key, and every forgery that does not read it.

Each MAC is over a domain (what the bytes are, and of which job or file) and the bytes' sha256, so that a valid
MAC of one thing is never valid for another.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from prunebench.errors import PrunebenchError

KEY_FOLDER = "keys"
KEY_FILE = "integrity.key"
KEY_BYTES = 32


class IntegrityKey:
    """The HMAC key of one cache root (or, for tests and in-memory use, one of this process alone)."""

    def __init__(self, secret: bytes | None, where: str, path: Path | None = None) -> None:
        self._loaded = secret  # None: the key file is made (or read) when a MAC is first made
        self._path = path
        self.where = where  # the key file (or "ephemeral"): for messages only

    @property
    def _secret(self) -> bytes:
        if self._loaded is None:
            assert self._path is not None
            if not self._path.exists():
                _create(self._path)
            self._loaded = _read(self._path)
        return self._loaded

    def __repr__(self) -> str:  # never the secret, in any log or traceback
        return f"IntegrityKey({self.where})"

    @classmethod
    def of_cache(cls, cache_root: Path, *, create: bool = True) -> IntegrityKey | None:
        """The cache's key; when the cache has none, one made on first use (`create`), or None (`create` False:
        nothing written with a key can then verify)."""
        path = Path(cache_root) / KEY_FOLDER / KEY_FILE
        if not path.exists():
            # Made when first needed, by the first seal: a run that fails validation, or a dry run, writes nothing.
            return cls(None, str(path), path) if create else None
        return cls(_read(path), str(path))

    def mac(self, domain: str, data: bytes) -> str:
        """HMAC-SHA256 (hex) of `data` in `domain`."""
        message = domain.encode("utf-8", "surrogatepass") + b"\0" + hashlib.sha256(data).digest()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def verify(self, domain: str, data: bytes, tag: object) -> bool:
        """Whether `tag` is this key's MAC of `data` in `domain` (compared in constant time)."""
        if self._loaded is None and self._path is not None and not self._path.exists():
            return False  # no key yet: nothing was sealed with it (and looking does not make one)
        return isinstance(tag, str) and hmac.compare_digest(self.mac(domain, data), tag)


_EPHEMERAL: IntegrityKey | None = None


def ephemeral_key() -> IntegrityKey:
    """A key of this process alone (what a part given no cache key uses: tests, tools): nothing it seals verifies
    in another process."""
    global _EPHEMERAL
    if _EPHEMERAL is None:
        _EPHEMERAL = IntegrityKey(secrets.token_bytes(KEY_BYTES), "ephemeral")
    return _EPHEMERAL


def _create(path: Path) -> None:
    """Write a new key: whole in a file of its own (O_EXCL, 0600), then linked into place; when another worker
    linked its key first, that one is the key (this one is dropped)."""
    folder = path.parent
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = folder / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_hex(KEY_BYTES).encode())
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _read(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise PrunebenchError(f"cannot read the integrity key {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        raw = os.read(fd, 4 * KEY_BYTES + 1)
    finally:
        os.close(fd)
    try:
        secret = bytes.fromhex(raw.decode("ascii").strip())
    except ValueError:
        secret = b""
    if not stat.S_ISREG(info.st_mode) or len(secret) < KEY_BYTES:
        raise PrunebenchError(
            f"the integrity key {path} is not a key prunebench wrote; remove it (every record, lease and checkpoint "
            "of this cache is then re-made once)"
        )
    return secret
