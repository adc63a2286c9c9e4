"""Read the student's code before it runs: an allow-list of what a graded notebook may use.

Decided from each student cell's syntax tree after IPython's own rewriting of magics (the
bodies of ``%time``, ``%timeit`` and ``%%capture`` are parsed and screened as code too), never
from a text search. Cells identical to the lab's own code cells are the course's and are not
read; every other code cell is, whatever its metadata says. A student cell may use:

- imports of the modules an exercise needs (``ALLOWED_MODULES``: torch, numpy, math, the
  public parts of kdlab, matplotlib, ...), and names from them that do not start with ``_``;
- of the builtins and the names IPython puts in a notebook's namespace (``get_ipython``,
  ``In``, ``Out``, ``_ih``, ...), only those of ``ALLOWED_BUILTINS``;
- any attribute that does not start with ``_`` (but ``__init__``, ``__name__``, ``__class__``,
  ``__doc__``), is not an interpreter internal (frames, tracebacks, code objects) and does not
  name a module that reaches the interpreter or the system (``os``, ``sys``, ``subprocess``,
  ``multiprocessing``, ...); never assigning to an attribute of a module;
- the magics of ``ALLOWED_MAGICS``; no other use of the IPython shell (``get_ipython``, ``In``).

Anything else makes every check of the notebook score 0, with the construct and the cell in
the reason; the notebook is then not executed. The labs need none of it.

The screen runs in a separate process with a time limit (``run``): a notebook built to make
the parser slow costs the grader at most that limit, and is then refused. This file imports
only the standard library and IPython, so that process starts fast.
"""
from __future__ import annotations

import ast
import builtins
import json
import re
import subprocess
import sys

ALLOWED_MODULES = {
    "torch", "torch.nn", "torch.nn.functional", "torch.optim", "torch.optim.lr_scheduler",
    "torch.utils", "torch.utils.data", "torch.nn.init", "torch.linalg", "torch.special",
    "numpy", "math", "random", "time", "copy", "functools", "itertools", "collections",
    "dataclasses", "typing", "statistics", "string", "textwrap", "numbers",
    "matplotlib", "matplotlib.pyplot", "matplotlib.ticker", "matplotlib.colors",
    "tqdm", "tqdm.auto", "IPython.display", "warnings",
    "kdlab", "kdlab.checks", "kdlab.compress", "kdlab.data", "kdlab.models", "kdlab.plot",
    "kdlab.teacher", "kdlab.train", "kdlab.views", "kdlab.widgets", "kdlab.runtime",
    "kdlab.text", "kdlab.lm", "kdlab.lm_zoo", "kdlab.cache", "kdlab.distill", "kdlab.evaluation",
}
# single names graded code may import from a module that is not allowed as a whole (Lab 07
# subclasses Hugging Face's Trainer; the rest of transformers stays out)
ALLOWED_FROM = {"transformers": {"Trainer", "TrainingArguments"}}
ALLOWED_BUILTINS = {
    "abs", "all", "any", "bool", "callable", "chr", "dict", "divmod", "enumerate", "filter",
    "float", "format", "frozenset", "getattr", "hasattr", "hash", "int", "isinstance",
    "issubclass", "iter", "len", "list", "map", "max", "min", "next", "object", "ord", "pow",
    "print", "property", "range", "repr", "reversed", "round", "set", "slice", "sorted",
    "staticmethod", "classmethod", "str", "sum", "super", "tuple", "type", "zip", "bin", "hex",
    "complex", "bytes", "id", "isinstance", "display", "NotImplemented", "Ellipsis",
    "Exception", "ArithmeticError", "AssertionError", "AttributeError", "IndexError",
    "KeyError", "LookupError", "NotImplementedError", "OverflowError", "RuntimeError",
    "StopIteration", "TypeError", "ValueError", "ZeroDivisionError", "FloatingPointError",
    "UserWarning", "Warning",
}
SHELL_NAMES = set(dir(builtins)) | {"In", "Out", "get_ipython", "exit", "quit"}  # minus the allowed
ALLOWED_DUNDERS = {"__init__", "__name__", "__class__", "__doc__"}
ALLOWED_DEFS = ALLOWED_DUNDERS | {"__call__", "__repr__", "__str__", "__len__", "__getitem__",
                                  "__iter__", "__next__", "__enter__", "__exit__", "__post_init__"}
INTERNAL_ATTRS = {"f_back", "f_globals", "f_locals", "f_builtins", "f_code", "f_trace",
                  "tb_frame", "tb_next", "gi_frame", "gi_code", "cr_frame", "cr_code",
                  "ag_frame", "ag_code", "co_code", "co_consts", "co_names", "func_globals",
                  "cell_contents"}
