"""The package's imports follow the layers docs/architecture.md lists: nothing imports upward,
and no modules import each other (at module level or inside functions)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "vitscale"


def layers() -> dict[str, int]:
    """Component (top-level module or subpackage of vitscale) -> its layer, 0 = lowest."""
    text = (REPO / "docs" / "architecture.md").read_text()
    block = text.split("## Layers", 1)[1].split("\n\n")[2]
    return {name: depth for depth, line in enumerate(block.splitlines())
            for name in line.split()}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The vitscale modules `path` imports anywhere in it (`from . import x` names module x)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "vitscale"}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] \
                if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            if target.split(".")[0] != "vitscale":
                continue
            for alias in node.names:
                sub = PACKAGE.parent / (target.replace(".", "/") + "/" + alias.name)
                if sub.with_suffix(".py").is_file() or sub.is_dir():
                    found.add(f"{target}.{alias.name}")
                elif not (target == "vitscale" and alias.name == "__version__"):
                    found.add(target)
    return found - {name}


def component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "vitscale"


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def upward(graph: dict[str, set[str]], layer: dict[str, int]) -> list[str]:
    return [f"{m} imports {d}" for m, deps in sorted(graph.items()) for d in sorted(deps)
            if layer[component(d)] > layer[component(m)]]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, found = {}, {}, [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = stack[stack.index(v):]
            del stack[stack.index(v):]
            if len(group) > 1:
                found.append(sorted(group))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_component_has_a_layer():
    layer = layers()
    components = {component(m) for m in graph()}
    assert components - set(layer) == set(), "add them to docs/architecture.md's Layers"
    assert set(layer) - components == set(), "docs/architecture.md lists what is not there"


def test_no_upward_import_and_no_cycle():
    g, layer = graph(), layers()
    assert upward(g, layer) == []
    assert cycles(g) == []


def test_the_check_sees_an_upward_import_and_a_cycle():
    layer = layers()
    g = {"vitscale.train.trainer": {"vitscale.report"}, "vitscale.report": set()}
    assert upward(g, layer) == ["vitscale.train.trainer imports vitscale.report"]
    g = {"vitscale.data.a": {"vitscale.data.b"}, "vitscale.data.b": {"vitscale.data.a"}}
    assert cycles(g) == [["vitscale.data.a", "vitscale.data.b"]]


def test_library_code_logs_instead_of_printing():
    """print( only in the command line (cli.py, commands/, the `bench amp` child's JSON line);
    the console lines and progress bar use tqdm.write (train/hooks.py); the rest logs."""
    allowed = ("vitscale/cli.py", "vitscale/commands/", "vitscale/bench/amp.py")
    printing = [str(p.relative_to(REPO)) for p in PACKAGE.rglob("*.py")
                if not str(p.relative_to(REPO)).startswith(allowed)
                and any(isinstance(n, ast.Call) and getattr(n.func, "id", None) == "print"
                        for n in ast.walk(ast.parse(p.read_text())))]
    assert printing == []


def test_the_ranks_preload_never_touches_cuda():
    """`vitscale run` forks its ranks from a forkserver that imported distributed/runner.py's
    PRELOAD first. A CUDA driver initialised there (torch.cuda.is_available() at some module's
    import, say) would be unusable in every forked rank: no torch._C._cuda_* call may happen
    while those modules import (checked in a fresh interpreter)."""
    import subprocess
    import sys
    script = """
import importlib, torch
calls = []
def watch(name, call):
    def watched(*args, **kwargs):
        calls.append(name)
        return call(*args, **kwargs)
    return watched
for name in [n for n in dir(torch._C) if n.startswith("_cuda_")]:
    if callable(getattr(torch._C, name)):
        setattr(torch._C, name, watch(name, getattr(torch._C, name)))
from vitscale.distributed.runner import PRELOAD
for module in PRELOAD:
    importlib.import_module(module)
print(sorted(set(calls)))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
