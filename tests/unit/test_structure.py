"""The code's shape: no import circle among babeltune's modules, imports inside functions included."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "babeltune").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Every babeltune module that ``name`` imports, at the top or inside a function."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            for alias in node.names:  # `from a import b` imports module a.b when there is one, else a
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in found if m in known and m != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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


def room(module: str, packages: set[str]) -> str:
    """The room a module stands in: a subpackage is one room (``babeltune.train.stage`` -> ``babeltune.train``)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 and ".".join(parts[:2]) in packages else module


def test_the_import_graph_has_no_cycle():
    found = modules()
    graph = {name: imports(path, name, set(found)) for name, path in found.items()}
    assert sum(map(len, graph.values())) > 100  # the graph was read, not empty
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_runs_back_up_between_packages():
    """A package imported from below must not itself import what stands above it: with every subpackage drawn
    as one room, the rooms still form no circle (``cluster/`` holding both its settings, read by the config,
    and its script, which reads the config, was one)."""
    found = modules()
    packages = {name for name, path in found.items() if path.name == "__init__.py" and name.count(".") == 1}
    rooms: dict[str, set[str]] = {}
    for name, path in found.items():
        here = room(name, packages)
        there = {room(m, packages) for m in imports(path, name, set(found))}
        rooms.setdefault(here, set()).update(there - {here})
    assert len(packages) >= 6  # the folders were seen
    assert cycles(rooms) == []
