"""What a job process checks of its own code and of torch's global state, as the fork server left them.

A method that monkeypatches prunebench or the parts of torch the engine trains with (`Engine.evaluate`,
`audit_budget`, `torch.optim.SGD.step`, `F.cross_entropy`), or changes torch's global settings (the default
dtype, autograd, threads), changes nothing the runner measures, which runs in another process; but it could
change how its own job trains. The fork server takes an inventory once; the job's process compares against it
after the method is loaded, after it pruned and after it retrained: a name bound to another object, or a
setting changed, is a violation naming it, and is put back.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import torch

# The torch the engine trains with (besides prunebench itself).
TORCH_MODULES = (
    "torch",
    "torch.nn.functional",
    "torch.nn.modules.module",
    "torch.nn.modules.conv",
    "torch.nn.modules.linear",
    "torch.nn.modules.batchnorm",
    "torch.nn.utils.clip_grad",
    "torch.optim.optimizer",
    "torch.optim.sgd",
    "torch.optim.adam",
    "torch.optim.adamw",
    "torch.optim.lr_scheduler",
    "torch.autograd",
)
MAX_NAMED = 5


def _watched() -> list[ModuleType]:
    prunebench = [m for name, m in sys.modules.items() if name == "prunebench" or name.startswith("prunebench.")]
    return prunebench + [sys.modules[name] for name in TORCH_MODULES if name in sys.modules]


def _bindings(module: ModuleType) -> dict[tuple[str, str, str], Any]:
    """(module, owner, name) -> object, for the module's names and its own classes' attributes (dunders aside,
    which Python and pydantic set lazily)."""
    out: dict[tuple[str, str, str], Any] = {}
    public_only = not module.__name__.startswith("prunebench")
    for name, value in list(vars(module).items()):
        if name.startswith("__") or (public_only and name.startswith("_")):
            continue
        out[(module.__name__, "", name)] = value
        if isinstance(value, type) and value.__module__ == module.__name__:
            for attr, member in list(vars(value).items()):
                if not attr.startswith("__"):
                    out[(module.__name__, name, attr)] = member
    return out


# torch's global settings: (what it is called, read it, set it back).
SETTINGS: tuple[tuple[str, Callable[[], Any], Callable[[Any], None]], ...] = (
    ("torch's default dtype", torch.get_default_dtype, torch.set_default_dtype),
    ("autograd (torch.set_grad_enabled)", torch.is_grad_enabled, torch.set_grad_enabled),
    ("anomaly detection", torch.is_anomaly_enabled, torch.set_anomaly_enabled),
    ("deterministic algorithms", torch.are_deterministic_algorithms_enabled, torch.use_deterministic_algorithms),
    ("float32 matmul precision", torch.get_float32_matmul_precision, torch.set_float32_matmul_precision),
    (
        "cudnn.benchmark",
        lambda: torch.backends.cudnn.benchmark,
        lambda v: setattr(torch.backends.cudnn, "benchmark", v),
    ),
)


class CodeInventory:
    """The bindings of the watched modules at one moment; `check` reports and restores what was rebound."""

    def __init__(self) -> None:
        self.bindings: dict[tuple[str, str, str], Any] = {}
        for module in _watched():
            self.bindings |= _bindings(module)
        self.settings = [get() for _, get, _ in SETTINGS]

    def check(self, where: str) -> list[str]:
        """The violations: torch settings changed, watched names bound to other objects (or gone); put back.
        The settings first: setting the default dtype rebinds torch.Storage."""
        found = []
        for (what, get, put), value in zip(SETTINGS, self.settings, strict=True):
            if get() != value:
                found.append(f"the method changed {what} to {get()} ({where}; put back)")
                put(value)
        changed = []
        for (module_name, owner, name), original in self.bindings.items():
            module = sys.modules.get(module_name)
            holder: Any = module if not owner else vars(module).get(owner) if module is not None else None
            if holder is None:
                continue
            current = vars(holder).get(name, _MISSING)
            if current is not original:
                changed.append(f"{module_name}.{owner + '.' if owner else ''}{name}")
                setattr(holder, name, original)
        if changed:
            more = f" and {len(changed) - MAX_NAMED} more" if len(changed) > MAX_NAMED else ""
            found.append(f"the method patched {', '.join(changed[:MAX_NAMED])}{more} ({where}; put back)")
        return found


_MISSING = object()
