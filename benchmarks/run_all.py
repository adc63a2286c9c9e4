"""Run the benchmarks, then rewrite the results tables from the JSON.

``make bench`` (``--set default``, about 45 minutes on 2 cores) re-measures everything the
README's headline rows and course map show but the 1-thread column: kd_cost, throughput,
threads, grading, course (quick and full budgets, make test). ``make bench-long``
(``--set long``, hours) runs the Hinton et al. reproductions, each resumable from its
checkpoints when interrupted, and the course on the 1-thread budget. The benchmarks and their
sets are listed in ``benchmarks.catalog``; the course's run time is measured last.

    python -m benchmarks.run_all [--set default|long|all] [--budget tiny|full] [--out DIR] [--only NAME ...]

The tables are re-rendered only when the results go to benchmarks/results/.
"""
from __future__ import annotations

import sys

from . import render
from ._common import RESULTS, parser, set_threads
from .catalog import BY_NAME, SETS, names


def main(argv=None) -> int:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--set", choices=SETS, default="default",
                   help="which benchmarks (default: what the README's headline rows show)")
    p.add_argument("--only", nargs="+", choices=names("all"), default=None,
                   help="run only these benchmarks (overrides --set)")
    a = p.parse_args(argv)
    set_threads(a.threads)
    chosen = a.only or names(a.set)
    for name in names("all"):
        if name in chosen:
            print(f"== {name} ({a.budget} budget)", flush=True)
            b = BY_NAME[name]
            b.module().run(a.budget, a.out, **({} if a.only else b.options.get(a.set, {})))
    if a.out.resolve() == RESULTS.resolve():
        print(f"{'updated' if render.update() else 'unchanged'}: README.md, benchmarks/README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
