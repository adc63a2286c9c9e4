"""Run statistics: the course's one rule for "beyond seed noise" when two settings are compared.

Every verdict the labs print about two settings (KD against labels, one teacher against
another, ...) compares their results over the same seeds, where a seed fixes everything the
two runs share (initial weights, data order, pruned weights). The rule (the labs state it
once, for students, in Lab 03, section 5; the other labs point there):

    Take the difference b - a on each of the n seeds; d is their mean and s_d their sample
    standard deviation. The difference is **beyond seed noise** when
    |d| > t(n - 1) * s_d / sqrt(n), with t(n - 1) the 97.5% quantile of Student's t with
    n - 1 degrees of freedom (a two-sided paired t-test at the 5% level: 4.30 for 3 seeds,
    3.18 for 4, 2.78 for 5). Otherwise it is **within seed noise**: "not shown", not "equal".
    Fewer than MIN_SEEDS seeds are never judged.

Pairing matters: two runs of one seed share their start, so most of the spread between seeds
cancels in the difference, and a small but consistent difference can be beyond the noise while
the two means' error bars overlap.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

MIN_SEEDS = 3
# 97.5% quantiles of Student's t, by degrees of freedom (df > 30: the value of the next smaller
# tabulated df, which is a little larger than the true one, so the rule errs on "within")
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120,
         17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069,
         24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045, 30: 2.042,
         40: 2.021, 60: 2.000, 120: 1.980}


def t975(df: int) -> float:
    """97.5% quantile of Student's t with `df` >= 1 degrees of freedom (tabulated, 3 decimals)."""
    if not isinstance(df, int) or isinstance(df, bool) or df < 1:
        raise ValueError(f"degrees of freedom must be a whole number >= 1, got {df!r}")
    return _T975[max(k for k in _T975 if k <= df)]


@dataclass(frozen=True)
class Comparison:
    """The paired comparison of setting b against setting a over the same seeds.

    diff: mean of b - a over the seeds (negative: b has fewer errors); sd: sample std of the
    per-seed differences; n: seeds; fewer: seeds on which b is lower than a; limit: the
    |diff| the rule asks for, t(n - 1) * sd / sqrt(n) (nan below MIN_SEEDS seeds); beyond:
    the rule's verdict (False when not judged).
    """

    diff: float
    sd: float
    n: int
    fewer: int
    limit: float
    beyond: bool

    @property
    def judged(self) -> bool:
        """True when there were enough seeds to apply the rule."""
        return self.n >= MIN_SEEDS

    def word(self, lower: str = "lower", higher: str = "higher") -> str:
        """`lower` / `higher` (b against a) when beyond seed noise, else "within seed noise"."""
        if not self.beyond:
            return "within seed noise" if self.judged else f"not judged (fewer than {MIN_SEEDS} seeds)"
        return lower if self.diff < 0 else higher

    @property
    def text(self) -> str:
        """One line: the mean difference, its spread, the seeds b wins and the verdict."""
        if not self.judged:
            return (f"{self.diff:+.1f} on average over {self.n} seed(s), lower on {self.fewer}: "
                    f"not judged (the rule needs {MIN_SEEDS} seeds)")
        return (f"{self.diff:+.1f} ± {self.sd:.1f} (mean ± std of the {self.n} paired differences), "
                f"lower on {self.fewer} of {self.n} seeds: "
                f"{'beyond' if self.beyond else 'within'} seed noise (|mean| > {self.limit:.1f} needed)")


def compare(a, b) -> Comparison:
    """Compare setting b with setting a, seed by seed, by the course's rule (module docstring).

    Inputs: a, b: sequences of n numbers (e.g. test errors), one per seed, in the same seed
    order. Returns: a Comparison (diff = mean of b - a, ...). Raises ValueError when the lengths
    differ, a list is empty or a value is not finite.
    """
    a, b = [float(v) for v in a], [float(v) for v in b]
    if len(a) != len(b) or not a:
        raise ValueError(f"compare needs two equally long, non-empty lists of results, one per "
                         f"seed in the same order; got {len(a)} and {len(b)} values")
    if not all(math.isfinite(v) for v in a + b):
        raise ValueError("compare: every result must be a finite number (a nan or inf came in: "
                         "did a run diverge?)")
    d = [y - x for x, y in zip(a, b)]
    n = len(d)
    mean = sum(d) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in d) / (n - 1)) if n > 1 else float("nan")
    fewer = sum(v < 0 for v in d)
    if n < MIN_SEEDS:
        return Comparison(mean, sd, n, fewer, float("nan"), False)
    limit = t975(n - 1) * sd / math.sqrt(n)
    return Comparison(mean, sd, n, fewer, limit, abs(mean) > limit)


def beyond_noise(a, b) -> bool:
    """True when b differs from a beyond seed noise by the course's rule (see ``compare``)."""
    return compare(a, b).beyond
