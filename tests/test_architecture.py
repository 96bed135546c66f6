"""The house rules docs/ARCHITECTURE.md states, checked on the code itself: no import circle in
core/ (lazy imports inside functions count too), core never imports streamlit or ui, and
core/runs.py is the only module that names the run folder's files."""
from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _module(path: Path) -> str:
    name = ".".join(path.relative_to(REPO).with_suffix("").parts)
    return name.removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return found


def _core_graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in (REPO / "core").rglob("*.py")}

    def home(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in modules.items():
        targets = {home(t) for t in _imports(path) if t.startswith("core")}
        # a package's __init__ (core, core.data) is not a dependency of its own modules
        graph[name] = {t for t in targets if t and t != name and not name.startswith(t + ".")}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
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
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_core_has_no_import_circle():
    graph = _core_graph()
    assert len(graph) > 50  # the walk really found the engine
    assert _cycles(graph) == []


def test_the_cycle_check_can_fail():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_core_never_imports_streamlit_or_ui():
    for path in (REPO / "core").rglob("*.py"):
        bad = {t for t in _imports(path) if t.split(".")[0] in ("streamlit", "ui", "pages")}
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


def test_only_core_runs_names_the_run_files():
    pattern = re.compile(r'"(status\.json|config\.json|meta\.json|metrics\.jsonl)"')
    offenders = [f"{p.relative_to(REPO)}: {m.group(0)}"
                 for folder in ("core", "ui", "pages") for p in (REPO / folder).rglob("*.py")
                 for m in pattern.finditer(p.read_text(encoding="utf-8")) if p != REPO / "core" / "runs.py"]
    assert offenders == []
