"""The seal on a model between the engine's own steps: what a method's code may not change.

A method scores and chooses; only the engine changes weights (training, applying masks, loading saved
states). Before the engine hands control to a method (`prune`, a hook), it seals the model: a copy of every
parameter and buffer of the architecture (what a method adds, such as mask scores, is its own business: the
final weights must be the architecture's alone), and the hooks, classes and forwards of its modules. When
control comes back, and whenever the method calls into the engine, the seal is verified: a tensor that
changed is restored and named in a violation; a module replaced or removed, a hook the model did not have
(a forward pre-hook that revives pruned weights, say) or a forward patched on an instance is a violation,
and the hook or patch is removed. Wrapping weights in a parametrization (soft masks) is allowed while the
method prunes, never while it retrains.

This runs in the job's own process, next to the method's code: the runner's measurement of the final
weights, in another process, is what a method cannot reach; the seal makes training off the books, revived
weights and hidden capacity fail loudly rather than quietly.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules import module as torch_module
from torch.nn.utils import parametrize

MODULE_HOOKS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_state_dict_hooks",
    "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
)
GLOBAL_HOOKS = tuple(name for name in dir(torch_module) if name.startswith("_global_") and name.endswith("_hooks"))
TENSOR_HOOKS = ("_backward_hooks", "_post_accumulate_grad_hooks")
MAX_VIOLATIONS = 20


class Seal:
    """Seals and verifies one model; `violations` lists what it found, once per kind and place."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._architecture = {id(t) for _, t in self._tensors()}
        self.violations: list[str] = []
        self.wrappers_allowed = True  # parametrizations: while pruning, not while retraining
        self._modules = {id(m): (name or "the model", type(m)) for name, m in model.named_modules()}
        self._hooks = set(self._hook_keys())
        self._sealed: list[tuple[str, Tensor, Tensor]] | None = None
        self._settings: dict[int, dict[str, Any]] = {}
        # Off where no method code runs in the model's process (prunebench.run.sandbox.method_process): nothing
        # to seal against, and a copy of every weight around every hook call saved.
        self.enabled = True

    @property
    def active(self) -> bool:
        return self._sealed is not None

    def seal(self) -> None:
        if not self.enabled:
            return
        self._sealed = [(name, t, t.detach().clone()) for name, t in self._tensors() if id(t) in self._architecture]
        self._settings = {id(m): _settings(m) for m in self.model.modules() if id(m) in self._modules}

    def verify(self, where: str, *, exempt: Mapping[int, Tensor] | None = None) -> bool:
        """Check the seal after `where` (method code that just ran); restore what changed. `exempt` maps a
        tensor's id to a keep-mask: changes at its pruned positions are allowed (the masks zero them anyway).
        True when nothing was wrong."""
        if self._sealed is None:
            return True
        before = len(self.violations)
        present = {id(t) for _, t in self._tensors()}
        changed = []
        with torch.no_grad():
            for name, tensor, copy in self._sealed:
                if id(tensor) not in present:
                    self._violate(f"the method replaced or removed {name} in {where}")
                    continue
                keep = exempt.get(id(tensor)) if exempt else None
                same = torch.equal(tensor[keep], copy[keep]) if keep is not None else torch.equal(tensor, copy)
                if not same:
                    changed.append(name)
                    tensor.copy_(copy)
        if changed:
            more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
            self._violate(f"the method changed {changed[0]}{more} outside the engine in {where} (undone)")
        self._check_structure(where)
        return len(self.violations) == before

    # ---- what is checked --------------------------------------------------------------------------
    def _tensors(self) -> Iterator[tuple[str, Tensor]]:
        yield from self.model.named_parameters(remove_duplicate=True)
        yield from self.model.named_buffers(remove_duplicate=True)

    def _hook_keys(self) -> Iterator[tuple[Any, ...]]:
        for m in self.model.modules():
            for attr in MODULE_HOOKS:
                for key in getattr(m, attr, None) or {}:
                    yield ("module", id(m), attr, key)
        for attr in GLOBAL_HOOKS:
            for key in getattr(torch_module, attr, None) or {}:
                yield ("global", attr, key)
        for p in self.model.parameters():
            for attr in TENSOR_HOOKS:
                for key in getattr(p, attr, None) or {}:
                    yield ("tensor", id(p), attr, key)

    def _check_structure(self, where: str) -> None:
        names = {id(m): name or "the model" for name, m in self.model.named_modules()}
        modules = {id(m): m for m in self.model.modules()}
        for key, settings in self._settings.items():  # BatchNorm's momentum and eps, a module's mode, ...
            module = modules.get(key)
            now = _settings(module) if module is not None else settings
            if now != settings:
                changed = sorted(k for k in settings.keys() | now.keys() if now.get(k) != settings.get(k))
                module.__dict__.update(settings)  # type: ignore[union-attr]
                changed = [k for k in changed if k != "training"]  # eval() to score is no offence; it is undone
                if changed:
                    self._violate(f"the method changed {', '.join(changed)} of {names[key]} in {where} (undone)")
        for key, (name, cls) in self._modules.items():
            module = modules.get(key)
            if module is None:
                self._violate(f"the method removed or replaced the module {name} in {where}")
            elif type(module) is not cls and not (
                self.wrappers_allowed and parametrize.is_parametrized(module) and isinstance(module, cls)
            ):
                kind = "a parametrization while retraining" if isinstance(module, cls) else type(module).__name__
                self._violate(f"the method changed the module {name} into {kind} in {where}")
        for key, module in modules.items():
            # A method of the module's class patched on the instance (forward, eval, state_dict, ...).
            for attr in [a for a, v in module.__dict__.items() if callable(v) and hasattr(type(module), a)]:
                del module.__dict__[attr]
                self._violate(f"the method replaced the {attr} of {names[key]} in {where} (removed)")
        for hook in set(self._hook_keys()) - self._hooks:
            self._remove_hook(hook, modules)
            kind = " ".join(hook[-2].strip("_").split("_")[:-1]) + " hook"
            on = {"module": f"on {names.get(hook[1], 'a module')}", "global": "on every module"}.get(hook[0], "")
            self._violate(f"the method registered a {kind} {on or 'on a parameter'} in {where} (removed)")

    def _remove_hook(self, hook: tuple[Any, ...], modules: dict[int, nn.Module]) -> None:
        if hook[0] == "module":
            getattr(modules[hook[1]], hook[2]).pop(hook[3], None)
        elif hook[0] == "global":
            getattr(torch_module, hook[1]).pop(hook[2], None)
        else:
            for p in self.model.parameters():
                if id(p) == hook[1]:
                    getattr(p, hook[2]).pop(hook[3], None)

    def _violate(self, message: str) -> None:
        if message not in self.violations and len(self.violations) < MAX_VIOLATIONS:
            self.violations.append(message)


def _settings(module: nn.Module) -> dict[str, Any]:
    """A module's plain settings (BatchNorm's momentum and eps, `training`, ...): the numbers, flags and
    strings of its instance dictionary."""
    return {k: v for k, v in module.__dict__.items() if isinstance(v, (bool, int, float, str, type(None)))}
