"""The house's rules, read off the code's own imports (docs/architecture.md).

- Every module of ``pdp/`` and ``adapters/`` belongs to a layer; a module imports only from its
  own layer or the layers below it, never from one above.
- No import cycle between modules.
- The front-ends' client (``pdp.client``) imports nothing of the service.
- Views (``pdp.web.api``, ``pdp.web.console``) import neither SQLAlchemy nor Casbin; only the
  engine (``pdp.engine``) imports Casbin.
- No module of ``pdp/`` is over 500 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Where each first-party package lives in the repository: adapters/ and policies/ are installed
# as pdp.adapters and pdp.policies (pdp/adapters and pdp/policies link to them).
FIRST_PARTY = {"pdp": "pdp", "adapters": "pdp.adapters", "policies": "pdp.policies"}

# (package, rank), bottom to top; a module may import from its rank or below. The first match
# wins, so a package is listed before its parent.
LAYERS = (
    ("pdp.client", 0),  # the front-ends' client: its own world (checked apart)
    ("pdp.policies", 0),  # Casbin models and the catalogue, as data
    ("pdp.core", 1),
    ("pdp.engine", 2),
    ("pdp.adapters", 3),
    ("pdp.observability", 4),
    ("pdp.records", 5),
    ("pdp.services", 6),
    ("pdp.web", 7),
    ("pdp.cli", 8),
    ("pdp.entry", 9),
    ("pdp", 1),  # pdp/__init__.py
)


def _module(path: Path, top: str) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([FIRST_PARTY[top], *parts[1:]])


def _sources() -> dict[str, Path]:
    found = {}
    for top in FIRST_PARTY:
        # rglob does not follow pdp/adapters and pdp/policies: each folder is read once.
        for path in (ROOT / top).rglob("*.py"):
            if "migrations" not in path.parts:
                found[_module(path, top)] = path
    return found


SOURCES = _sources()


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (``from package import submodule`` names the submodule)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in SOURCES else node.module)
    return out


def _own(name: str) -> str | None:
    """The first-party module ``name`` is, or belongs to."""
    while name and name not in SOURCES:
        name = name.rpartition(".")[0]
    return name or None


GRAPH = {
    module: {own for name in _imports(path) if (own := _own(name)) and own != module}
    for module, path in SOURCES.items()
}


def _layer(module: str) -> tuple[str, int]:
    for package, rank in LAYERS:
        if module == package or module.startswith(package + "."):
            return package, rank
    raise AssertionError(f"{module} belongs to no layer: add its package to LAYERS")


def test_every_module_belongs_to_a_layer() -> None:
    for module in SOURCES:
        _layer(module)
    assert len(SOURCES) > 80


def test_no_import_runs_up_a_layer() -> None:
    upward = []
    for module, targets in GRAPH.items():
        package, rank = _layer(module)
        for target in targets:
            other, other_rank = _layer(target)
            if other_rank > rank:
                upward.append(f"{module} ({package}) imports {target} ({other})")
    assert upward == []


def test_no_import_cycle() -> None:
    # Tarjan's strongly connected components, iteratively.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0
    for start in GRAPH:
        if start in index:
            continue
        work = [(start, iter(sorted(GRAPH[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(GRAPH[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    assert cycles == []


def test_the_client_imports_nothing_of_the_service() -> None:
    leaks = {
        (module, target)
        for module, targets in GRAPH.items()
        if module.startswith("pdp.client")
        for target in targets
        if not target.startswith("pdp.client")
    }
    assert leaks == set()


@pytest.mark.parametrize(
    ("packages", "forbidden"),
    [
        (("pdp.web.api", "pdp.web.console"), ("sqlalchemy", "casbin")),
        (
            ("pdp.core", "pdp.records", "pdp.services", "pdp.web", "pdp.observability"),
            ("casbin",),
        ),
    ],
)
def test_libraries_stay_in_their_rooms(
    packages: tuple[str, ...], forbidden: tuple[str, ...]
) -> None:
    found = {
        (module, name)
        for module, path in SOURCES.items()
        if module.startswith(packages)
        for name in _imports(path)
        if name.split(".")[0] in forbidden
    }
    assert found == set()


def test_no_module_is_over_500_lines() -> None:
    sizes = {
        module: len(path.read_text().splitlines())
        for module, path in SOURCES.items()
        if module.startswith("pdp")
    }
    assert {m: n for m, n in sizes.items() if n > 500} == {}
