"""No import circle anywhere in kdlab/ or benchmarks/: the modules' imports (also those inside
functions) form a graph without cycles, found by reading every module's syntax tree."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("kdlab", "benchmarks")


def modules(root: Path = ROOT) -> dict:
    """{dotted module name: path} of every .py file of the packages under `root`."""
    found = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict) -> set:
    """The modules of `known` that module `name` (file `path`) imports, wherever the import sits.

    ``from P import x`` is an import of P.x when that is a module, else of P; ``import P.Q``
    of P.Q; relative imports are resolved against the module's package. Importing P.Q runs
    P's ``__init__`` first: an import of P too, unless P is one of the module's own packages
    (already being imported when the module runs).
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for a in node.names:
                out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
    own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    for m in list(out):
        parts = m.split(".")
        out |= {".".join(parts[:i]) for i in range(1, len(parts))} - own
    return {m for m in out if m in known and m != name}


def cycles(graph: dict) -> list:
    """The import circles of `graph` ({module: modules it imports}): each strongly connected
    group of more than one module (Tarjan's algorithm), as a sorted list of names."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_circle_and_a_lazy_one(tmp_path):
    """The finder itself: a circle through a function-level import and a relative import is
    found; the same package without the back edge has none."""
    pkg = tmp_path / "kdlab"
    (pkg / "sub").mkdir(parents=True)
    (tmp_path / "benchmarks").mkdir()
    (pkg / "__init__.py").write_text("from . import a, sub\n")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..a import g\n")
    known = modules(tmp_path)
    graph = {n: imports(n, p, known) for n, p in known.items()}
    assert graph["kdlab.a"] == {"kdlab.sub", "kdlab.sub.b"} and graph["kdlab.sub.b"] == {"kdlab.a"}
    assert cycles(graph) == [["kdlab.a", "kdlab.sub.b"]]
    (pkg / "sub" / "b.py").write_text("import math\n")
    graph = {n: imports(n, p, known) for n, p in known.items()}
    assert cycles(graph) == []
    # a circle through a package's __init__: kdlab.c imports kdlab.sub.b, which runs kdlab.sub
    # first, whose __init__ imports kdlab.c
    (pkg / "sub" / "__init__.py").write_text("from ..c import x\n")
    (pkg / "c.py").write_text("from kdlab.sub.b import y\n")
    known = modules(tmp_path)
    graph = {n: imports(n, p, known) for n, p in known.items()}
    assert cycles(graph) == [["kdlab.c", "kdlab.sub"]]


def test_no_import_circle_in_kdlab_or_benchmarks():
    known = modules()
    assert {"kdlab.train", "kdlab.checks._probe", "benchmarks.render", "benchmarks.run_all"} <= set(known)
    graph = {n: imports(n, p, known) for n, p in known.items()}
    assert "benchmarks.render" in graph["benchmarks.run_all"]  # the graph sees real edges
    found = cycles(graph)
    assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_imports_cross_the_instructor_only_boundary_one_way():
    """The student side (every kdlab module but kdlab.grading and kdlab.authoring) imports
    neither instructor-only package, except kdlab.validate's guarded import of the grader's
    file-name rule and screen (the release ships copies of both); the grader never imports
    the authoring tools (authoring uses the grader's notebook tools and keys, not the reverse)."""
    known = modules()
    graph = {n: imports(n, p, known) for n, p in known.items()}
    instructor = ("kdlab.grading", "kdlab.authoring")
    crossing = {n: sorted(m for m in e if m.startswith(instructor)) for n, e in graph.items()
                if n.startswith("kdlab") and not n.startswith(instructor)}
    crossing = {n: e for n, e in crossing.items() if e}
    assert crossing == {"kdlab.validate": ["kdlab.grading", "kdlab.grading.pick", "kdlab.grading.screen"]}
    assert "except ImportError" in known["kdlab.validate"].read_text()
    back = {n: sorted(m for m in e if m.startswith("kdlab.authoring"))
            for n, e in graph.items() if n.startswith("kdlab.grading")}
    assert not {n: e for n, e in back.items() if e}, back
