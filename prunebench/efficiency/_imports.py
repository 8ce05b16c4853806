"""Imports of torch.utils.benchmark and Torch-Pruning, when first needed: both load torch's C++-extension
tools, which warn on a machine without CUDA about something no measurement here uses."""

from __future__ import annotations

import importlib
import logging
from types import ModuleType


def quietly(name: str) -> ModuleType:
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return importlib.import_module(name)
    finally:
        logger.setLevel(level)
