"""Checks of Lab 02 (dark knowledge): ``check_class_similarity`` and ``check_dark_knowledge``.

Both run the student's function on small fixed soft targets whose answers are known, and
recognise the common mistakes (sums instead of means, transposed matrices, hard labels,
the wrong axis) so the message can say which one was made.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._common import as_tensor, call, cmp, fail, passed


# ------------------------------------------------------------------ fixed inputs


def _probs(n_per_class, C: int, seed: int, wrong: int = 0):
    """Soft targets of a fake teacher and labels; `wrong` examples are misclassified.

    Inputs: n_per_class: list of C counts (unequal counts catch normalisation mistakes).
    Returns: probs (N, C) float32, rows sum to 1; labels (N,) int64 (not sorted).
    """
    g = torch.Generator().manual_seed(seed)
    labels = torch.cat([torch.full((n,), c, dtype=torch.long) for c, n in enumerate(n_per_class)])
    labels = labels[torch.randperm(len(labels), generator=g)]
    logits = torch.randn(len(labels), C, generator=g) * 1.5
    logits[torch.arange(len(labels)), labels] += 4.0
    # a few confident mistakes: the teacher's top class is not the label
    for i in range(wrong):
        other = (labels[i] + 1 + i % (C - 1)) % C
        logits[i, other] = logits[i].max() + 2.0
    return F.softmax(logits, dim=1), labels


def _reference_similarity(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    C = probs.shape[1]
    onehot = F.one_hot(labels, C).to(probs.dtype)
    return (onehot.T @ probs) / onehot.sum(0)[:, None]


def _row_sums(m: torch.Tensor) -> str:
    sums = m.detach().float().sum(1)
    return "[" + ", ".join(f"{v:.3g}" for v in sums[:4].tolist()) + (", ...]" if len(sums) > 4 else "]")


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.detach().to(b.dtype), b, atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------ class_similarity



def _call_on_copy(name: str, fn, probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Call fn(probs, labels) on copies; fail if it changed probs in place. Returns its tensor."""
    arg = probs.clone()
    got = as_tensor(name, call(name, fn, arg, labels.clone()))
    if not torch.equal(arg, probs):
        fail(name, "your function changed probs in place",
             "work on a copy (probs.clone()) or use out-of-place operations")
    return got

def check_class_similarity(class_similarity) -> None:
    """Check ``class_similarity(probs, labels) -> (C, C)``: row c = mean soft target of class c.

    Input of the student's function: probs (N, C) soft targets, labels (N,) int64.
    """
    name = "check_class_similarity"
    cases = [
        # equal counts (4 per class, N = 16 = C * C): a mean over classes gives a (C, C) result
        ("4 classes, 4 digits each", *_probs([4, 4, 4, 4], 4, seed=1, wrong=3)),
        # unequal counts: sums, wrong normalisers and column-wise divisions show up
        ("10 classes, 1 to 10 digits each", *_probs(list(range(1, 11)), 10, seed=2, wrong=6)),
    ]
    for desc, probs, labels in cases:
        N, C = probs.shape
        got = _call_on_copy(name, class_similarity, probs, labels)
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
            if not torch.allclose(got.sum(1), torch.ones(C), atol=1e-4):
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
    passed(name, "row c is the mean soft target of the digits of class c")


# ------------------------------------------------------------------ dark_knowledge


def check_dark_knowledge(dark_knowledge) -> None:
    """Check ``dark_knowledge(probs, labels) -> (N,)``: probability mass on the wrong classes.

    Input of the student's function: probs (N, C) soft targets, labels (N,) int64.
    """
    name = "check_dark_knowledge"
    cases = [
        ("12 digits, 4 classes, 3 misclassified", *_probs([3, 3, 3, 3], 4, seed=3, wrong=3)),
        ("25 digits, 10 classes, 5 misclassified", *_probs([2, 3, 2, 3, 2, 3, 2, 3, 2, 3], 10,
                                                          seed=4, wrong=5)),
    ]
    for desc, probs, labels in cases:
        N, C = probs.shape
        got = _call_on_copy(name, dark_knowledge, probs, labels)
        p_true = probs[torch.arange(N), labels]
        exp = 1 - p_true
        if got.dim() == 0 or got.numel() == 1:
            if torch.isclose(got.reshape(()).float(), exp.mean(), atol=1e-5):
                fail(name, f"[{desc}] you returned the mean over the examples ({got.item():.4g}); "
                           f"return one value per example, shape ({N},)",
                     "drop the final .mean(); the notebook averages afterwards")
            fail(name, f"[{desc}] you returned a single number ({got.reshape(-1)[0].item():.4g}); "
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
    passed(name, "per-example probability mass on the wrong classes")