SYSTEM_ATTRS = {"os", "sys", "subprocess", "builtins", "importlib", "ctypes", "inspect", "gc",
                "threading", "multiprocessing", "signal", "mmap", "asyncio", "socket", "pickle",
                "marshal", "shutil", "pathlib", "cpp_extension", "hub", "package", "distributed",
                "concurrent", "futures", "runpy", "pty", "select", "selectors", "resource",
                "fcntl", "tempfile", "glob", "io", "library"}
ALLOWED_MAGICS = {"time": "code", "timeit": "code", "capture": "code", "matplotlib": "word",
                  "pinfo": "name", "pinfo2": "name", "pdoc": "name"}
MAX_CODE = 1_000_000  # characters of student code a notebook may hold
TIME_LIMIT = 30.0  # seconds of CPU time the screen may take per notebook


class Tampering(Exception):
    """A construct a graded notebook may not use (the message names it)."""


def _transform(source: str) -> str:
    """The cell as Python, magics rewritten by IPython (as the kernel will run it)."""
    from IPython.core.inputtransformer2 import TransformerManager
    return TransformerManager().transform_cell(source)


def _magic_code(name: str, line: str, body: str | None) -> str:
    """The Python code a code magic will run: its line (after timeit's options; %%timeit's
    setup) and its body."""
    if name == "timeit":
        line = re.sub(r"^\s*((-[nrp]\s*\d+|-[qotc])(\s+|$))*", "", line)
    elif body is not None:
        line = ""  # %%time takes nothing on its line; %%capture's line is an output name
    return line + ("\n" + body if body is not None else "")


class _Screen(ast.NodeVisitor):
    def __init__(self, system_names=frozenset()):
        self.system_names = system_names
        self.modules = {"kd", "kdlab", "torch", "np", "numpy", "F", "nn", "math", "plt", "random",
                        "time", "copy", "functools", "itertools", "collections"}

    def deny(self, what: str):
        raise Tampering(what)

    # imports
    def visit_Import(self, node):
        for a in node.names:
            if a.name not in ALLOWED_MODULES:
                self.deny(f"import {a.name}")
            self.modules.add(a.asname or a.name.split(".")[0])

    def visit_ImportFrom(self, node):
        mod = "." * node.level + (node.module or "")
        for a in node.names:
            full = f"{mod}.{a.name}"
            if a.name in ALLOWED_FROM.get(mod, ()):
                continue
            if mod not in ALLOWED_MODULES or a.name.startswith("_") or a.name == "*":
                self.deny(f"from {mod} import {a.name}")
            if full in ALLOWED_MODULES:
                self.modules.add(a.asname or a.name)

    # names, attributes, calls
    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load) and node.id in self.system_names:
            self.deny(f"the name {node.id} (a module the lab's own cells use, graded code may not)")
        if isinstance(node.ctx, ast.Load) and node.id not in ALLOWED_BUILTINS and (
                node.id in SHELL_NAMES or node.id.startswith("__") or re.fullmatch(r"_+\d*|_[io]\w*|_dh", node.id)):
            self.deny(f"the name {node.id}")

    def visit_Attribute(self, node):
        a = node.attr
        if a.startswith("_") and a not in ALLOWED_DUNDERS:
            self.deny(f"the attribute {a}")
        if a in INTERNAL_ATTRS:
            self.deny(f"the interpreter attribute {a}")
        if a in SYSTEM_ATTRS:
            self.deny(f"the attribute {a} (reaches the system)")
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in self.modules:
                self.deny(f"assigning to {ast.unparse(node)} (changes a module)")
        self.generic_visit(node)

    def visit_Call(self, node):
        f = node.func
        if isinstance(f, ast.Name) and f.id in ("getattr", "hasattr"):
            name = node.args[1] if len(node.args) > 1 else None
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                self.deny(f"{f.id}(..., <computed name>)")
            if name.value.startswith("_") or name.value in INTERNAL_ATTRS | SYSTEM_ATTRS:
                self.deny(f"{f.id}(..., {name.value!r})")
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Call) and \
                isinstance(f.value.func, ast.Name) and f.value.func.id == "get_ipython":
            self._magic(node, f.attr)
            for a in node.args:
                if not isinstance(a, ast.Constant):
                    self.visit(a)
            return
        self.generic_visit(node)

    def _magic(self, node, method: str):
        args = [a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else None
                for a in node.args]
        if method not in ("run_line_magic", "run_cell_magic") or not args or args[0] is None:
            self.deny(f"get_ipython().{method}")
        name = args[0]
        kind = ALLOWED_MAGICS.get(name)
        if kind is None:
            self.deny(f"the magic %{name}" if method == "run_line_magic" else f"the cell magic %%{name}")
        line = args[1] if len(args) > 1 else None
        body = args[2] if method == "run_cell_magic" and len(args) > 2 else None
        if line is None or (method == "run_cell_magic" and body is None):
            self.deny(f"the magic %{name} with a computed argument")
        if kind == "code":
            code = _magic_code(name, line, body)
            if name == "capture" and body is None:
                self.deny("the line magic %capture")
            if name == "capture" and not re.fullmatch(r"\s*(--no-std(out|err)\s*|--no-display\s*)*[A-Za-z_]\w*\s*|\s*", line):
                self.deny(f"%%capture {line}")
            if _parse(code) is None:
                self.deny(f"code of the magic %{name} that cannot be read")
            self.check(code)
        elif kind == "word" and not re.fullmatch(r"\s*\w*\s*", line):
            self.deny(f"%{name} {line}")
        elif kind == "name" and not re.fullmatch(r"\s*[A-Za-z_][\w.]*\s*", line):
            self.deny(f"%{name} {line}")

    def _def(self, node):
        if node.name.startswith("__") and node.name not in ALLOWED_DEFS:
            self.deny(f"defining {node.name}")
        self.generic_visit(node)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _def

    def check(self, source: str, canonical: str | None = None):
        """Screen `source`; of an edited lab cell (`canonical`), only the statements it added."""
        tree = _parse(source)
        if tree is None:
            return
        known = set()
        if canonical is not None:
            lab = _parse(canonical)
            known = {ast.dump(st) for st in lab.body} if lab is not None else set()
        for st in tree.body:
            if ast.dump(st) not in known:
                self.visit(st)


