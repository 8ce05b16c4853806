"""`prunebench lint-method`: what the runtime checks cannot see in a method's code, a static check sees.

A job's process seals the model's weights, the engine's hooks and prunebench's own code (prunebench.engine.guard,
prunebench.run.sandbox.patches), and the runner measures in another process; what is left is code that reaches
around the public method API. Each rule reads the source (`ast`), never runs it:

- `private-attribute`: `x._name` (or `getattr(x, "_name")`) on anything but `self`, `cls`, `super()` or a module
  imported from outside prunebench: `ctx._engine.ledger` is the engine's, not the method's.
- `prunebench-import`: a prunebench module other than the public method API (`prunebench.methods`,
  `prunebench.errors`); the built-in baselines (`prunebench_baselines`) may be built on.
- `monkeypatch`: assigning or deleting an attribute of an imported module or of anything reached through one
  (`prunebench.fairness.audit_budget = ...`, `torch.nn.functional.cross_entropy = ...`), `setattr`/`delattr`
  on one, or `sys.modules[...] = ...`.
- `frames`: reaching into the interpreter: frames (`sys._getframe`, `inspect.currentframe`, `f_back`,
  `f_locals`, `tb_frame`, ...), the garbage collector (`gc`), raw memory (`ctypes`).
- `dynamic-code`: `exec`, `eval`, `compile`, `__import__`, or `importlib.import_module` of a name not written out.

A finding is `file:line:col: rule: message`; the submission workflow fails on any.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prunebench.protocol import Protocol

PUBLIC_API = ("prunebench.methods", "prunebench.errors")
BUILDING_BLOCKS = ("prunebench_baselines",)
FRAME_ATTRIBUTES = frozenset(
    {"f_back", "f_locals", "f_globals", "f_builtins", "f_code", "tb_frame", "gi_frame", "cr_frame", "ag_frame"}
)
FRAME_FUNCTIONS = {
    "inspect": frozenset({"currentframe", "stack", "trace", "getouterframes", "getinnerframes", "getframeinfo"}),
    "sys": frozenset({"_getframe", "settrace", "setprofile", "_current_frames"}),
}
INTERPRETER_MODULES = {"gc": "the garbage collector reaches every object", "ctypes": "ctypes reaches raw memory"}
DYNAMIC_BUILTINS = frozenset({"exec", "eval", "compile", "__import__"})


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    column: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.rule}: {self.message}"


def _in(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _is_prunebench(module: str) -> bool:
    return module == "prunebench" or module.startswith("prunebench.")


class _Linter(ast.NodeVisitor):
    def __init__(self, path: str) -> None:
        self.path = path
        self.findings: list[Finding] = []
        self.imported: dict[str, str] = {}  # name bound by an import -> what it is (module or module.attr)

    def add(self, node: ast.AST, rule: str, message: str) -> None:
        line, col = getattr(node, "lineno", 0), getattr(node, "col_offset", -1) + 1
        self.findings.append(Finding(self.path, line, col, rule, message))

    # ---- imports ----------------------------------------------------------------------------------
    def _check_module(self, node: ast.AST, module: str) -> None:
        top = module.split(".")[0]
        if _is_prunebench(module) and not _in(module, PUBLIC_API) and module != "prunebench":
            self.add(node, "prunebench-import", f"{module} is not the public method API (prunebench.methods)")
        if top in INTERPRETER_MODULES:
            self.add(node, "frames", f"import of {top}: {INTERPRETER_MODULES[top]}")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._check_module(node, alias.name)
            bound = alias.asname or alias.name.split(".")[0]
            self.imported[bound] = alias.name if alias.asname else alias.name.split(".")[0]
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level == 0:
            self._check_module(node, module)
            for alias in node.names:
                full = f"{module}.{alias.name}"
                if module == "prunebench":
                    self._check_module(node, full)
                self.imported[alias.asname or alias.name] = full
        self.generic_visit(node)

    # ---- attributes ---------------------------------------------------------------------------------
    def _root(self, node: ast.AST) -> ast.AST:
        while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
            node = node.func if isinstance(node, ast.Call) else node.value
        return node

    def _origin(self, node: ast.AST) -> str | None:
        """The import an expression is reached through (`torch` for torch.nn.functional.x), if any."""
        root = self._root(node)
        return self.imported.get(root.id) if isinstance(root, ast.Name) else None

    def _private_allowed(self, owner: ast.AST) -> bool:
        root = self._root(owner)
        if isinstance(root, ast.Name) and root.id in ("self", "cls", "super"):
            return True
        origin = self._origin(owner)
        return origin is not None and not _is_prunebench(origin)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        attr = node.attr
        origin = self._origin(node.value)
        top = origin.split(".")[0] if origin else None
        if attr in FRAME_ATTRIBUTES or (top in FRAME_FUNCTIONS and attr in FRAME_FUNCTIONS[top]):
            self.add(node, "frames", f"`.{attr}` reaches into the interpreter's frames")
        elif attr.startswith("_") and not attr.startswith("__") and not self._private_allowed(node.value):
            self.add(node, "private-attribute", f"`.{attr}` is private to the object it belongs to")
        if isinstance(node.ctx, (ast.Store, ast.Del)) and origin is not None:
            self.add(node, "monkeypatch", f"assigns `{ast.unparse(node)}`, an attribute of the imported {origin}")
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)) and ast.unparse(node.value) == "sys.modules":
            self.add(node, "monkeypatch", "replaces a module in sys.modules")
        self.generic_visit(node)

    # ---- calls --------------------------------------------------------------------------------------
    def visit_Call(self, node: ast.Call) -> None:
        name = _name(node.func)
        literal = node.args[1].value if len(node.args) > 1 and isinstance(node.args[1], ast.Constant) else None
        if name in ("setattr", "delattr") and node.args and self._origin(node.args[0]) is not None:
            self.add(node, "monkeypatch", f"{name} on the imported {self._origin(node.args[0])}")
        if name in ("getattr", "setattr", "delattr", "hasattr") and isinstance(literal, str) and node.args:
            if literal.startswith("_") and not literal.startswith("__") and not self._private_allowed(node.args[0]):
                self.add(node, "private-attribute", f"{name}(..., {literal!r}) reaches a private attribute")
            if literal in FRAME_ATTRIBUTES:
                self.add(node, "frames", f"{name}(..., {literal!r}) reaches into the interpreter's frames")
        if isinstance(node.func, ast.Name) and node.func.id in DYNAMIC_BUILTINS:
            self.add(node, "dynamic-code", f"{node.func.id}() runs code no check can read")
        if name == "import_module" or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"):
            target = node.args[0] if node.args else None
            if isinstance(target, ast.Constant) and isinstance(target.value, str):
                self._check_module(node, target.value)
            else:
                self.add(node, "dynamic-code", "import_module() of a name not written out")
        self.generic_visit(node)


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def lint_source(source: str, path: str = "<source>") -> list[Finding]:
    """The findings in one module's source; a file that does not parse is one finding."""
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        return [Finding(path, exc.lineno or 0, exc.offset or 0, "syntax", exc.msg)]
    linter = _Linter(path)
    linter.visit(tree)
    return sorted(linter.findings, key=lambda f: (f.line, f.column, f.rule))


