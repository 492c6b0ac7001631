"""The architecture's contracts, checked from the source: ``python -m tests.contracts``.

Read with :mod:`ast`, imports inside functions included (``if TYPE_CHECKING:``
blocks left out: they never run):

- **no cycle**: no import cycle among sqs_broker's modules;
- **worker != web**: the modules a worker process loads (and what they import
  at module level) include no web-only module; no module outside the
  worker's side imports ``sqs_broker.transport``;
- **library != example**: nothing in sqs_broker imports ``project``;
- **imports inside functions** only where :data:`INSIDE_FUNCTIONS` says why;
- **size**: no module over :data:`MAX_LINES` lines.

Prints each breach and exits 1 when there is one, 0 otherwise, so ``make
check`` can run it. ``tests/test_contracts.py`` asserts the same.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "sqs_broker"

#: The longest a module may be.
MAX_LINES = 600

#: What a worker process loads: the app and its package, what Django's setup imports
#: (admin autodiscovery, the URL check's urls and views, the checks, the models), the
#: transport, the telemetry recorder, the tasks, the start guard and the publishing guard.
WORKER_ROOTS = (
    "sqs_broker",
    "sqs_broker.admin",
    "sqs_broker.apps",
    "sqs_broker.checks",
    "sqs_broker.guard",
    "sqs_broker.models",
    "sqs_broker.publishing",
    "sqs_broker.settings",
    "sqs_broker.tasks",
    "sqs_broker.telemetry.recorder",
    "sqs_broker.templatetags.sqs_broker_tags",
    "sqs_broker.transport",
    "sqs_broker.urls",
    "sqs_broker.views",
)

#: Modules only a web process needs (a package names all its modules).
WEB_ONLY = (
    "sqs_broker.actions",
    "sqs_broker.alerts",
    "sqs_broker.dashboard",
    "sqs_broker.envelopes",
    "sqs_broker.health",
    "sqs_broker.history",
    "sqs_broker.mailboxes",
    "sqs_broker.metrics",
    "sqs_broker.moves",
    "sqs_broker.remote",
    "sqs_broker.results",
    "sqs_broker.stats",
    "sqs_broker.telemetry.read",
    "sqs_broker.triage",
)

#: The imports of sqs_broker allowed inside functions, and why (docs/architecture.md lists them):
#: each keeps a process from loading another side, or waits for Django's settings.
INSIDE_FUNCTIONS = {
    # Importing the package (a project's settings) loads neither Celery nor boto3.
    "sqs_broker": {"sqs_broker.publishing"},
    # A worker imports admin.py (autodiscovery) and builds its URLs (the URL check).
    "sqs_broker.admin": {"sqs_broker.dashboard.views", "sqs_broker.dashboard.workers"},
    # ready(): the registry is not ready when apps.py is imported; each hook on its setting.
    "sqs_broker.apps": {
        "sqs_broker.checks",
        "sqs_broker.conf",
        "sqs_broker.control",
        "sqs_broker.guard",
        "sqs_broker.publishing",
        "sqs_broker.redact",
        "sqs_broker.telemetry.recorder",
        "sqs_broker.topology",
        # Loaded by the signal that only their own process sends: beat_init, celeryd_init.
        "sqs_broker.telemetry.beat",
        "sqs_broker.transport.worker",
        "sqs_broker.revocation_sync",
        "sqs_broker.pidbox_cleanup",
    },
    # The project's Celery module imports guard before Django's settings are loaded.
    "sqs_broker.guard": {"sqs_broker.findings", "sqs_broker.redact"},
    # botocore's region list is read only when a region is checked, not by every settings import.
    "sqs_broker.settings": {"sqs_broker.settings.regions"},
    # A worker that never runs the beat task needs no data code.
    "sqs_broker.tasks": {
        "sqs_broker.stats",
        "sqs_broker.payloads",
        "sqs_broker.payloads.sweep",
        "sqs_broker.mailboxes",
    },
    # A worker loads the findings through checks.py; W017 reads heartbeats, a web-side read.
    "sqs_broker.findings.live": {"sqs_broker.mailboxes"},
    # The telemetry branch rewrites this module now; move the model imports up there.
    "sqs_broker.telemetry.store": {"sqs_broker.models"},
    # The transport runs without Django's settings too (kombu alone).
    "sqs_broker.transport": {"sqs_broker.telemetry.recorder"},
    # A worker imports views.py through the URL check.
    "sqs_broker.views": {"sqs_broker.metrics", "sqs_broker.stats"},
}

#: The worker's own side: the only modules that may import the transport. The recorder runs in
#: workers only, beat's heartbeat in beat only; apps.py imports the transport's worker hooks
#: inside the handler of celeryd_init, which only `celery worker` sends.
WORKER_SIDE = (
    "sqs_broker.transport",
    "sqs_broker.settings",
    "sqs_broker.telemetry.recorder",
    "sqs_broker.telemetry.beat",
    "sqs_broker.apps",
)


@dataclass(frozen=True)
class Import:
    """One import statement of a module: what it names, where, and whether it runs at import."""

    module: str
    target: str
    line: int
    top_level: bool


@dataclass
class Graph:
    """sqs_broker's modules, their line counts and their imports."""

    modules: dict[str, Path] = field(default_factory=dict)
    imports: dict[str, list[Import]] = field(default_factory=dict)

    def edges(self, top_level_only: bool = False) -> dict[str, set[str]]:
        """Module -> the sqs_broker modules it imports."""
        return {
            name: {i.target for i in found if i.top_level or not top_level_only}
            for name, found in self.imports.items()
        }


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """``sqs_broker/sqs/clients.py`` -> ``sqs_broker.sqs.clients`` (a package is its __init__)."""
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources(package: Path = PACKAGE) -> Iterator[Path]:
    """Every Python file of the package, migrations left out (Django writes them)."""
    for path in sorted(package.rglob("*.py")):
        if "migrations" not in path.relative_to(package).parts:
            yield path


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, top_level: bool) -> Iterator[tuple[ast.AST, bool]]:
    """Every node under ``node`` with whether it runs when the module is imported."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            for other in child.orelse:
                yield other, top_level
                yield from _walk(other, top_level)
            continue
        inside = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        yield child, top_level
        yield from _walk(child, top_level and not inside)


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The sqs_broker module ``name`` means (a name inside a module means the module)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def build(package: Path = PACKAGE) -> Graph:
    """Read every module: its size and its imports of sqs_broker (and of ``project``)."""
    graph = Graph()
    for path in sources(package):
        graph.modules[module_name(path, package)] = path
    for name, path in graph.modules.items():
        tree = ast.parse(path.read_text(), str(path))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: list[Import] = []
        for node, top_level in _walk(tree, True):
            line = getattr(node, "lineno", 0)
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # "from sqs_broker import sqs" names the module sqs_broker.sqs.
                names = [f"{base}.{alias.name}" for alias in node.names] or [base]
            for imported in names:
                if imported == "project" or imported.startswith("project."):
                    found.append(Import(name, imported, line, top_level))
                    continue
                target = _resolve(imported, graph.modules)
                if target is not None and target != name:
                    found.append(Import(name, target, line, top_level))
        graph.imports[name] = found
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    edges = graph.edges()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph.modules)))
    for node in sorted(graph.modules):
        if node not in index:
            visit(node)
    return sorted(groups)


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def worker_modules(graph: Graph) -> set[str]:
    """What the worker's roots import when loaded: module-level imports, followed through."""
    edges = graph.edges(top_level_only=True)
    seen: set[str] = set()
    todo = [root for root in WORKER_ROOTS if root in graph.modules]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(edges.get(name, ()))
        # Importing a.b.c runs a and a.b first.
        parent = name.rpartition(".")[0]
        if parent in graph.modules:
            todo.append(parent)
    return seen


