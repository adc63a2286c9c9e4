"""Checks of Lab 02 (dark knowledge): ``check_class_similarity`` and ``check_dark_knowledge``.

Both run the student's function on small soft targets whose answers are known (fixed in the
notebook, drawn afresh from a seed in grading), and recognise the common mistakes (sums
instead of means, transposed matrices, hard labels, the wrong axis) so the message can say
which one was made. Each check is a probe (calls the function, records plain data) and a
verdict (reads the data, computes the expected answer itself).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _probe as _p
from ._common import close, cmp, fail, result, unchanged
from ._registry import register

# ------------------------------------------------------------------ inputs


def _probs(n_per_class, C: int, g: torch.Generator, wrong: int = 0):
    """Soft targets of a fake teacher and labels; `wrong` examples are misclassified.

    Inputs: n_per_class: list of C counts (unequal counts catch normalisation mistakes).
    Returns: probs (N, C) float32, rows sum to 1; labels (N,) int64 (not sorted).
    """
    labels = torch.cat([torch.full((int(n),), c, dtype=torch.long) for c, n in enumerate(n_per_class)])
    labels = labels[torch.randperm(len(labels), generator=g)]
    logits = torch.randn(len(labels), C, generator=g) * 1.5
    logits[torch.arange(len(labels)), labels] += 4.0
    # a few confident mistakes: the teacher's top class is not the label
    for i in range(wrong):
        other = (labels[i] + 1 + i % (C - 1)) % C
        logits[i, other] = logits[i].max() + 2.0
    return F.softmax(logits, dim=1), labels


def _gen(seed) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _row_sums(m: torch.Tensor) -> str:
    sums = m.detach().double().sum(1)
    return "[" + ", ".join(f"{v:.3g}" for v in sums[:4].tolist()) + (", ...]" if len(sums) > 4 else "]")


_close = close  # shape, finite values, allclose (atol 1e-5, rtol 1e-4)


def _call_probe(fn, inp) -> dict:
    """Call fn(probs, labels) on copies of each case; record the outcomes (plain data)."""
    return {"cases": [_p.call(fn, probs.clone(), labels.clone())[0]
                      for _, probs, labels in inp["cases"]]}


def _complete(name: str, data, inp) -> None:
    """Fail if the probe's data does not hold one outcome per case (it always records all)."""
    cases = data.get("cases") if isinstance(data, dict) else None
    if not isinstance(cases, list) or len(cases) < len(inp["cases"]):
        fail(name, "the check's probe returned incomplete data",
             "run the check cell again after restarting the kernel; do not change kdlab")


def _result(name: str, out: dict, probs: torch.Tensor) -> torch.Tensor:
    """The tensor the recorded call returned; fail if it crashed or changed its inputs."""
    got = result(name, out, shapes=f"{tuple(probs.shape)}, {(probs.shape[0],)}")
    for i, what in out.get("changed", []):
        if int(i) == 0 and what == "values":
            fail(name, "your function changed probs in place",
                 "work on a copy (probs.clone()) or use out-of-place operations")
    unchanged(name, out, ["probs", "labels"])
    return got


# ------------------------------------------------------------------ class_similarity

_SIM = "check_class_similarity"


