"""Run the benchmarks, then rewrite the results tables from the JSON.

``make bench`` (``--set default``, about 45 minutes on 2 cores) re-measures everything the
README's headline rows and course map show but the 1-thread column: kd_cost, throughput,
threads, grading, course (quick and full budgets, make test). ``make bench-long``
(``--set long``, hours) runs the Hinton et al. reproductions, each resumable from its
checkpoints when interrupted, and the course on the 1-thread budget. The timing-sensitive
benchmarks run last, the course's run time at the very end.

    python -m benchmarks.run_all [--set default|long|all] [--budget tiny|full] [--out DIR] [--only NAME ...]

The tables are re-rendered only when the results go to benchmarks/results/.
"""
from __future__ import annotations

import importlib
import sys

from . import render
from ._common import RESULTS, parser, set_threads

ORDER = ("hinton", "hinton_mlp_teacher", "hinton_consistent", "hinton_variants", "kd_cost",
         "throughput", "threads", "grading", "course")
DEFAULT = ("kd_cost", "throughput", "threads", "grading", "course")
LONG = ("hinton", "hinton_mlp_teacher", "hinton_consistent", "hinton_variants", "course")


def main(argv=None) -> int:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--set", choices=("default", "long", "all"), default="default",
                   help="which benchmarks (default: what the README's headline rows show)")
    p.add_argument("--only", nargs="+", choices=ORDER, default=None,
                   help="run only these benchmarks (overrides --set)")
    a = p.parse_args(argv)
    set_threads(a.threads)
    chosen = a.only or {"default": DEFAULT, "long": LONG, "all": ORDER}[a.set]
    for name in ORDER:
        if name in chosen:
            print(f"== {name} ({a.budget} budget)", flush=True)
            mod = importlib.import_module(f"{__package__}.{name}")
            if name == "course" and a.only is None and a.set != "all":
                budgets = ["full-1thread"] if a.set == "long" else ["quick", "full"]
                mod.run(a.budget, a.out, budgets=budgets, update=True,
                        skip_make_test=a.set == "long")
            else:
                mod.run(a.budget, a.out)
    if a.out.resolve() == RESULTS.resolve():
        print(f"{'updated' if render.update() else 'unchanged'}: README.md, benchmarks/README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