def breaches(graph: Graph | None = None) -> list[str]:
    """Every contract broken, as one sentence each; empty when all hold."""
    graph = graph or build()
    found: list[str] = []
    for group in cycles(graph):
        found.append("import cycle: " + " <-> ".join(group))
    loaded = worker_modules(graph)
    for name in sorted(loaded):
        if _within(name, WEB_ONLY):
            found.append(f"worker loads web-only {name}")
    for name, imports in sorted(graph.imports.items()):
        for i in dict.fromkeys(imports):  # one line per statement and target
            if _within(i.target, ("sqs_broker.transport",)) and not _within(name, WORKER_SIDE):
                found.append(f"{name}:{i.line} imports the transport ({i.target})")
            if i.target == "project" or i.target.startswith("project."):
                found.append(f"{name}:{i.line} imports the example project ({i.target})")
    for name, imports in sorted(graph.imports.items()):
        for i in dict.fromkeys(imports):
            if not i.top_level and i.target not in INSIDE_FUNCTIONS.get(name, set()):
                found.append(f"{name}:{i.line} imports {i.target} inside a function")
    for name, path in sorted(graph.modules.items()):
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES:
            found.append(f"{name} has {lines} lines (at most {MAX_LINES})")
    return found


def main() -> int:
    """Print every breach; 1 when there is one, 0 when every contract holds."""
    found = breaches()
    for line in found:
        print(line)
    if not found:
        graph = build()
        inside = sum(not i.top_level for imports in graph.imports.values() for i in imports)
        print(
            f"Contracts hold: {len(graph.modules)} modules, no import cycle "
            f"({inside} imports inside functions counted), worker apart from web, "
            f"library apart from the example, none over {MAX_LINES} lines."
        )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
