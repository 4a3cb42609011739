"""The import layers of README.md's table hold: imports flow one way, without loops or private names.

The table in README.md ("Layers", after the `layers:` marker) is the one statement of the layers; this
test parses it and every module of islesbench/, data_prep/, tuning/ and reports/.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGE_FOLDERS = {"data_prep": "islesbench.data_prep", "tuning": "islesbench.tuning", "reports": "islesbench.reports"}
CORE = ("islesbench", "islesbench.errors", "islesbench.atomic", "islesbench.config")
# Imported inside functions only to keep `islesbench --help` and start-up fast.
HEAVY = ("tensorflow", "keras", "keras_tuner", "matplotlib", "scipy", "nibabel", "ray", "tensorboard", "jax", "grpc",
         "google")


def read_layer_table(readme: str) -> dict:
    """package -> set of packages it may import (None: everything), from README.md's layer table."""
    section = readme.split("<!-- layers: read by tests/test_layers.py -->", 1)[1]
    table = {}
    for line in section.strip().splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        packages = re.findall(r"`([\w.]+)`", cells[0])
        allowed = cells[2]
        if allowed == "everything":
            deps = None
        else:
            deps = set(re.findall(r"`([\w.]+)`", allowed)) | (set(CORE) if re.search(r"\bcore\b", allowed) else set())
        for package in packages:
            table[package] = deps
    return table


def module_files() -> dict:
    """dotted module name -> path, for every module of the package and the stage folders."""
    out = {}
    for folder in ("islesbench", *STAGE_FOLDERS):
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[0] in STAGE_FOLDERS:
                parts = STAGE_FOLDERS[parts[0]].split(".") + parts[1:]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def package_of(module: str, table: dict) -> str | None:
    """The table row a module belongs to: the longest row name it is or lies under (the root only exactly)."""
    rows = [p for p in table if module == p or (p != "islesbench" and module.startswith(p + "."))]
    return max(rows, key=len) if rows else None


def imports_of(module: str, path: Path, modules: dict) -> list:
    """(imported islesbench module, names taken from it, line, inside a function) for each import."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    found.append((alias.name, [], child.lineno, in_function))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = module.split(".") if is_package else module.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join(anchor + ([child.module] if child.module else []))
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    if sub in modules:  # `from islesbench.pkg import module`
                        found.append((sub, [], child.lineno, in_function))
                    else:
                        found.append((base, [alias.name], child.lineno, in_function))
            visit(child, nested)

    visit(tree, False)
    return found


@pytest.fixture(scope="module")
def project():
    table = read_layer_table((ROOT / "README.md").read_text())
    modules = module_files()
    edges = {m: imports_of(m, p, modules) for m, p in modules.items()}
    return table, modules, edges


def test_every_module_has_a_row(project):
    table, modules, _ = project
    assert [m for m in modules if package_of(m, table) is None] == []


def test_imports_follow_the_table(project):
    table, modules, edges = project
    upward = []
    for module, imports in edges.items():
        own = package_of(module, table)
        allowed = table[own]
        for target, _, line, _ in imports:
            if not target.startswith("islesbench") or allowed is None:
                continue
            theirs = package_of(target, table)
            if theirs != own and theirs not in allowed:
                upward.append(f"{modules[module].relative_to(ROOT)}:{line} {module} -> {target}")
    assert upward == []


def test_no_import_loops(project):
    _, modules, edges = project
    graph = {m: {t for t, _, _, _ in imports if t in modules and t != m} for m, imports in edges.items()}
    # A package's __init__ is imported with any of its modules; count only real module-to-module edges.
    loops = [cycle for cycle in strongly_connected(graph) if len(cycle) > 1]
    assert loops == []


def test_no_private_names_across_modules(project):
    _, modules, edges = project
    taken = [f"{modules[m].relative_to(ROOT)}:{line} {target}.{name}"
             for m, imports in edges.items() for target, names, line, _ in imports
             for name in names if name.startswith("_") and not name.startswith("__") and target != m]
    for module, path in modules.items():
        tree = ast.parse(path.read_text())
        aliases = {a.asname or a.name.rsplit(".", 1)[-1] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                   for a in node.names if f"{node.module}.{a.name}" in modules}
        taken += [f"{path.relative_to(ROOT)}:{node.lineno} {node.value.id}.{node.attr}" for node in ast.walk(tree)
                  if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                  and node.value.id in aliases and node.attr.startswith("_") and not node.attr.startswith("__")]
    assert taken == []


def test_function_level_imports_only_for_heavy_modules(project):
    _, modules, edges = project
    heavy_modules = heavy(modules, edges)
    light = []
    for module, imports in edges.items():
        for target, _, line, in_function in imports:
            if not in_function:
                continue
            top = target.split(".")[0]
            if top in HEAVY or target in heavy_modules:
                continue
            light.append(f"{modules[module].relative_to(ROOT)}:{line} {target}")
    assert light == []


def heavy(modules: dict, edges: dict) -> set:
    """The islesbench modules whose module-level imports (transitively) load a heavy library."""
    found = {m for m, imports in edges.items()
             if any(t.split(".")[0] in HEAVY for t, _, _, inside in imports if not inside)}
    changed = True
    while changed:
        changed = False
        for m, imports in edges.items():
            if m not in found and any(t in found for t, _, _, inside in imports if not inside):
                found.add(m)
                changed = True
    return found


def strongly_connected(graph: dict) -> list:
    """Tarjan's strongly connected components of {node: set(successors)}."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def test_the_deprecated_isles_name_warns_and_nothing_imports_it(project):
    import importlib
    import sys

    _, modules, edges = project
    assert [m for m, imports in edges.items() for t, _, _, _ in imports if t == "islesbench.isles"] == []
    sys.modules.pop("islesbench.isles", None)
    with pytest.warns(DeprecationWarning, match="islesbench.layouts"):
        isles = importlib.import_module("islesbench.isles")
    from islesbench import layouts

    assert isles.discover_cohort is layouts.discover_cohort and isles.read_nifti is layouts.read_nifti


def test_the_checks_catch_what_they_guard(tmp_path):
    """An upward import and a loop written on purpose are found (the checks above can fail)."""
    table = read_layer_table((ROOT / "README.md").read_text())
    assert package_of("islesbench.imaging.nifti_io", table) == "islesbench.imaging"
    assert package_of("islesbench.training", table) not in table["islesbench.imaging"]
    assert table["islesbench.commands"] is None
    assert [c for c in strongly_connected({"a": {"b"}, "b": {"a"}, "c": {"a"}}) if len(c) > 1] == [["a", "b"]]
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from islesbench.training import fold\n")
    assert imports_of("islesbench.imaging.m", module, {"islesbench.training.fold": module}) == [
        ("islesbench.training.fold", [], 2, True)]
