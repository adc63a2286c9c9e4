"""How a shuffle went wrong: the diagnosis of the permute_dark_knowledge check (Lab 06).

A right answer can give any order, so the verdict compares what every right answer shares
with the very `p` the student's function received: the rows hold p's values (exactly: a
permutation computes nothing), p_y stays in its column, and on identical rows the orders of
the wrong-class values are all possible and about equally likely. Each helper fails with the
mistake it recognises (sorted rows, rows of the batch moved, values renormalised or repeated,
rotations, Sattolo's cycles, the naive swap shuffle's frequencies, ...).
"""
from __future__ import annotations

import functools
import itertools
import math

import torch

from ._common import fail, short


# 10,000 identical rows of 5 classes: how often each of the 4! = 24 orders of the 4 wrong-class
# values appears. A right shuffle's chi-square (23 degrees of freedom) exceeds CHI2_LIMIT with
# probability 1e-9, so a right answer fails once in a billion gradings. The naive swap shuffle
# (swap position a with any position, a = 0..3) gives the orders probabilities 8/256 .. 15/256:
# a noncentrality of 0.0298 per row, 298 on 10,000 rows, and a chi-square below the limit with
# probability 2e-51. (3,000 rows let it pass on about 4% of fresh seeds.)
N_SAME, C_SAME = 10_000, 5
CHI2_LIMIT = 89.1


def _rows_of_p_shuffled(title, g, p, where) -> None:
    """Fail if every row of the result is a whole row of p, not all in their own places."""
    if len(p) > 1000 or len(torch.unique(p, dim=0)) != len(p):
        return
    match = (g[:, None, :] == p[None, :, :]).all(dim=2)
    if bool(match.any(dim=1).all()) and not bool(match.diagonal().all()):
        i = int((~match.diagonal()).nonzero()[0])
        j = int(match[i].nonzero()[0])
        fail(title, f"{where}: your result's rows are p's rows in another order (row {i} is p's "
                    f"row {j}): you shuffled the batch (dimension 0), not the classes inside "
                    "each row",
             "row i must stay row i: shuffle its columns other than labels[i] (dimension 1)")


def _values_changed(title, g, p, y, where) -> None:
    """Fail, naming how, when some row of g does not hold p's row's values."""
    rows = torch.arange(len(y))
    ps, gs = p.sort(dim=1).values, g.sort(dim=1).values
    bad = (gs != ps).any(dim=1).nonzero().flatten()
    if not len(bad):
        return
    i = int(bad[0])
    shown = f"\n    got      {short(g[i])}\n    p's row  {short(p[i])}"
    if torch.equal(g.flatten().sort().values, p.flatten().sort().values):
        fail(title, f"{where}: values moved from one row to another (row {i} no longer "
                    f"holds the values of p's row){shown}",
             "shuffle within each row: the order of row i's wrong-class values, not the "
             "values of the whole batch")
    if torch.allclose(gs.double(), ps.double(), rtol=1e-4, atol=0.0):
        rel = float(((gs - ps).abs() / ps.abs().clamp_min(1e-30)).max())
        fail(title, f"{where}: row {i} holds p's values up to rounding (largest relative "
                    f"difference {rel:.2g}) but not exactly: your function computed new "
                    f"numbers, e.g. renormalised the row (/ sum) or went through log/exp or "
                    f"another dtype{shown}",
             "a permutation only moves values: index or gather p and do no arithmetic on it "
             "(p's rows already sum to 1)")
    py = p[i, y[i]]
    if g[i, y[i]] == py and int((g[i] == py).sum()) == 2:
        lost = [float(v) for v in p[i] if not bool((g[i] == v).any())]
        fail(title, f"{where}: the true class's value {float(py):.6g} appears twice in row {i} "
                    f"(label {int(y[i])}) and p's value {lost[0]:.6g} is missing: after "
                    "shuffling all C columns you wrote p_y into column labels[i] over the value "
                    f"that was there{shown}",
             "move that value instead of overwriting it: swap the two entries (the column "
             "where p_y landed and column labels[i]), or shuffle only the C - 1 other columns")
    member = (g[i][:, None] == p[i][None, :]).any(dim=1)
    if bool(member.all()):
        fail(title, f"{where}: row {i} repeats some of p's values and lacks others: you drew "
                    "the new positions with replacement (torch.randint, multinomial(..., "
                    f"replacement=True)), which is not a permutation{shown}",
             "draw a permutation: torch.randperm(C - 1, generator=generator), or "
             "torch.rand(..., generator=generator).argsort(dim=1)")
    if not bool(member.any()):
        fail(title, f"{where}: none of row {i}'s values is one of p's: your function changed the "
                    f"values (added noise, smoothed them or took a softmax again){shown}",
             "a permutation only moves p's values: return p's own numbers in other columns")
    fail(title, f"{where}: row {i} does not hold the values of p's row {i} in another order:"
                f"{shown}",
         "a permutation moves values, it never changes, repeats or drops one: index the "
         "row with a permutation of its wrong-class columns")


