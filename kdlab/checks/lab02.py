"""Checks of Lab 02 (dark knowledge): ``check_class_similarity`` and ``check_dark_knowledge``.

Both run the student's function on small soft targets of a fake teacher (fixed in the
notebook, fresh in grading), compare the outcomes with the answer key (the right values and
those of the common mistakes on the same inputs: sums instead of means, transposed matrices,
hard labels, the wrong axis, ...) and name the mistake they recognise before falling back to
a plain got-vs-expected message.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _probe as _p
from ._common import Mistake, close, cmp, fail, name_mistake, paired, result, unchanged
from ._registry import Check

# ------------------------------------------------------------------ inputs and probe (both checks)


def _probs(counts, g: torch.Generator, wrong: int):
    """Soft targets of a fake teacher and their labels; `wrong` digits are misclassified.

    counts: C digit counts, one per class (unequal counts catch normalisation mistakes);
    wrong: kept within 1..N-1. Returns probs (N, C) float32 (rows sum to 1), labels (N,)
    int64 (shuffled).
    """
    C = len(counts)
    labels = torch.cat([torch.full((int(n),), c, dtype=torch.long) for c, n in enumerate(counts)])
    labels = labels[torch.randperm(len(labels), generator=g)]
    logits = torch.randn(len(labels), C, generator=g) * 1.5
    logits[torch.arange(len(labels)), labels] += 4.0
    for i in range(max(1, min(int(wrong), len(labels) - 1))):  # top class is not the label
        logits[i, (labels[i] + 1 + i % (C - 1)) % C] = logits[i].max() + 2.0
    return F.softmax(logits, dim=1), labels


def _n_classes(n_classes) -> int:
    """The number of classes of the second case (a parameter of both checks): an int >= 3."""
    if int(n_classes) < 3:
        raise ValueError(f"n_classes must be >= 3, got {n_classes}")
    return int(n_classes)


def cases_probe(fn, inp) -> dict:
    """The probe of both checks: fn(probs, labels) on copies of each case; the outcomes."""
    return {"cases": [_p.call(fn, probs.clone(), labels.clone())[0]
                      for _, probs, labels in inp["cases"]]}


def _result(title: str, out: dict, probs: torch.Tensor) -> torch.Tensor:
    """The tensor the recorded call returned; fail if it crashed or changed its inputs."""
    got = result(title, out, shapes=f"{tuple(probs.shape)}, {(probs.shape[0],)}")
    if any(int(i) == 0 and what == "values" for i, what in out.get("changed", [])):
        fail(title, "your function changed probs in place",
             "work on a copy (probs.clone()) or use out-of-place operations")
    unchanged(title, out, ["probs", "labels"])
    return got


def _row_sums(m: torch.Tensor) -> str:
    """The first row sums of a (C, C) matrix, for messages: "[1, 0.98, 1.2, 1, ...]"."""
    sums = m.detach().double().sum(1).tolist()
    return "[" + ", ".join(f"{v:.3g}" for v in sums[:4]) + (", ...]" if len(sums) > 4 else "]")


# ------------------------------------------------------------------ class_similarity

SIMILARITY_MISTAKES = [
    Mistake("transposed", "your matrix is transposed: got[j, c] holds what belongs in [c, j]",
            "row c is the average soft target of the digits whose TRUE label is c; columns are "
            "the classes the teacher spreads probability onto"),
    Mistake("mean_over_classes", "every entry is 1/C = {one_over_C:.3g}: you averaged over the "
                                 "classes (dim=1) instead of over the examples (dim=0)",
            "for class c take probs[labels == c] (shape (n_c, C)) and average with .mean(dim=0)"),
    Mistake("ignores_labels", "every row is the same (the mean soft target of ALL digits): you "
                              "ignored the labels",
            "row c averages only the digits with labels == c"),
    Mistake("summed", "rows are not normalised: row sums are {sums}, expected 1; you summed the "
                      "soft targets of each class instead of averaging them",
            "divide row c by the number of examples of class c (or use .mean(dim=0))"),
    Mistake("columns", "you divided column j by the count of class j instead of row c by the "
                       "count of class c (rows do not sum to 1)",
            "broadcasting (C, C) / (C,) divides the COLUMNS; use counts[:, None] (or "
            "keepdim=True) so each row is divided by its own count"),
    Mistake("divide_by_N", "you divided by the total number of examples N = {N} instead of the "
                           "number of examples of each class (rows do not sum to 1)",
            "row c is a mean over the digits of class c only: divide by their count"),
    Mistake("hard_predictions", "you used hard predictions (one-hot of the argmax), which gives "
                                "a confusion matrix, not the teacher's soft targets",
            "average the probabilities themselves: the small values ARE the dark knowledge"),
    Mistake("one_hot_labels", "you got the identity matrix: you averaged one-hot labels instead "
                              "of the teacher's soft targets",
            "average probs over the examples of each class, not the labels"),
    Mistake("softmax_again", "you applied softmax to probs, which are already probabilities "
                             "(softmax twice flattens them)",
            "use probs as they are"),
]


def similarity_inputs(seed=None, n_classes: int = 10, wrong: int | None = None) -> dict:
    """Two cases: C classes with C digits each (N = C * C), and `n_classes` with unequal counts.

    seed None: the notebook's fixed inputs (4 classes x 4 digits, 3 misclassified; 10 classes
    with 1 to 10 digits, 6 misclassified). An int: fresh values of the same kinds (3 to 5
    classes with as many digits each; `n_classes` classes with distinct counts, in random
    order; a few misclassified digits in both). params: n_classes (>= 3) of the second case;
    wrong: the number of misclassified digits of the second case.
    Returns {"cases": [(description, probs (N, C) float32, labels (N,) int64), ...]}.
    """
    C2, g = _n_classes(n_classes), check_class_similarity.rng(seed)
    if seed is None:
        C1, counts2, w1, w2 = 4, list(range(1, C2 + 1)), 3, 6
    else:
        C1 = int(torch.randint(3, 6, (1,), generator=g))
        counts2 = torch.randperm(C2, generator=g) + 1
        counts2 = (counts2 + int(torch.randint(0, 3, (1,), generator=g))).tolist()
        w1, w2 = (int(torch.randint(lo, hi, (1,), generator=g)) for lo, hi in ((1, C1), (2, C2)))
    # equal counts (N = C * C): a mean over the classes gives a (C, C) result too;
    # unequal counts: sums, wrong normalisers and column-wise divisions show up
    return {"cases": [(f"{C1} classes, {C1} digits each", *_probs([C1] * C1, g, w1)),
                      (f"{C2} classes, {min(counts2)} to {max(counts2)} digits each",
                       *_probs(counts2, g, w2 if wrong is None else wrong))]}


def similarity_verdict(check, data, inp, key) -> str:
    """Check ``class_similarity(probs, labels) -> (C, C)``: row c = mean soft target of class c.

    Input of the student's function: probs (N, C) soft targets, labels (N,) int64.
    """
    for (desc, probs, labels), k, out in paired(inp["cases"], key["cases"], data["cases"]):
        C = probs.shape[1]
        got = _result(check.title, out, probs)
        if close(got, k["expected"]):
            continue
        name_mistake(check, got, k["mistakes"], desc)
        g64 = got.detach().double()
        if g64.shape == (C, C) and torch.isfinite(g64).all() and not torch.allclose(
                g64.sum(1), torch.ones(C, dtype=torch.float64), atol=1e-4):
            fail(check.title, f"{desc}: rows are not normalised: row sums {_row_sums(got)}, "
                              "expected 1 for every row",
                 "row c should be a probability distribution: the MEAN of the soft targets of "
                 "class c")
        if 10 in got.shape and C != 10:
            fail(check.title, f"{desc}: result has shape {tuple(got.shape)} for probs with "
                              f"C = {C} classes",
                 "read the number of classes from probs.shape[1] instead of assuming 10")
        cmp(check.title, got, k["expected"], f"{desc}: class_similarity(probs, labels)",
            hint="row c = probs[labels == c].mean(dim=0), for every class c; result (C, C)")
    return "row c is the mean soft target of the digits of class c"


check_class_similarity = Check("class_similarity", similarity_inputs, cases_probe,
                                  similarity_verdict, SIMILARITY_MISTAKES)


# ------------------------------------------------------------------ dark_knowledge

DARK_MISTAKES = [
    Mistake("mean", "you returned the mean over the examples ({value:.4g}); return one value "
                    "per example, shape ({N},)",
            "drop the final .mean(); the notebook averages afterwards"),
    Mistake("includes_true", "every value is 1: you summed all classes, including the true one "
                             "(soft targets always sum to 1)",
            "leave out the true class: 1 - probs[i, labels[i]], or mask it before summing"),
    Mistake("argmax", "you removed the teacher's top class (argmax) instead of the TRUE class: "
                      "wrong on the misclassified digits",
            "use the labels: 1 - probs[torch.arange(N), labels]"),
    Mistake("true_mass", "you returned the probability of the true class; dark knowledge is the "
                         "mass on the OTHER classes",
            "return 1 - p_true (or the sum of the other entries)"),
]


def dark_inputs(seed=None, n_classes: int = 10, wrong: int | None = None) -> dict:
    """Two cases of soft targets with misclassified digits, N never equal to C.

    seed None: the notebook's fixed inputs (12 digits of 4 classes, 3 misclassified; 25 digits
    of 10 classes, 5 misclassified). An int: fresh values of the same kinds (3 to 6 classes
    with 2 to 4 digits each; `n_classes` classes with 2 or 3 digits each). params: n_classes
    (>= 3) of the second case; wrong: the number of misclassified digits of the second case.
    Returns {"cases": [(description, probs (N, C) float32, labels (N,) int64), ...]}.
    """
    C2, g = _n_classes(n_classes), check_dark_knowledge.rng(seed)
    if seed is None:
        counts1, counts2, w1, w2 = [3] * 4, [2 + c % 2 for c in range(C2)], 3, 5
    else:
        C1 = int(torch.randint(3, 7, (1,), generator=g))
        counts1 = torch.randint(2, 5, (C1,), generator=g).tolist()
        counts2 = torch.randint(2, 4, (C2,), generator=g).tolist()
        w1, w2 = (int(torch.randint(lo, hi, (1,), generator=g)) for lo, hi in ((1, C1), (2, 6)))
    cases = []
    for counts, w in ((counts1, w1), (counts2, w2 if wrong is None else int(wrong))):
        if sum(counts) == len(counts):  # N = C would hide a reduction over the wrong axis
            counts[0] += 1
        w = max(1, min(w, sum(counts) - 1))
        cases.append((f"{sum(counts)} digits, {len(counts)} classes, {w} misclassified",
                      *_probs(counts, g, w)))
    return {"cases": cases}


def dark_verdict(check, data, inp, key) -> str:
    """Check ``dark_knowledge(probs, labels) -> (N,)``: probability mass on the wrong classes.

    Input of the student's function: probs (N, C) soft targets, labels (N,) int64.
    """
    for (desc, probs, labels), k, out in paired(inp["cases"], key["cases"], data["cases"]):
        N, C = probs.shape
        got = _result(check.title, out, probs)
        if close(got, k["expected"]):
            continue
        name_mistake(check, got.reshape(()) if got.numel() == 1 else got, k["mistakes"], desc)
        if got.numel() == 1:
            fail(check.title, f"{desc}: you returned a single number "
                              f"({got.reshape(-1)[0].item():.4g}); expected one value per "
                              f"example, shape ({N},)",
                 "sum the wrong-class probabilities of each row: result (N,)")
        if got.shape == (C,):
            fail(check.title, f"{desc}: result has shape ({C},) = (C,): you reduced over the "
                              f"examples (dim=0) instead of over the classes, expected ({N},)",
                 "sum over the classes of each example: .sum(dim=1)")
        if got.shape == (N, N):
            fail(check.title, f"{desc}: result has shape ({N}, {N}): probs[:, labels] picks "
                              "every label for every example",
                 "pick one entry per row: probs[torch.arange(N), labels] or "
                 "probs.gather(1, labels[:, None])")
        if got.shape == (N, 1):
            fail(check.title, f"{desc}: result has shape ({N}, 1), expected ({N},)",
                 "drop keepdim=True, or .squeeze(1) the result")
        if got.shape == (N, C):
            fail(check.title, f"{desc}: result has shape ({N}, {C}): one value per class of "
                              f"every example; expected one per example, shape ({N},)",
                 "add up the wrong-class probabilities of each row: .sum(dim=1)")
        cmp(check.title, got, k["expected"], f"{desc}: dark_knowledge(probs, labels)",
            hint="for each example i: the sum of probs[i, j] over all j != labels[i]; "
                 "result (N,)")
    return "per-example probability mass on the wrong classes"


check_dark_knowledge = Check("dark_knowledge", dark_inputs, cases_probe, dark_verdict,
                                DARK_MISTAKES)
