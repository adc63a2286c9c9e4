"""The benchmarks, listed once: each one's name, the sets that run it and its README headline rows.

A benchmark is the module ``benchmarks.<name>``: ``run(budget, out, **options)`` writes
``results/<name>.json``, ``rows(d, results)`` gives its rows of the results table and
``conditions(d)`` its part of the conditions line. ``BENCHMARKS`` is in the order of the
table; ``make bench`` runs the set "default" (what the README's headline rows show),
``make bench-long`` the set "long", in ``run_order()``: the timing-sensitive course last.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType


@dataclass(frozen=True)
class Benchmark:
    """One benchmark.

    - name: its module ``benchmarks.<name>`` and its JSON file ``results/<name>.json``
    - sets: the sets of run_all that run it ("default": make bench, "long": make bench-long)
    - headlines: patterns, each matching the start of the measurement cell of one of its rows
      that the README shows (in this order)
    - options: per set, the keyword arguments ``run`` gets when that set runs it
    - last: run after the others (its timings suffer least from their leftovers)
    """
    name: str
    sets: tuple = ()
    headlines: tuple = ()
    options: dict = field(default_factory=dict)
    last: bool = False

    def module(self) -> ModuleType:
        """The benchmark's module, imported when first needed."""
        return importlib.import_module(f"{__package__}.{self.name}")


BENCHMARKS = (
    Benchmark("hinton", ("long",)),
    Benchmark("hinton_mlp_teacher", ("long",)),
    Benchmark("hinton_consistent", ("long",)),
    Benchmark("hinton_variants", ("long",)),
    Benchmark("course", ("default", "long"),
              headlines=(r"Slowest lab, full budget$", r"Whole course, full budget$",
                         r"`make test`"),
              options={"default": {"budgets": ["quick", "full"], "update": True},
                       "long": {"budgets": ["full-1thread"], "update": True,
                                "skip_make_test": True}},
              last=True),
    Benchmark("kd_cost", ("default",),
              headlines=(r"KD epoch, cached teacher logits vs labels only \(HintonMLP\)$",)),
    Benchmark("throughput", ("default",), headlines=(r"HintonMLP training$",)),
    Benchmark("threads", ("default",)),
    Benchmark("grading", ("default",),
              headlines=(r"Grading \d+ submissions of 01_softmax_temperature",)),
)
BY_NAME = {b.name: b for b in BENCHMARKS}
SETS = ("default", "long", "all")


def names(which: str = "all") -> tuple:
    """The names of the benchmarks of set `which` ("default", "long" or "all"), in run order."""
    if which not in SETS:
        raise ValueError(f"no benchmark set {which!r}: choose one of {', '.join(SETS)}")
    return tuple(b.name for b in run_order() if which == "all" or which in b.sets)


def run_order() -> tuple:
    """All benchmarks in the order run_all runs them: the table's, those marked last at the end."""
    return tuple(b for b in BENCHMARKS if not b.last) + tuple(b for b in BENCHMARKS if b.last)