def _target_moved(title, g, p, y, where) -> None:
    """Fail, naming how, when rows hold p's values but p_y left column labels[i]."""
    rows = torch.arange(len(y))
    moved = (g[rows, y] != p[rows, y]).nonzero().flatten()
    if not len(moved):
        return
    i, yi = int(moved[0]), int(y[moved[0]])
    at = (f"in row {i} (label {yi}) p[{i}, {yi}] = {float(p[i, yi]):.6g}, your result has "
          f"{float(g[i, yi]):.6g} there")
    d = g.diff(dim=1)
    if bool((d >= 0).all()) or bool((d <= 0).all()):
        fail(title, f"{where}: every row of your result is sorted "
                    f"({'ascending' if bool((d >= 0).all()) else 'descending'}): you ordered the "
                    "values (sort, or p.argsort used as an order), which is not random, and the "
                    f"true class's probability moved: {at}",
             "argsort of random keys is a shuffle, argsort of p is a sort: draw keys with "
             "torch.rand(N, C, generator=generator), give column labels[i] the largest key, "
             "and gather the others in the order of their keys")
    top = p.argmax(dim=1)
    if bool((g[rows, top] == p[rows, top]).all()) and bool((top != y).any()):
        fail(title, f"{where}: the most probable class of each row stayed in place, but the "
                    f"label's did not: you kept p.argmax(dim=1) fixed, not labels: {at}",
             "the true class of row i is labels[i] (the teacher is sometimes wrong): keep "
             "column labels[i] and shuffle the others")
    order = (g[0][:, None] == p[0][None, :]).int().argmax(dim=1)
    if len(g) > 1 and torch.equal(g, p[:, order]):
        fail(title, f"{where}: every row's columns moved in the same way: you drew ONE order of "
                    f"all C columns for the whole batch (p[:, perm]), so the true class moved: "
                    f"{at}",
             "draw an order for every row, among its C - 1 wrong-class columns only: "
             "column labels[i] stays")
    fail(title, f"{where}: you shuffled all C columns of each row: the true class's probability "
                f"moved with the others: {at}",
         "leave column labels[i] of row i alone and shuffle only the other C - 1 columns (or, "
         "after shuffling all C, swap p_y back into column labels[i])")


def same_rows(title: str, got: torch.Tensor, p: torch.Tensor, y: torch.Tensor,
               where: str) -> None:
    """Fail unless every row keeps p_y in place and holds the same values as p's row, naming
    the mistake otherwise.

    p: (N, C), the very tensor the student's function received (on this machine): a
    permutation moves values and never changes them, so the comparison is exact, and it is
    made with the numbers this CPU computed, never with numbers shipped from another one.
    """
    g = got.to(p.dtype)
    _rows_of_p_shuffled(title, g, p, where)
    _values_changed(title, g, p, y, where)
    _target_moved(title, g, p, y, where)


def wrong_class_values(g: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N, C - 1): each row's values outside column labels[i], in column order."""
    keep = torch.ones(g.shape, dtype=torch.bool)
    keep[torch.arange(len(y)), y] = False
    return g[keep].view(len(y), -1)


def _orders(got: torch.Tensor, row: torch.Tensor, label: int) -> torch.Tensor:
    """(N, n): where each wrong-class value came from: out[:, others[j]] = row[others[k]] with
    k = result[:, j], for rows that all started as `row` (distinct values)."""
    others = [c for c in range(got.shape[1]) if c != label]
    src = row[others].to(got.dtype)
    return (got[:, others][:, :, None] == src[None, None, :]).int().argmax(dim=2)


def _code(sigma: torch.Tensor) -> torch.Tensor:
    """One integer per row for an (N, n) array of orders."""
    n = sigma.shape[1]
    code = torch.zeros(len(sigma), dtype=torch.long)
    for j in range(n):
        code = code * n + sigma[:, j]
    return code


def _naive_swap_shares(n: int) -> list:
    """The order frequencies of the naive swap shuffle (swap position a with any position,
    a = 0..n-1, forwards or backwards, applied as an order or its inverse), one (n**n,)
    tensor of probabilities indexed by ``_code`` each: fresh tensors of a table worked out
    once per process (its 4 * n**n swap sequences took 0.08 s at every biased shuffle)."""
    return [torch.tensor(shares, dtype=torch.float64) for shares in _naive_swap_table(n)]


