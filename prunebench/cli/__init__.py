"""The command line. Thin: one module per command group, and every command's work lives in the modules it calls.

`app` holds the commands (each module registers its own, in the order `--help` lists them); `main` is the
entry point (`prunebench`), which turns a user's error into one line on stderr and exit code 2.
"""

import importlib

from prunebench.cli.app import app, main

COMMAND_MODULES = (
    "run",
    "status",
    "launch",
    "registry",
    "schema",
    "compare",
    "ls",
    "check",
    "plot",
    "export",
    "lint",
    "ci",
)
for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}")

__all__ = ["app", "main"]
