"""The public package (what students get, what runs in the grading sandbox) holds no answer.

The reference implementations of the exercises and of their common mistakes live only in the
instructor's ``kdlab.grading.keys``; the course's helpers that could stand in for an exercise
refuse to run while a check probes one.
"""
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest
import torch

import kdlab
from kdlab.checks import CHECKS
from kdlab.checks._registry import KEYS_DIR

PUBLIC = [m.name for m in pkgutil.walk_packages(kdlab.__path__, "kdlab.")
          if not m.name.startswith("kdlab.grading")]


def _reference_names() -> set:
    """The public functions of the answer-key modules: the exercises' reference implementations."""
    from kdlab.grading import keys
    names = set()
    for mod in {inspect.getmodule(fn) for fn in keys.KEYS.values()}:
        names |= {n for n, f in vars(mod).items() if inspect.isfunction(f) and not n.startswith("_")
                  and f.__module__ == mod.__name__ and not n.endswith("_key")}
    return names


def test_no_reference_in_the_public_package():
    """No public module defines a function named like an exercise's reference, and no public
    source file holds the definition of one (``kd.losses``, ``kd.compress.prune_mask``...)."""
    refs = _reference_names()
    assert {"softmax_with_temperature", "entropy", "kd_loss"} <= refs, refs
    for name in PUBLIC:
        mod = importlib.import_module(name)
        defined = {n for n, f in vars(mod).items() if inspect.isfunction(f) and f.__module__ == name}
        assert not defined & refs, f"{name} defines {sorted(defined & refs)}"
    root = Path(kdlab.__file__).parent
    for path in root.rglob("*.py"):
        if "grading" in path.parts:
            continue
        text = path.read_text()
        for ref in sorted(refs):
            assert not re.search(rf"^\s*def {ref}\(", text, re.M), f"{path} defines {ref}"
    assert not hasattr(kdlab, "losses")


def test_shipped_keys_are_those_of_the_notebooks_cases():
    """Keys ship only for the notebooks' own cases, and are up to date (make-keys --check)."""
    from kdlab.grading import keys
    assert keys.write_public(check=True) == []
    assert sorted(p.stem for p in KEYS_DIR.glob("*.json")) == sorted(CHECKS)


def test_course_helpers_refuse_inside_a_check():
    """An exercise that hands its work to kd.train.fit or kd.train.distillation fails its
    check, in the notebook and in grading, also when it calls them from another thread."""
    from concurrent.futures import ThreadPoolExecutor

    from kdlab.checks import check_kd_loss
    from kdlab.runtime import HelperInCheck, checking

    def kd_loss(s, t, y, T=4.0, alpha=0.9):
        if T <= 0:
            raise ValueError("T")
        return kdlab.train.distillation(T, alpha)(s, t, y)

    def kd_loss_in_thread(s, t, y, T=4.0, alpha=0.9):
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(kd_loss, s, t, y, T, alpha).result()

    for fn in (kd_loss, kd_loss_in_thread):
        with pytest.raises(AssertionError, match="course helper"):
            check_kd_loss(fn)
    s, t, y = torch.randn(4, 3, requires_grad=True), torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    assert kd_loss(s, t, y).dim() == 0  # outside a check it works
    with checking(), pytest.raises(HelperInCheck):
        kdlab.train.fit(torch.nn.Linear(3, 3), [(torch.randn(2, 3), torch.tensor([0, 1]))],
                        torch.nn.functional.cross_entropy, progress=False)


def test_keys_compare_within_a_tolerance():
    """A key computed on another CPU differs in the last digits (a training step's weights):
    make-keys --check accepts that, and nothing larger."""
    from kdlab.grading.keys import same
    a = {"w": [1.0, 2.5, float("nan")], "n": 3, "name": "x"}
    assert same(a, {"w": [1.0 + 1e-9, 2.5, float("nan")], "n": 3, "name": "x"})
    assert not same(a, {"w": [1.001, 2.5, float("nan")], "n": 3, "name": "x"})
    assert not same(a, {"w": [1.0, 2.5], "n": 3, "name": "x"})
    assert not same(a, {"w": [1.0, 2.5, float("nan")], "n": 4, "name": "x"})
