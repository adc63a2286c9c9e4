"""Read the student's code cells before grading: reference implementations and tampering.

Decided from each cell's syntax tree (after IPython's own rewriting of magics), never from a
text search. Cells identical to the lab's own cells are the course's code and are not read.

- **Answers out of reach.** An exercise cell, or any cell of the student's that (re)defines
  the object a check grades (``kd_loss = ...``), that uses the course's reference
  implementations (``kd.losses``, ``kd.compress``, ``kdlab.checks``, ``kdlab.grading``, a name imported from
  them, or a name the student bound to one of them in another cell) makes that check score 0
  with the reason "uses the course's reference implementation".
- **Tampering.** Code that inspects or rewrites the interpreter or the notebook machinery
  (``exec``/``eval``/``compile``/``__import__``, ``importlib``, ``sys.modules``/frames/trace
  hooks, ``gc``, ``inspect``, ``ctypes``, IPython input transformers, events and exception
  hooks, magics that run other files or shell commands, subprocesses, dunder attributes such
  as ``__globals__``, assigning to an attribute of a module (``torch.allclose = ...``),
  ``setattr``/``getattr`` with a computed name, ...) in any of the student's cells makes
  every check of the notebook score 0, with the construct and the cell in the reason. The
  notebook is then not executed. The labs need none of it.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field

from .notebook_io import kdlab_meta

REFERENCE_MODULES = ("losses", "compress", "checks", "grading")
BANNED_CALLS = {"exec", "eval", "compile", "__import__", "globals", "vars", "breakpoint",
                "delattr", "setattr"}
BANNED_MODULES = {"importlib", "gc", "inspect", "ctypes", "builtins", "__builtin__", "imp",
                  "runpy", "pickle", "marshal", "code", "codeop", "sysconfig", "site",
                  "subprocess", "multiprocessing", "pty", "threading", "_thread", "signal",
                  "types", "dis", "traceback", "atexit", "faulthandler", "tracemalloc"}
BANNED_SYS = {"_getframe", "modules", "settrace", "setprofile", "meta_path", "path_hooks",
              "path_importer_cache", "addaudithook", "path", "displayhook", "excepthook",
              "_current_frames", "monitoring", "setrecursionlimit"}
FRAME_ATTRS = {"f_back", "f_globals", "f_locals", "f_builtins", "f_code", "tb_frame", "tb_next",
               "gi_frame", "cr_frame", "ag_frame"}
SHELL_ATTRS_OK = {"run_line_magic", "run_cell_magic"}
MAGICS_OK = {"matplotlib", "time", "timeit", "config", "precision", "who", "whos", "pwd",
             "env", "pinfo", "pinfo2", "pdoc", "psearch", "capture", "prun", "debug"}
IPYTHON_ATTRS = {"input_transformers_post", "input_transformers_cleanup", "ast_transformers",
                 "set_custom_exc", "register_magic_function", "events", "user_ns",
                 "user_global_ns", "run_cell", "run_ast_nodes", "transform_cell", "display_pub",
                 "displayhook", "showtraceback", "set_hook", "magics_manager", "extension_manager"}
BANNED_OS = {"system", "popen", "fork", "forkpty", "execv", "execve", "execl", "execle",
             "execlp", "execlpe", "execvp", "execvpe", "spawnl", "spawnv", "posix_spawn",
             "posix_spawnp", "kill", "killpg"}
MODULE_ROOTS = {"sys", "torch", "F", "nn", "np", "os", "math", "builtins", "numpy"}
DUNDERS_OK = {"__init__", "__name__", "__class__", "__call__", "__len__", "__getitem__",
              "__setitem__", "__repr__", "__str__", "__iter__", "__next__", "__enter__",
              "__exit__", "__doc__", "__version__", "__file__", "__qualname__", "__module__"}


@dataclass
class Finding:
    """What the screen found: per-check reference use, and notebook-level tampering."""
    reference: dict = field(default_factory=dict)  # check name -> reason
    tampering: str = ""  # reason, empty if none


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _python(source: str):
    """The cell's syntax tree after IPython's rewriting of magics, or None if it does not parse."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
        source = TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 - fall back to the raw source
        pass
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError):
        return None