def _parse(source: str):
    try:
        return ast.parse(_transform(source))
    except (SyntaxError, ValueError):
        return None  # the kernel will report it; nothing runs from a cell that does not parse


def system_names(lab_sources) -> frozenset:
    """Names the lab's own cells bind to modules graded code may not use (e.g. ``os``)."""
    out = set()
    for src in lab_sources:
        tree = _parse(src)
        for n in ast.walk(tree) if tree is not None else ():
            if isinstance(n, ast.Import):
                out |= {a.asname or a.name.split(".")[0] for a in n.names if a.name not in ALLOWED_MODULES}
            elif isinstance(n, ast.ImportFrom) and (n.module or "") not in ALLOWED_MODULES:
                out |= {a.asname or a.name for a in n.names
                        if a.name not in ALLOWED_FROM.get(n.module or "", ())}
    return frozenset(out)


def screen_cells(student: list, lab: list = ()) -> str:
    """The tampering reason for the student's cells ('' if none).

    student: [(where, source, canonical source of the lab cell it edits, or None)];
    lab: the sources of the lab's own code cells.
    """
    size = sum(len(cell[1]) for cell in student)
    if size > MAX_CODE:
        return (f"the notebook holds {size:,} characters of code in its own cells, more than the "
                f"{MAX_CODE:,} a graded notebook may; no check earns points")
    system = system_names(lab)
    for where, src, canonical in student:
        try:
            _Screen(system).check(src, canonical)
        except Tampering as e:
            return (f"the notebook uses what a graded notebook may not ({e} in {where}); no "
                    "check earns points")
        except RecursionError:
            return f"the code of {where} is nested too deeply to be read; no check earns points"
    return ""


class ScreenBusy(RuntimeError):
    """The screen did not finish in its wall-clock allowance although it had not used up its
    CPU time: the machine was too busy, not the notebook too slow to read."""


def run(student: list, lab: list = (), timeout: float = TIME_LIMIT, wall_factor: float = 10) -> str:
    """``screen_cells`` in a separate process, stopped after `timeout` seconds of its CPU time.

    The limit is on CPU time, not wall time, so a busy machine (other gradings, a loaded CI
    runner) cannot make an honest notebook's screen run out of time. A process that has not
    finished after `wall_factor` x `timeout` seconds of wall time without reaching its CPU
    limit raises ScreenBusy (the grader reports an error to regrade, not a refusal)."""
    import math
    import signal

    payload = json.dumps({"student": student, "lab": list(lab)})
    try:
        p = subprocess.run([sys.executable, "-I", __file__, str(math.ceil(timeout))], input=payload,
                           capture_output=True, text=True, timeout=timeout * wall_factor)
    except subprocess.TimeoutExpired:
        raise ScreenBusy(f"reading the notebook's code did not finish in {timeout * wall_factor:g} s "
                         f"of wall time (less than {timeout:g} s of CPU time used): the grading "
                         "machine is too busy; grade this notebook again") from None
    if p.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return (f"reading the notebook's code took longer than {timeout:g} s of CPU time (it is "
                "built to be slow to parse); no check earns points")
    if p.returncode != 0:
        raise RuntimeError(f"the screen failed: {(p.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(p.stdout)["tampering"]


if __name__ == "__main__":
    import resource
    cpu = int(sys.argv[1]) if len(sys.argv) > 1 else int(TIME_LIMIT)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU past `cpu` seconds of CPU
    sys.setrecursionlimit(2000)
    args = json.loads(sys.stdin.read())
    print(json.dumps({"tampering": screen_cells([tuple(x) for x in args["student"]], args["lab"])}))
