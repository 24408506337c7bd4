"""The code's shape, read statically: no import cycles, no private names crossing modules, rooms of a readable size.

Every ``import`` counts, wherever it stands: at module level, inside a function, or under
``if TYPE_CHECKING:``. A lazy import still ties two modules together for a reader.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "deepcanvas"

MAX_LINES = 400  # any module in deepcanvas/
MAX_LINES_TECHNIQUE = 250  # a file in deepcanvas/techniques/


def _modules(root: Path = ROOT) -> dict[str, Path]:
    """deepcanvas's modules by dotted name (a package by its own name), under the repository ``root``."""
    out = {}
    for path in sorted((root / "deepcanvas").rglob("*.py")):
        name = ".".join(path.relative_to(root).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _package_of(name: str, path: Path) -> list[str]:
    """The package a relative import in module ``name`` starts from (for __init__.py, the package itself)."""
    parts = name.split(".")
    return parts if path.name == "__init__.py" else parts[:-1]


def _import_nodes(name: str, path: Path):
    """(node, the module it imports from, the names it imports) for every import statement in the module."""
    pkg = _package_of(name, path)
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node, target, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield node, a.name, []


def _graph(root: Path = ROOT) -> dict[str, dict[str, int]]:
    """module -> {deepcanvas module it imports: line of the first such import}."""
    modules = _modules(root)
    graph = {}
    for m, path in modules.items():
        edges: dict[str, int] = {}
        for node, target, names in _import_nodes(m, path):
            for n in [target] + [f"{target}.{x}" for x in names]:
                # a package's __init__ runs before any of its submodules anyway: that edge is no cycle of ours
                if n in modules and n != m and not m.startswith(n + "."):
                    edges.setdefault(n, node.lineno)
        graph[m] = edges
    return graph


def _strongly_connected(graph: dict[str, dict[str, int]]) -> list[set[str]]:
    """Tarjan's strongly connected components with more than one module: each one holds a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_counting_imports_inside_functions():
    graph = _graph()
    cycles = _strongly_connected(graph)
    described = []
    for comp in cycles:
        edges = [f"{m} -> {n} (line {line})" for m in sorted(comp) for n, line in sorted(graph[m].items()) if n in comp]
        described.append("; ".join(edges))
    assert not cycles, "import cycles:\n" + "\n".join(described)


def test_the_cycle_check_sees_imports_inside_functions_and_under_type_checking(tmp_path):
    pkg = tmp_path / "deepcanvas"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .. import a\n")
    assert _strongly_connected(_graph(tmp_path)) == [{"deepcanvas.a", "deepcanvas.sub.b"}]


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_crossings(root: Path = ROOT) -> set[tuple[str, str, str]]:
    """(module, owner, name) for every ``from owner import _name`` and ``owner._name`` across deepcanvas modules."""
    modules = _modules(root)
    out = set()
    for m, path in modules.items():
        aliases: dict[str, str] = {}  # a local name bound to a deepcanvas module -> that module
        for node, target, names in _import_nodes(m, path):
            if isinstance(node, ast.ImportFrom):
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    if sub in modules:
                        aliases[a.asname or a.name] = sub
                    elif target in modules and target != m and _private(a.name):
                        out.add((m, target, a.name))
            else:
                for a in node.names:
                    if a.name in modules:
                        # `import deepcanvas.x.y` binds `deepcanvas`; `import deepcanvas.x.y as z` binds z
                        aliases[a.asname] = a.name if a.asname else None
        aliases = {k: v for k, v in aliases.items() if k and v}
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                value = node.value
                chain = []
                while isinstance(value, ast.Attribute):
                    chain.append(value.attr)
                    value = value.value
                if isinstance(value, ast.Name):
                    owner = aliases.get(value.id)
                    if owner is None and value.id == "deepcanvas":
                        owner = "deepcanvas"
                    if owner is not None:
                        owner = ".".join([owner] + chain[::-1])
                        if owner in modules and owner != m:
                            out.add((m, owner, node.attr))
    return out


def test_no_module_uses_another_modules_private_names():
    crossings = sorted(_private_crossings())
    assert not crossings, "private names used across modules (make them public with a good name, or move the " \
        "code):\n" + "\n".join(f"{m} uses {owner}.{name}" for m, owner, name in crossings)


def test_the_private_check_sees_both_forms(tmp_path):
    pkg = tmp_path / "deepcanvas"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("_X = 1\n__all__ = []\n")
    (pkg / "b.py").write_text("from .a import _X, __all__\n")
    (pkg / "c.py").write_text("def f():\n    from . import a\n    return a._X\n")
    assert _private_crossings(tmp_path) == {("deepcanvas.b", "deepcanvas.a", "_X"),
                                            ("deepcanvas.c", "deepcanvas.a", "_X")}


def _private_attributes_defined(tree: ast.Module) -> set[str]:
    """Private names a module gives its objects: ``self._x = ...``, and methods and attributes in class bodies."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _private(node.attr):
            out.add(node.attr)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and _private(item.name):
                    out.add(item.name)
                targets = item.targets if isinstance(item, ast.Assign) else \
                    [item.target] if isinstance(item, ast.AnnAssign) else []
                out |= {t.id for t in targets if isinstance(t, ast.Name) and _private(t.id)}
    return out


def _private_attribute_crossings(root: Path = ROOT) -> set[tuple[str, str, str]]:
    """(module, owner, name) where a module reads ``obj._name`` (or ``hasattr(obj, "_name")``) of an object
    whose class another deepcanvas module defines, and the module gives no object of its own that name."""
    modules = _modules(root)
    defined = {m: _private_attributes_defined(_tree(p)) for m, p in modules.items()}
    out = set()
    for m, path in modules.items():
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                    continue
                name = node.attr
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id in ("getattr", "hasattr", "setattr") and len(node.args) >= 2
                  and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
                name = node.args[1].value
            else:
                continue
            if not _private(name) or name in defined[m]:
                continue
            owners = sorted(o for o, names in defined.items() if name in names)
            if owners:
                out.add((m, owners[0], name))
    return out


def test_no_module_uses_the_private_attributes_of_another_modules_objects():
    crossings = sorted(_private_attribute_crossings())
    assert not crossings, "private attributes used across modules (give the class a public name for it):\n" + \
        "\n".join(f"{m} uses {name} of {owner}'s objects" for m, owner, name in crossings)


def test_the_attribute_check_sees_attributes_and_hasattr(tmp_path):
    pkg = tmp_path / "deepcanvas"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("class A:\n    def __init__(self):\n        self._x = 1\n"
                              "    def _m(self):\n        pass\n")
    (pkg / "b.py").write_text("def f(a):\n    return a._x if hasattr(a, '_m') else None\n")
    (pkg / "c.py").write_text("class C:\n    _x = 2\ndef g(c):\n    return c._x\n")  # its own _x: no crossing
    assert _private_attribute_crossings(tmp_path) == {("deepcanvas.b", "deepcanvas.a", "_x"),
                                                      ("deepcanvas.b", "deepcanvas.a", "_m")}


def _long_modules() -> dict[str, int]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        limit = MAX_LINES_TECHNIQUE if path.parent == PACKAGE / "techniques" else MAX_LINES
        lines = len(path.read_text().splitlines())
        if lines > limit:
            out[rel] = lines
    return out


def test_no_module_is_over_its_size():
    long = _long_modules()
    assert not long, f"modules over {MAX_LINES} lines ({MAX_LINES_TECHNIQUE} in techniques/): {long}"