@functools.lru_cache(maxsize=None)
def _naive_swap_table(n: int) -> tuple:
    """``_naive_swap_shares`` as tuples of floats (immutable, so they can be kept)."""
    variants = []
    for backwards in (False, True):
        for inverse in (False, True):
            counts = torch.zeros(n ** n, dtype=torch.float64)
            for seq in itertools.product(range(n), repeat=n):
                idx = list(range(n))
                for a, b in zip(reversed(range(n)) if backwards else range(n), seq):
                    idx[a], idx[b] = idx[b], idx[a]
                if inverse:
                    idx = [idx.index(k) for k in range(n)]
                counts[_code(torch.tensor([idx]))] += 1
            variants.append(tuple((counts / counts.sum()).tolist()))
    return tuple(variants)


def _chi2(counts: torch.Tensor, shares: torch.Tensor) -> float:
    """Pearson's chi-square of `counts` against the probabilities `shares` (inf where an order
    of share 0 appears)."""
    expected = shares * counts.sum()
    if bool(((expected == 0) & (counts > 0)).any()):
        return float("inf")
    pos = expected > 0
    return float(((counts[pos] - expected[pos]) ** 2 / expected[pos]).sum())


def uniform_orders(title, got, row, label) -> str:
    """Fail unless the orders of the 10,000 identical rows are all possible and about equally
    likely, naming the biased shuffles; return the pass detail."""
    n = C_SAME - 1
    sigma = _orders(got, row, label)
    counts = torch.bincount(_code(sigma), minlength=n ** n).double()
    n_orders = math.factorial(n)
    seen = int((counts > 0).sum())
    rows = f"{N_SAME:,} identical rows"
    if seen == 1:
        fail(title, f"{rows} all came out in the same order: you drew one order and applied it "
                    "to every row",
             "draw a new order for every row: e.g. torch.rand(N, C, generator=generator)"
             ".argsort(dim=1), or torch.randperm(C - 1, generator=generator) inside a loop over rows")
    shift = (sigma - sigma[:, :1]) % n
    if torch.equal(shift, torch.arange(n).expand_as(shift)):
        fail(title, f"{rows} came out in only {seen} of the {n_orders} possible orders of their "
                    f"{n} wrong-class values, each a rotation of the original order (torch.roll "
                    "by a random amount): a rotation is not a shuffle",
             "every order must be possible and equally likely: sort random keys "
             "(torch.rand(...).argsort) or use torch.randperm")
    if not bool((sigma == torch.arange(n)).any()):
        fail(title, f"on {rows} no wrong-class value ever stayed in its column: only {seen} of "
                    f"the {n_orders} orders appear (a shuffle leaves a value in place in "
                    f"{n_orders - round(n_orders / math.e)} of the {n_orders}). A Fisher-Yates loop that picks j in "
                    "0..i-1 instead of 0..i (Sattolo's algorithm) does this",
             "for i from n - 1 down to 1 pick j uniformly in 0..i, i included; or simply "
             "torch.randperm(n, generator=generator)")
    if seen < n_orders:
        fail(title, f"{rows} came out in only {seen} of the {n_orders} possible "
                    f"orders of their {n} wrong-class values",
             "every order must be possible and equally likely: sort random keys "
             "(torch.rand(...).argsort) or use torch.randperm")
    uniform = (counts > 0).double() / n_orders
    chi2 = _chi2(counts, uniform)
    if chi2 > CHI2_LIMIT:
        spread = (f"they appear from {int(counts[counts > 0].min())} to {int(counts.max())} "
                  f"times, expected about {N_SAME / n_orders:.0f} each (chi-square {chi2:.0f} "
                  f"with {n_orders - 1} degrees of freedom, limit {CHI2_LIMIT:g})")
        if any(_chi2(counts, s) <= CHI2_LIMIT for s in _naive_swap_shares(n)):
            fail(title, f"on {rows} the {n_orders} orders of the wrong-class values appear with "
                        f"the frequencies of the naive swap shuffle: {spread}. Swapping each "
                        "position with ANY position gives n**n equally likely swap sequences, "
                        "which n! orders cannot share equally",
                 "Fisher-Yates: for i from n - 1 down to 1, swap i with j drawn uniformly in "
                 "0..i (not 0..n-1); or sort random keys, torch.rand(...).argsort(dim=1)")
        fail(title, f"on {rows} the {n_orders} orders of the wrong-class values are not equally "
                    f"likely: {spread}",
             "a uniform shuffle: sort random keys (torch.rand(N, C, generator=generator)"
             ".argsort(1)) or torch.randperm; keys with ties (torch.randint) or a swap with "
             "any position give a biased shuffle")
    return (f"the true class stays, rows keep their values, reproducible with the generator, "
            f"all {n_orders} orders about equally likely on {rows} (chi-square "
            f"{chi2:.0f}, limit {CHI2_LIMIT:g})")