def lint_path(path: Path) -> list[Finding]:
    """The findings of a file, or of every .py file under a directory."""
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    out: list[Finding] = []
    for file in files:
        out += lint_source(file.read_text(encoding="utf-8", errors="replace"), str(file))
    return out


def sources(target: str) -> list[Path]:
    """The files to lint for a method given as on the command line: a file or directory, `path/file.py:Class`,
    a registered method name, or `package.module[:Class]` (found without importing the module itself)."""
    import importlib.util
    from importlib import metadata

    from prunebench.errors import MethodError
    from prunebench.methods.registry import ENTRY_POINT_GROUP

    spec = target.rpartition(":")[0] if ":" in target and not Path(target).exists() else target
    if Path(spec).exists():
        return [Path(spec)]
    if spec.endswith(".py"):
        raise MethodError(f"{spec}: no such file")
    if ":" not in target and "." not in target:
        points = [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == target]
        if not points:
            raise MethodError(f"{target!r} is neither a file, a registered method nor a module")
        spec = points[0].value.partition(":")[0]
    try:
        found = importlib.util.find_spec(spec)
    except (ImportError, ValueError) as exc:
        raise MethodError(f"cannot find module {spec}: {exc}") from None
    if found is None or found.origin is None:
        raise MethodError(f"cannot find module {spec}")
    origin = Path(found.origin)
    return [origin.parent if origin.name == "__init__.py" else origin]


def protocol_targets(protocol: Protocol) -> list[str]:
    """The methods a protocol runs, as `sources` takes them (files relative to the protocol's folder)."""
    base = protocol.source.parent if protocol.source else Path(".")
    out = []
    for spec in protocol.methods:
        path = spec.name.rpartition(":")[0]
        relative = path.endswith(".py") and not Path(path).is_absolute() and not Path(path).exists()
        out.append(str(base / spec.name) if relative else spec.name)
    return out


def lint_targets(targets: list[str]) -> tuple[list[Finding], int]:
    """(the findings, how many files) of every target (see `sources`), each file once."""
    files: dict[Path, Path] = {}  # resolved -> as given
    for target in dict.fromkeys(targets):
        for path in sources(target):
            for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
                files.setdefault(file.resolve(), file)
    return [f for file in files.values() for f in lint_path(file)], len(files)