def _root(node):
    """The Name at the root of an attribute chain a.b.c (or None)."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _chain(node) -> list:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return parts[::-1]


class _Cell(ast.NodeVisitor):
    """Collect, for one cell: names bound, reference uses, tampering constructs."""

    def __init__(self, kd_names: set, tainted: set):
        self.kd_names, self.tainted = kd_names, tainted
        self.modules = set(MODULE_ROOTS)  # names bound to imported modules in this cell
        self.bound, self.ref_uses, self.tamper = set(), [], []
        self.binds_ref = set()  # names this cell binds to something that uses a reference

    # --- what counts as a reference
    def _is_ref_chain(self, node) -> bool:
        parts = _chain(node)
        if not parts:
            return False
        if parts[0] in self.tainted:
            return True
        return parts[0] in self.kd_names and len(parts) > 1 and parts[1] in REFERENCE_MODULES

    def visit_Import(self, node):
        for a in node.names:
            top = a.name.split(".")[0]
            if top in BANNED_MODULES or a.name == "IPython.core" or a.name.startswith("IPython.core."):
                self.tamper.append(f"import {a.name}")
            parts = a.name.split(".")
            if parts[0] == "kdlab" and len(parts) > 1 and parts[1] in REFERENCE_MODULES:
                self.ref_uses.append(f"import {a.name}")
                self.binds_ref.add((a.asname or parts[0]))
            elif parts[0] == "kdlab":
                self.kd_names.add(a.asname or "kdlab")
            self.bound.add(a.asname or parts[0])
            self.modules.add(a.asname or parts[0])

    def visit_ImportFrom(self, node):
        mod = node.module or ""
        parts = mod.split(".")
        if parts[0] in BANNED_MODULES or mod.startswith("IPython.core"):
            self.tamper.append(f"from {mod} import ...")
        for a in node.names:
            name = a.asname or a.name
            self.bound.add(name)
            self.modules.add(name)  # possibly a module (from torch import nn): never assigned into
            if parts[0] == "kdlab" and ((len(parts) > 1 and parts[1] in REFERENCE_MODULES)
                                        or a.name in REFERENCE_MODULES):
                self.ref_uses.append(f"from {mod} import {a.name}")
                self.binds_ref.add(name)
            elif parts[0] == "kdlab" and len(parts) == 1:
                pass
            if parts[0] == "sys" and a.name in BANNED_SYS:
                self.tamper.append(f"from sys import {a.name}")

    def visit_Attribute(self, node):
        if self._is_ref_chain(node):
            self.ref_uses.append(".".join(_chain(node)))
        attr = node.attr
        if attr.startswith("__") and attr.endswith("__") and attr not in DUNDERS_OK:
            self.tamper.append(f"the attribute {attr}")
        elif attr in FRAME_ATTRS:
            self.tamper.append(f"the frame attribute {attr}")
        elif _root(node) == "sys" and isinstance(node.value, ast.Name) and attr in BANNED_SYS:
            self.tamper.append(f"sys.{attr}")
        elif (isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
              and node.value.func.id == "get_ipython" and attr not in SHELL_ATTRS_OK):
            self.tamper.append(f"get_ipython().{attr}")
        elif attr in IPYTHON_ATTRS:
            self.tamper.append(f"the IPython attribute {attr}")
        elif _root(node) == "os" and attr in BANNED_OS:
            self.tamper.append(f"os.{attr}")
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            root = _root(node)
            if root in self.kd_names or root in self.modules or root in self.tainted:
                self.tamper.append(f"assigning to {'.'.join(_chain(node))} (changes a module)")
        self.generic_visit(node)

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load) and node.id in self.tainted:
            self.ref_uses.append(node.id)
        if node.id in ("__builtins__", "__loader__", "__spec__"):
            self.tamper.append(node.id)
        if isinstance(node.ctx, ast.Store):
            self.bound.add(node.id)

    def visit_Call(self, node):
        f = node.func
        if isinstance(f, ast.Name) and f.id in BANNED_CALLS:
            self.tamper.append(f"{f.id}()")
        if isinstance(f, ast.Attribute) and f.attr == "run_line_magic" and node.args:
            magic = node.args[0].value if isinstance(node.args[0], ast.Constant) else None
            if magic not in MAGICS_OK:
                self.tamper.append(f"the magic %{magic}")
        if isinstance(f, ast.Attribute) and f.attr == "run_cell_magic" and node.args:
            magic = node.args[0].value if isinstance(node.args[0], ast.Constant) else None
            if magic not in ("time", "timeit", "capture"):
                self.tamper.append(f"the cell magic %%{magic}")
        if isinstance(f, ast.Name) and f.id == "getattr" and len(node.args) >= 2 and not isinstance(
                node.args[1], ast.Constant):
            target = _root(node.args[0])
            if target in self.kd_names or target in self.tainted or target in self.modules:
                self.tamper.append(f"getattr({target}, <computed name>)")
        self.generic_visit(node)

    def _def(self, node):
        self.bound.add(node.name)
        before = len(self.ref_uses)
        self.generic_visit(node)
        if len(self.ref_uses) > before:
            self.binds_ref.add(node.name)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _def

    def visit_Assign(self, node):
        before = len(self.ref_uses)
        self.visit(node.value)
        uses = len(self.ref_uses) > before
        for t in node.targets:
            self.visit(t)
            if uses:
                self.binds_ref.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))


def screen(cells: list, lab_nb: dict, checks: list) -> Finding:
    """Screen the student's cells (those not identical to a cell of the lab).

    cells: the restored notebook's cells; lab_nb: the canonical lab; checks: its Check list.
    """
    canonical = {_source(c).strip() for c in lab_nb["cells"] if c.get("cell_type") == "code"
                 and "exercise" not in kdlab_meta(c)}
    lab_ids = [c.get("id") for c in lab_nb["cells"]]
    # the check that follows each exercise cell of the lab, and the object each check grades
    ex_check, graded = {}, {}
    for chk in checks:
        k = lab_ids.index(chk.cell.get("id"))
        for c in reversed(lab_nb["cells"][:k]):
            if "exercise" in kdlab_meta(c):
                ex_check.setdefault(c.get("id"), chk.name)
                break
        for p in chk.probes:
            graded.setdefault(p.expr.split(".")[0], set()).add(chk.name)
    student = [(i, c) for i, c in enumerate(cells) if c.get("cell_type") == "code"
               and ("exercise" in kdlab_meta(c) or _source(c).strip() not in canonical)
               and "check" not in kdlab_meta(c)]
    trees = [(i, c, _python(_source(c))) for i, c in student]
    kd_names, tainted = {"kd", "kdlab"}, set()
    for _ in range(4):  # names bound to references in one cell taint their uses in others
        grew = False
        for _i, _c, tree in trees:
            if tree is None:
                continue
            v = _Cell(set(kd_names), set(tainted))
            v.visit(tree)
            new = v.binds_ref - tainted
            kd_names |= v.kd_names
            if new:
                tainted |= new
                grew = True
        if not grew:
            break
    finding = Finding()
    for i, cell, tree in trees:
        if tree is None:
            continue
        v = _Cell(set(kd_names), set(tainted))
        v.visit(tree)
        where = f"cell {i} (id {cell.get('id')!r})"
        if v.tamper and not finding.tampering:
            finding.tampering = (f"the notebook inspects or rewrites the interpreter or the "
                                 f"grading machinery ({', '.join(sorted(set(v.tamper))[:3])} in "
                                 f"{where}); graded notebooks may not, so no check earns points")
        if not v.ref_uses:
            continue
        targets = set()
        if "exercise" in kdlab_meta(cell):
            targets |= {ex_check[cell.get("id")]} if cell.get("id") in ex_check else set()
        for name in v.bound:
            targets |= graded.get(name, set())
        for name in sorted(targets):
            finding.reference.setdefault(
                name, f"uses the course's reference implementation ({sorted(set(v.ref_uses))[0]} "
                      f"in {where}): the exercise must be your own code")
    return finding
