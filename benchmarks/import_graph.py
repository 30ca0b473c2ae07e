"""Count function-level imports in a cropsm source tree and find import cycles between modules.

Usage: python benchmarks/import_graph.py src

An edge A -> B is any import of B in A (module level or inside a function), plus the implicit
import of B's parent packages; cycles are the strongly connected components of that graph.
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path


def module_files(src: Path) -> dict[str, Path]:
    """``cropsm.x.y`` -> its file, for every module of the package under ``src``."""
    out = {}
    for path in (src / "cropsm").rglob("*.py"):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, known: set[str]) -> tuple[set[str], int]:
    """The package modules ``name`` imports, and how many import statements sit in functions."""
    is_package = path.name == "__init__.py"
    targets: set[str] = set()
    in_functions = 0

    def visit(node: ast.AST, in_function: bool) -> None:
        nonlocal in_functions
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                if isinstance(child, ast.Import):
                    names = [a.name for a in child.names]
                else:
                    base = child.module or ""
                    if child.level:
                        parts = name.split(".") if is_package else name.split(".")[:-1]
                        parts = parts[: len(parts) - (child.level - 1)]
                        base = ".".join(parts + ([base] if base else []))
                    names = [base] + [f"{base}.{a.name}" for a in child.names]
                in_functions += in_function
                targets.update(t for t in names if t in known and t != name)
            else:
                function = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
                visit(child, in_function or function)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    for target in list(targets):  # importing a.b.c imports the packages a.b and a
        parts = target.split(".")
        for k in range(2, len(parts)):
            parent = ".".join(parts[:k])
            if parent in known and parent != name and not name.startswith(parent + "."):
                targets.add(parent)
    return targets, in_functions


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
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
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            strong(v)
    return found


def main(src: Path) -> None:
    files = module_files(src)
    edges, counts = {}, Counter()
    for name, path in files.items():
        edges[name], counts[name] = imports_of(name, path, set(files))
    print("function-level imports (import statements inside functions):", sum(counts.values()))
    print("most:", counts.most_common(8))
    found = cycles(edges)
    print("cycles:", len(found))
    for component in found:
        print("  ", len(component), "modules:", ", ".join(component))
    hub = {"cropsm.pipeline", "cropsm.stages", "cropsm.skill.truth", "cropsm.run_layout"}
    print("pipeline/stages in a cycle:", any(hub & set(c) for c in found))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "src"))
