"""Run every benchmark, then rewrite the README's results table from the JSON.

The timing-sensitive benchmarks run last, the course's run time at the very end:
hinton, hinton_mlp_teacher, hinton_consistent, hinton_variants, kd_cost, throughput, threads,
grading, course.

    python -m benchmarks.run_all [--budget tiny|full] [--out DIR] [--only NAME ...]

The README is re-rendered only when the results go to benchmarks/results/.
"""
from __future__ import annotations

import importlib
import sys

from . import render
from ._common import RESULTS, parser, set_threads

ORDER = ("hinton", "hinton_mlp_teacher", "hinton_consistent", "hinton_variants", "kd_cost",
         "throughput", "threads", "grading", "course")


def main(argv=None) -> int:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--only", nargs="+", choices=ORDER, default=list(ORDER),
                   help="run only these benchmarks")
    a = p.parse_args(argv)
    set_threads(a.threads)
    for name in ORDER:
        if name in a.only:
            print(f"== {name} ({a.budget} budget)", flush=True)
            importlib.import_module(f"{__package__}.{name}").run(a.budget, a.out)
    if a.out.resolve() == RESULTS.resolve():
        print(f"{'updated' if render.update() else 'unchanged'}: {render.README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
