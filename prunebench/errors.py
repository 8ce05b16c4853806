"""Errors a user can act on. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations

import re
from pathlib import Path


class PrunebenchError(Exception):
    """An error caused by the user's input (protocol, data, method, results), not by a bug."""


class ProtocolError(PrunebenchError):
    """A problem located in a protocol file: names the file, line, column and field."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        column: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.column = column
        self.field = field
        super().__init__(self.format())

    def format(self) -> str:
        where = self.file or "<protocol>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class FieldError(PrunebenchError):
    """A problem with one protocol field found after loading (a missing data directory, a method
    config that its method rejects). `loc` is the field's path in the protocol, e.g.
    ("methods", 0, "config", "rounds"); `Protocol.locate` adds the file and line of that field.
    """

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        self.loc = loc
        self.message = message
        super().__init__(f"{'.'.join(map(str, loc))}: {message}")


class MethodError(PrunebenchError):
    """A method that cannot be found, loaded or configured."""


class ResultsError(PrunebenchError):
    """Result files that cannot be used."""


class TableError(PrunebenchError):
    """A problem located in a table file (the published figures of protocols/published/): names the file, its line
    and column (1-based, the column of the offending field's first character) and the field's column name."""

    def __init__(self, message: str, *, file: str | Path, line: int, column: int = 1, field: str | None = None) -> None:
        self.message = message
        self.file, self.line, self.column, self.field = str(file), line, column, field
        named = f" {field}:" if field else ""
        super().__init__(f"{self.file}:{line}:{column}:{named} {message}")


class JobFailed(Exception):
    """A job that failed for a reason recorded in its result (a method raised, the loss diverged)."""


class Interrupted(BaseException):
    """A termination signal (SIGTERM, SIGUSR1) received while running: like KeyboardInterrupt for SIGINT, it is
    no Exception, so that no handler of a method's failure mistakes it for one."""

    def __init__(self, signal_name: str, exit_code: int) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.exit_code = exit_code


MAX_MESSAGE = 2000


# What a file's string may not send to a terminal: C0 controls but tab and newline (ESC starts the sequences
# that clear the screen, move the cursor, retitle the window; BEL rings), a carriage return that does not end a
# line (it would overwrite what was printed), DEL, the C1 controls (0x9b is a one-byte CSI), and the
# bidirectional overrides and isolates (they reverse what a reader sees). Printable Unicode stays.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]|\r(?!\n)")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` safe to print on a terminal: each control character (see _UNPRINTABLE) written as its escape, e.g.
    ESC as `\\x1b`, rather than dropped or replaced by `?`: the reader sees that the string holds one, and which."""
    return _UNPRINTABLE.sub(_escaped, text) if _UNPRINTABLE.search(text) else text


def one_line(message: str) -> str:
    """A message as one line of bounded length: what a user can read, whatever the input that caused it."""
    flat = " ".join(message.split())
    return flat if len(flat) <= MAX_MESSAGE else flat[: MAX_MESSAGE - 40] + f"... ({len(flat):,} characters)"