def _reference_similarity(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    C = probs.shape[1]
    onehot = F.one_hot(labels, C).to(probs.dtype)
    return (onehot.T @ probs) / onehot.sum(0)[:, None]


def similarity_inputs(seed=None, n_classes: int = 10, wrong: int | None = None) -> dict:
    """Two cases: C classes with C digits each (N = C * C), and `n_classes` with unequal counts.

    seed None: the notebook's fixed inputs (4 classes x 4 digits, 3 misclassified; 10 classes
    with 1 to 10 digits, 6 misclassified). An int: fresh values of the same kinds (3 to 5
    classes with as many digits each; `n_classes` classes with distinct counts, in random
    order; a few misclassified digits in both). params: n_classes (>= 3) of the second case;
    wrong: the number of misclassified digits of the second case.
    """
    C2 = int(n_classes)
    if C2 < 3:
        raise ValueError(f"n_classes must be >= 3, got {n_classes}")
    if seed is None:
        C1, g1, g2 = 4, _gen(1), _gen(2)
        counts2 = list(range(1, C2 + 1))
        w1, w2 = 3, (6 if wrong is None else int(wrong))
    else:
        g = _gen(20_000 + int(seed))
        C1 = int(torch.randint(3, 6, (1,), generator=g))
        counts2 = (torch.randperm(C2, generator=g) + 1 + int(torch.randint(0, 3, (1,), generator=g))).tolist()
        w1 = int(torch.randint(1, C1, (1,), generator=g))
        w2 = int(torch.randint(2, C2, (1,), generator=g)) if wrong is None else int(wrong)
        g1, g2 = g, g
    p1, l1 = _probs([C1] * C1, C1, g1, wrong=w1)
    # equal counts (C per class, N = C * C): a mean over classes gives a (C, C) result
    case1 = (f"{C1} classes, {C1} digits each", p1, l1)
    # unequal counts: sums, wrong normalisers and column-wise divisions show up
    p2, l2 = _probs(counts2, C2, g2, wrong=w2)
    case2 = (f"{C2} classes, {min(counts2)} to {max(counts2)} digits each", p2, l2)
    return {"cases": [case1, case2]}


def similarity_probe(fn, inp) -> dict:
    """Call fn(probs, labels) on each case of ``similarity_inputs``."""
    return _call_probe(fn, inp)


def similarity_verdict(data, inp) -> str:
    """Check ``class_similarity(probs, labels) -> (C, C)``: row c = mean soft target of class c.

    Input of the student's function: probs (N, C) soft targets, labels (N,) int64.
    """
    name = _SIM
    _complete(name, data, inp)
    for (desc, probs, labels), out in zip(inp["cases"], data["cases"]):
        N, C = probs.shape
        got = _result(name, out, probs)
        exp = _reference_similarity(probs, labels)
        onehot = F.one_hot(labels, C).to(probs.dtype)
        counts = onehot.sum(0)
        summed = onehot.T @ probs
        if got.shape == (C, C):
            if _close(got, exp):
                continue
            if not torch.allclose(exp, exp.T, atol=1e-5) and _close(got, exp.T):
                fail(name, f"[{desc}] your matrix is transposed: got[j, c] holds what belongs "
                           "in [c, j]",
                     "row c is the average soft target of the digits whose TRUE label is c; "
                     "columns are the classes the teacher spreads probability onto")
            if _close(got, torch.full_like(exp, 1.0 / C)):
                fail(name, f"[{desc}] every entry is 1/C = {1 / C:.3g}: you averaged over the "
                           "classes (dim=1) instead of over the examples (dim=0)",
                     "for class c take probs[labels == c] (shape (n_c, C)) and average with "
                     ".mean(dim=0)")
            if _close(got, probs.mean(0, keepdim=True).expand(C, C)):
                fail(name, f"[{desc}] every row is the same (the mean soft target of ALL "
                           "digits): you ignored the labels",
                     "row c averages only the digits with labels == c")
            if _close(got, summed):
                fail(name, f"[{desc}] rows are not normalised: row sums are "
                           f"{_row_sums(got)}, expected 1; you summed the soft "
                           "targets of each class instead of averaging them",
                     "divide row c by the number of examples of class c (or use .mean(dim=0))")
            if _close(got, summed / counts[None, :]):
                fail(name, f"[{desc}] you divided column j by the count of class j instead of "
                           "row c by the count of class c (rows do not sum to 1)",
                     "broadcasting (C, C) / (C,) divides the COLUMNS; use counts[:, None] "
                     "(or keepdim=True) so each row is divided by its own count")
            if _close(got, summed / N):
                fail(name, f"[{desc}] you divided by the total number of examples N = {N} "
                           "instead of the number of examples of each class (rows do not sum "
                           "to 1)",
                     "row c is a mean over the digits of class c only: divide by their count")
            hard_pred = _reference_similarity(F.one_hot(probs.argmax(1), C).to(probs.dtype),
                                              labels)
            if _close(got, hard_pred) or _close(got, hard_pred.T):
                fail(name, f"[{desc}] you used hard predictions (one-hot of the argmax), which "
                           "gives a confusion matrix, not the teacher's soft targets",
                     "average the probabilities themselves: the small values ARE the dark "
                     "knowledge")
            if _close(got, torch.eye(C)):
                fail(name, f"[{desc}] you got the identity matrix: you averaged one-hot labels "
                           "instead of the teacher's soft targets",
                     "average probs over the examples of each class, not the labels")
            resoftmaxed = _reference_similarity(F.softmax(probs, dim=1), labels)
            if _close(got, resoftmaxed):
                fail(name, f"[{desc}] you applied softmax to probs, which are already "
                           "probabilities (softmax twice flattens them)",
                     "use probs as they are")
            g64 = got.detach().double()
            if torch.isfinite(g64).all() and not torch.allclose(g64.sum(1), torch.ones(C).double(),
                                                                atol=1e-4):
                fail(name, f"[{desc}] rows are not normalised: row sums {_row_sums(got)}, "
                           "expected 1 for every row",
                     "row c should be a probability distribution: the MEAN of the soft targets "
                     "of class c")
        if 10 in got.shape and C != 10:
            fail(name, f"[{desc}] result has shape {tuple(got.shape)} for probs with C = {C} "
                       "classes",
                 "read the number of classes from probs.shape[1] instead of assuming 10")
        cmp(name, got, exp, f"[{desc}] class_similarity(probs, labels)",
            hint="row c = probs[labels == c].mean(dim=0), for every class c; result (C, C)")
    return "row c is the mean soft target of the digits of class c"


check_class_similarity = register("class_similarity", similarity_inputs, similarity_probe,
                                  similarity_verdict)


# ------------------------------------------------------------------ dark_knowledge

_DK = "check_dark_knowledge"


def dark_inputs(seed=None, n_classes: int = 10, wrong: int | None = None) -> dict:
    """Two cases of soft targets with misclassified digits, N never equal to C.

    seed None: the notebook's fixed inputs (12 digits of 4 classes, 3 misclassified; 25 digits
    of 10 classes, 5 misclassified). An int: fresh values of the same kinds (3 to 6 classes
    with 2 to 4 digits each; `n_classes` classes with 2 or 3 digits each). params: n_classes
    (>= 3) of the second case; wrong: the number of misclassified digits of the second case.
    """
    C2 = int(n_classes)
    if C2 < 3:
        raise ValueError(f"n_classes must be >= 3, got {n_classes}")
    if seed is None:
        g1, g2 = _gen(3), _gen(4)
        C1, counts1 = 4, [3, 3, 3, 3]
        counts2 = [2 + c % 2 for c in range(C2)]
        w1, w2 = 3, (5 if wrong is None else int(wrong))
    else:
        g = _gen(30_000 + int(seed))
        g1 = g2 = g
        C1 = int(torch.randint(3, 7, (1,), generator=g))
        counts1 = torch.randint(2, 5, (C1,), generator=g).tolist()
        counts2 = torch.randint(2, 4, (C2,), generator=g).tolist()
        w1 = int(torch.randint(1, C1, (1,), generator=g))
        w2 = int(torch.randint(2, 6, (1,), generator=g)) if wrong is None else int(wrong)
    cases = []
    for C, counts, w, g in ((C1, counts1, w1, g1), (C2, counts2, w2, g2)):
        if sum(counts) == C:  # N = C would hide the reduction over the wrong axis
            counts[0] += 1
        w = max(1, min(w, sum(counts) - 1))
        probs, labels = _probs(counts, C, g, wrong=w)
        cases.append((f"{len(labels)} digits, {C} classes, {w} misclassified", probs, labels))
    return {"cases": cases}


def dark_probe(fn, inp) -> dict:
    """Call fn(probs, labels) on each case of ``dark_inputs``."""
    return _call_probe(fn, inp)


def dark_verdict(data, inp) -> str:
    """Check ``dark_knowledge(probs, labels) -> (N,)``: probability mass on the wrong classes.

    Input of the student's function: probs (N, C) soft targets, labels (N,) int64.
    """
    name = _DK
    _complete(name, data, inp)
    for (desc, probs, labels), out in zip(inp["cases"], data["cases"]):
        N, C = probs.shape
        got = _result(name, out, probs)
        p_true = probs[torch.arange(N), labels]
        exp = 1 - p_true
        if got.dim() == 0 or got.numel() == 1:
            value = got.reshape(-1)[0].double()
            if torch.isclose(value, exp.double().mean(), atol=1e-5):
                fail(name, f"[{desc}] you returned the mean over the examples ({value.item():.4g}); "
                           f"return one value per example, shape ({N},)",
                     "drop the final .mean(); the notebook averages afterwards")
            fail(name, f"[{desc}] you returned a single number ({value.item():.4g}); "
                       f"expected one value per example, shape ({N},)",
                 "sum the wrong-class probabilities of each row: result (N,)")
        if got.shape == (C,):
            fail(name, f"[{desc}] result has shape ({C},) = (C,): you reduced over the examples "
                       f"(dim=0) instead of over the classes, expected ({N},)",
                 "sum over the classes of each example: .sum(dim=1)")
        if got.shape == (N, N):
            fail(name, f"[{desc}] result has shape ({N}, {N}): probs[:, labels] picks every "
                       "label for every example",
                 "pick one entry per row: probs[torch.arange(N), labels] or "
                 "probs.gather(1, labels[:, None])")
        if got.shape == (N, 1):
            fail(name, f"[{desc}] result has shape ({N}, 1), expected ({N},)",
                 "drop keepdim=True, or .squeeze(1) the result")
        if got.shape == (N, C):
            fail(name, f"[{desc}] result has shape ({N}, {C}): one value per class of every "
                       f"example; expected one per example, shape ({N},)",
                 "add up the wrong-class probabilities of each row: .sum(dim=1)")
        if got.shape == exp.shape and not _close(got, exp):
            if _close(got, torch.ones(N)):
                fail(name, f"[{desc}] every value is 1: you summed all classes, including the "
                           "true one (soft targets always sum to 1)",
                     "leave out the true class: 1 - probs[i, labels[i]], or mask it before "
                     "summing")
            if _close(got, 1 - probs.max(1).values):
                fail(name, f"[{desc}] you removed the teacher's top class (argmax) instead of "
                           "the TRUE class: wrong on the misclassified digits",
                     "use the labels: 1 - probs[torch.arange(N), labels]")
            if _close(got, p_true):
                fail(name, f"[{desc}] you returned the probability of the true class; dark "
                           "knowledge is the mass on the OTHER classes",
                     "return 1 - p_true (or the sum of the other entries)")
        cmp(name, got, exp, f"[{desc}] dark_knowledge(probs, labels)",
            hint="for each example i: the sum of probs[i, j] over all j != labels[i]; "
                 "result (N,)")
    return "per-example probability mass on the wrong classes"


check_dark_knowledge = register("dark_knowledge", dark_inputs, dark_probe, dark_verdict)
