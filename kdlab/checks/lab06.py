"""Checks of Lab 06 (what the teacher teaches): decoupled KD and the permuted-dark-knowledge control.

``check_dkd_loss(fn)`` calls ``fn(student_logits, teacher_logits, labels, T, alpha, beta)`` at
several (T, alpha, beta) settings and on confident logits, and compares the gradient with
respect to the student's logits with the answer key's (so the KL form and the cross-entropy
form, which differ by the teacher's entropies, both pass); the teacher must get no gradient
and T <= 0 must raise ValueError. Common mistakes are recognised by their gradient.

``check_permute_dark_knowledge(fn)`` calls ``fn(p, labels, generator)`` on soft targets and
checks what any right answer must satisfy, since each right shuffle gives other numbers: the
true class's probability stays in place, every row keeps its values, ``p`` is left alone,
the same generator state gives the same result whatever the global random state, another
generator gives another result, every row gets its own order, and on 10,000 identical rows
every order of the wrong-class values appears about equally often. Each common wrong shuffle
is named by what it leaves behind (sorted rows, rotations, repeated values, ...).
"""
from __future__ import annotations

import itertools
import math
import random

import numpy as np
import torch

from . import _probe as _p
from ._common import (Mistake, close, decode, fail, name_mistake, paired,
                      raised, rejects, result, rng, short, type_name, unchanged)
from ._registry import CHECKS, register

# ------------------------------------------------------------------ dkd_loss

DKD_FORMULA = ("loss = T**2 * mean over the batch of alpha * KL(b_t || b_s) + beta * KL(q_t || q_s), "
               "with p = softmax(logits / T), b = (p_y, 1 - p_y) and q = softmax(logits / T) over "
               "the non-target classes")
DKD_MISTAKES = [
    Mistake("no_T2", "the loss is missing its factor T**2",
            "softening by T shrinks the gradients by 1/T**2; multiply the loss by T**2, as in "
            "classic KD"),
    Mistake("T_not_T2", "the loss is multiplied by T, not by T**2",
            "softening by T shrinks the gradients by 1/T**2, so the loss is scaled by T**2 "
            "(T * T or T ** 2), as in classic KD"),
    Mistake("no_T", "the logits are not divided by T (your loss does not soften anything)",
            "compute p = softmax(logits / T) for the student and the teacher, and q from "
            "logits / T as well"),
    Mistake("teacher_not_softened", "the teacher's logits are not divided by T",
            "divide both logit vectors by T before every softmax"),
    Mistake("student_not_softened", "the student's logits are not divided by T",
            "divide both logit vectors by T before every softmax"),
    Mistake("reversed", "the KL divergences are reversed: you computed KL(student || teacher)",
            "the teacher's distributions are the targets: KL(b_t || b_s) and KL(q_t || q_s). "
            "F.kl_div(input, target) computes KL(target || input): the student's "
            "log-probabilities go first"),
    Mistake("swapped_weights", "alpha and beta are swapped: alpha multiplies NCKD and beta TCKD",
            "alpha weights the binary (target-class) term, beta the non-target term"),
    Mistake("nckd_weighted", "NCKD is multiplied by 1 - p_t,y, the teacher's wrong-class mass: "
                             "that is the weight classic KD gives it (a teacher q left "
                             "unnormalised, softmax(t / T) at the wrong classes, does the same)",
            "decoupled KD drops that factor and gives NCKD its own weight beta: renormalise "
            "the teacher's q too, q_t = softmax over the non-target classes"),
    Mistake("q_not_renormalised", "your non-target distributions are the wrong-class entries of "
                                  "softmax(logits / T) as they are: they sum to 1 - p_y, not 1",
            "q_k = p_k / (1 - p_y) for k != y; in logs: the softmax of logits / T with the true "
            "class removed (masked_fill with float('-inf') before F.log_softmax)"),
    Mistake("q_student_unnormalised", "the student's non-target log-probabilities are "
                                      "log softmax(logits / T) at the wrong classes as they are "
                                      "(their probabilities sum to 1 - p_s,y, not 1), while the "
                                      "teacher's q is renormalised",
            "renormalise the student's side as well: log q_s = F.log_softmax of the student's "
            "logits / T with the true class's logit set to float('-inf')"),
    Mistake("nckd_all_classes", "your NCKD compares the softmax over ALL C classes: the true "
                                "class is not excluded, so NCKD repeats part of TCKD",
            "q is the softmax over the C - 1 non-target classes: set the true class's logit to "
            "float('-inf') (masked_fill(is_target, float('-inf'))) before F.log_softmax, and "
            "leave that column out of the KL sum"),
    Mistake("softmax_dim0", "your softmaxes are taken over dimension 0 (across the batch), not "
                            "over the classes",
            "logits are (N, C): normalise each row, F.log_softmax(logits / T, dim=1), and sum "
            "over dim=1 as well"),
    Mistake("target_zero_kept", "your non-target softmax sets the true class's logit to 0 "
                                "(masked_fill(..., 0)) instead of removing it, and the KL sums "
                                "over every class: the true class keeps a share of q and a term "
                                "in NCKD",
            "masked_fill with float('-inf'), not 0, before F.log_softmax, so the true class gets "
            "probability 0; then leave its column out of the sum (masked_fill(is_target, 0.0) "
            "after the product)"),
    Mistake("student_argmax", "you took the student's most likely class as the target class "
                              "(a mask from student_logits.argmax), not the label",
            "the target class of row i is labels[i]: build the mask from labels, e.g. "
            "F.one_hot(labels, C).bool()"),
    Mistake("target_logit_zero", "your non-target softmax sets the true class's logit to 0 "
                                 "instead of removing it, so the true class keeps a share of q",
            "set the true class's logit to float('-inf') (masked_fill) before the softmax, and "
            "leave that column out of the KL sum"),
    Mistake("tckd_target_only", "your TCKD has only the true-class term p_t,y log(p_t,y / p_s,y); "
                                "the term of the wrong-class mass 1 - p_y is missing",
            "b = (p_y, 1 - p_y) has two entries: KL(b_t || b_s) sums over both"),
    Mistake("teacher_argmax", "you took the teacher's most likely class as the target class, not "
                              "the label",
            "the target class of row i is labels[i]; the teacher is wrong on some images"),
    Mistake("sum_over_batch", "the loss is summed over the batch instead of averaged",
            "average over the examples: .sum(dim=1).mean(), or F.kl_div(..., reduction='batchmean')"),
    Mistake("mean_over_classes", "each KL is averaged over its classes as well as over the "
                                 "batch (reduction='mean')",
            "sum each KL over its classes, then average over the batch: reduction='batchmean'"),
]
DKD_SETTINGS = ((2.0, 1.0, 0.0), (2.0, 0.0, 1.0), (4.0, 1.0, 8.0), (1.0, 0.5, 2.0), (3.0, 2.0, 0.5))
DKD_BAD_TS = (0.0, -1.0)


def dkd_inputs(seed=None) -> dict:
    """Inputs of the dkd_loss check: a batch, several (T, alpha, beta), confident logits, bad T.

    seed None: the fixed inputs of the notebook; an int: fresh values of the same kinds.
    - s, t: (6, 5) student and teacher logits, y: (6,) labels; the teacher is right on some
      rows and wrong on others; settings: (T, alpha, beta) for TCKD only, NCKD only, DKD, ...
    - s_conf, t_conf, y_conf: (6, 10): a student sure of the true class (logit margin 100 at
      T = 1, as an overconfident network gives) on three rows and sure of a wrong class on
      three; the teacher at margin 8
    """
    g = rng("dkd_loss", seed)
    N, C = 6, 5
    s = (torch.randn(N, C, generator=g) * 2).round(decimals=2)
    t = (torch.randn(N, C, generator=g) * 3).round(decimals=2)
    y = torch.randint(0, C, (N,), generator=g)
    rows = torch.arange(N)
    right = rows[: N // 2]                        # the teacher is sure of the label on half ...
    t[right, y[right]] = t[right].max(1).values + 2.0
    wrong = (y[N // 2:] + 1 + torch.randint(0, C - 1, (N - N // 2,), generator=g)) % C
    t[rows[N // 2:], wrong] = t[N // 2:].max(1).values + 2.0   # ... and wrong on the others
    Nc, Cc = 6, 10
    y_conf = torch.randint(0, Cc, (Nc,), generator=g)
    other = (y_conf + 1 + torch.randint(0, Cc - 1, (Nc,), generator=g)) % Cc
    s_conf = torch.randn(Nc, Cc, generator=g)
    top = torch.where(torch.arange(Nc) < Nc // 2, y_conf, other)
    s_conf[torch.arange(Nc), top] += 100.0
    t_conf = torch.randn(Nc, Cc, generator=g) * 2
    t_conf[torch.arange(Nc), y_conf] += 8.0
    return {"s": s, "t": t, "y": y, "settings": DKD_SETTINGS, "s_conf": s_conf, "t_conf": t_conf,
            "y_conf": y_conf, "conf_setting": (1.0, 1.0, 8.0), "bad_Ts": DKD_BAD_TS}


def _dkd_call(fn, s, t, y, setting) -> dict:
    """fn on fresh leaves (both logits require grad): the outcome, plus the gradients of a
    scalar result with respect to the student's and the teacher's logits."""
    s = s.clone().requires_grad_(True)
    t = t.clone().requires_grad_(True)  # the teacher must not receive a gradient
    out, res = _p.call(fn, s, t, y.clone(), *setting)
    if type(res) is torch.Tensor and res.numel() == 1 and res.requires_grad:
        out["grads"] = _p.grads(res.reshape(()), [s, t])
    return out


def dkd_probe(fn, inp) -> dict:
    """Call fn at every setting, on the confident logits and with every bad temperature."""
    s, t, y = inp["s"], inp["t"], inp["y"]
    return {"settings": [_dkd_call(fn, s, t, y, st) for st in inp["settings"]],
            "confident": _dkd_call(fn, inp["s_conf"], inp["t_conf"], inp["y_conf"],
                                   inp["conf_setting"]),
            "bad": [_p.call(fn, s.clone(), t.clone(), y.clone(), T, 1.0, 8.0)[0]
                    for T in inp["bad_Ts"]]}


def _grad_close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return close(a, b, atol=1e-5, rtol=1e-3)


def _dkd_outcome(title: str, out: dict, s: torch.Tensor, where: str) -> tuple:
    """(loss value, gradient w.r.t. the student, gradient w.r.t. the teacher or None), or fail."""
    raised(title, out, f"{tuple(s.shape)}, {tuple(s.shape)}, ({s.shape[0]},)", where)
    unchanged(title, out, ["student_logits", "teacher_logits", "labels"])
    v = out["value"]
    if v.get("kind") != "tensor":
        fail(title, f"{where}: dkd_loss(...) should be a torch.Tensor, got {type_name(v)}",
             "use torch operations all the way and return the tensor")
    shape = tuple(v["shape"])
    if shape != ():
        what = ("one value per example" if shape == (s.shape[0],) else f"shape {shape}")
        fail(title, f"{where}: dkd_loss returned {what} for logits of shape {tuple(s.shape)}; "
                    "expected a scalar, shape ()",
             "sum each KL over its classes, then average over the batch: .sum(dim=1).mean()")
    grads = out.get("grads")
    if not v.get("requires_grad") or not grads or grads[0].get("kind") != "tensor":
        fail(title, f"{where}: the loss does not depend on student_logits (no gradient flows "
                    "back to them)",
             "do not call .detach(), .item() or torch.no_grad() on the student's side")
    gt = decode(grads[1]) if grads[1].get("kind") == "tensor" else None
    return decode(v), decode(grads[0]), gt


def _name_dkd_mistake(check, settings, keys, outcomes) -> None:
    """Fail with the mistake whose gradient matches the student's at every setting where the
    student's gradient is wrong (one setting alone can fit two: at T = 2 on TCKD alone, T
    instead of T**2 and a mean over the 2 entries of b both halve the loss)."""
    wrong = [(st, k, gs) for st, k, (_, gs, _) in zip(settings, keys, outcomes)
             if not _grad_close(gs, k["grad"])]
    for m in check.mistakes:
        if all(any(name == m.name and _grad_close(gs, ref) for name, ref, _ in k["mistakes"])
               for _, k, gs in wrong):
            T, a, b = wrong[0][0]
            fail(check.title, f"T={T:g}, alpha={a:g}, beta={b:g}"
                              f"{f' (and {len(wrong) - 1} more settings)' if len(wrong) > 1 else ''}"
                              f": {m.what}", m.hint)


def dkd_verdict(data, inp, key) -> str:
    """Check ``fn(student_logits (N, C), teacher_logits (N, C), labels (N,), T, alpha, beta)``.

    Returns a scalar: T**2 times the batch mean of alpha * KL(b_t || b_s) + beta * KL(q_t || q_s),
    b = (p_y, 1 - p_y) from p = softmax(logits / T), q = softmax(logits / T) over the classes
    other than the label. The gradient with respect to the student's logits must match at
    every setting (the value may be the KL form or the cross-entropy form), the teacher gets
    no gradient, confident logits stay finite, and T <= 0 raises ValueError.
    """
    check = CHECKS["dkd_loss"]
    title = check.title
    s = inp["s"]
    outcomes = []
    for (T, a, b), k, out in paired(inp["settings"], key["settings"], data["settings"]):
        outcomes.append(_dkd_outcome(title, out, s, f"T={T:g}, alpha={a:g}, beta={b:g}"))
    # name the mistake first, from the settings where the student's gradient is wrong
    for (T, a, b), k, (val, gs, gt) in paired(inp["settings"], key["settings"], outcomes):
        where = f"T={T:g}, alpha={a:g}, beta={b:g}"
        if _grad_close(gs, k["grad"]):
            continue
        if not torch.isfinite(gs).all():
            fail(title, f"{where}: the gradient contains nan or inf: {short(gs)}",
                 "work with log-probabilities (F.log_softmax, torch.logsumexp); a masked entry "
                 "of -inf times a probability of 0 gives nan: leave it out of the sum "
                 "(masked_fill with 0 after the product)")
        _name_dkd_mistake(check, inp["settings"], key["settings"], outcomes)
        name_mistake(check, gs, k["mistakes"], where, atol=1e-5, rtol=1e-3)
        maxdiff = (gs - k["grad"]).abs().max().item() if gs.shape == k["grad"].shape else float("nan")
        fail(title, f"{where}: the gradient of your loss with respect to student_logits is wrong: "
                    f"max abs difference {maxdiff:.3g}\n    got      {short(gs)}\n"
                    f"    expected {short(k['grad'])}",
             f"{DKD_FORMULA}. Try one term at a time: (alpha, beta) = (1, 0) is TCKD alone, "
             "(0, 1) NCKD alone")
    for (T, a, b), k, (val, gs, gt) in paired(inp["settings"], key["settings"], outcomes):
        if gt is not None and gt.abs().max().item() > 0:
            fail(title, "teacher_logits received a gradient: the teacher is a target, not a learner",
                 "use teacher_logits.detach() before computing its distributions")
        v = float(val.double())
        if not math.isfinite(v):
            fail(title, f"T={T:g}, alpha={a:g}, beta={b:g}: the gradient is right but the loss "
                        f"is {v}: a term 0 * log(0) or 0 * (-inf) of a masked class became nan",
                 "leave the true class out of the non-target sum after the product "
                 "(masked_fill(is_target, 0.0)), or use torch.xlogy / F.kl_div")
        if not any(math.isclose(v, float(ref), rel_tol=1e-4, abs_tol=1e-5)
                   for ref in (k["value_kl"], k["value_ce"])):
            fail(title, f"T={T:g}, alpha={a:g}, beta={b:g}: the gradient is right but the loss "
                        f"value is not: got {v:.6g}, expected {k['value_kl']:.6g} (KL form) or "
                        f"{k['value_ce']:.6g} (cross-entropy form)",
                 "remove any constant you added to the loss")
    k = key["confident"]
    out = data["confident"]
    where = "confident logits (student logit margin 100 at T=1)"
    raised(title, out, where=where)
    v = out["value"]
    grads = out.get("grads") or [{"kind": "none"}]
    val = decode(v) if v.get("kind") == "tensor" else torch.tensor(float("nan"))
    gs = (decode(grads[0]) if grads[0].get("kind") == "tensor"
          else torch.full(tuple(inp["s_conf"].shape), float("nan")))
    if not (bool(torch.isfinite(val).all()) and bool(torch.isfinite(gs).all())):
        fail(title, f"the loss or its gradient is nan or inf for a student that is sure of the "
                    f"true class (logit margin 100, T=1; loss {short(val)}): its wrong-class "
                    "probabilities underflow to 0 in float32 (1 - p_y rounds to 0), and their "
                    "log is -inf",
             "never compute log(1 - p_y) from probabilities: take the logsumexp of the "
             "non-target log-probabilities, torch.logsumexp(log_p.masked_fill(is_target, "
             "float('-inf')), dim=1)")
    if not _grad_close(gs, k["grad"]):
        fail(title, f"{where}: the gradient is wrong: got {short(gs)}, expected {short(k['grad'])}",
             "compute every log-probability with F.log_softmax / torch.logsumexp, without "
             "clamping probabilities")
    rejects(title, inp["bad_Ts"], data["bad"], "T", "not T > 0", "temperature T must be > 0")
    return (f"gradients match decoupled KD at {len(inp['settings'])} (T, alpha, beta) settings "
            "and on confident logits, the teacher gets no gradient, T <= 0 is rejected")


check_dkd_loss = register("dkd_loss", dkd_inputs, dkd_probe, dkd_verdict, DKD_MISTAKES)


# ------------------------------------------------------------------ permute_dark_knowledge

PERMUTE_MISTAKES = [
    Mistake("identity", "your result equals p: nothing was shuffled",
            "shuffle the C - 1 wrong-class entries of every row, e.g. with "
            "torch.randperm(C - 1, generator=generator) per row"),
]
# 10,000 identical rows of 5 classes: how often each of the 4! = 24 orders of the 4 wrong-class
# values appears. A right shuffle's chi-square (23 degrees of freedom) exceeds CHI2_LIMIT with
# probability 1e-9, so a right answer fails once in a billion gradings. The naive swap shuffle
# (swap position a with any position, a = 0..3) gives the orders probabilities 8/256 .. 15/256:
# a noncentrality of 0.0298 per row, 298 on 10,000 rows, and a chi-square below the limit with
# probability 2e-51. (3,000 rows let it pass on about 4% of fresh seeds.)
N_SAME, C_SAME = 10_000, 5
CHI2_LIMIT = 89.1
GLOBAL_SEEDS = (101, 202)     # the global random state before calls with the same generator
# which of torch's, numpy's and Python's global random states differ from the first call
GLOBAL_STATES = ((0, 0, 0), (1, 1, 1), (0, 0, 0), (0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1))
_LIBRARIES = (("torch's global random generator", "torch.randperm(n) or torch.rand(...) without "
               "generator=generator"),
              ("numpy's global random generator", "np.random.permutation / np.random.shuffle"),
              ("Python's random module", "random.shuffle / random.sample"))


def permute_inputs(seed=None) -> dict:
    """Inputs of the permute_dark_knowledge check (seed None: the notebook's fixed cases).

    - "small": (6, 5) float32 soft targets with distinct values, labels, two generator seeds;
      called with the first seed under several global random states (torch's, numpy's and
      Python's changed together and one at a time) and once with the second seed
    - "batch": (64, 10) float32 soft targets at a temperature, labels
    - "same": 10,000 copies of one (5,) row of distinct values, one label: every row must get
      its own order, and each of the 24 orders of the wrong classes about 1/24 of the rows
    - "double": (8, 10) float64 soft targets: the result keeps the dtype
    """
    g = rng("permute_dark_knowledge", seed)

    def soft(n, c, scale):
        p = torch.softmax(torch.randn(n, c, generator=g) * scale, dim=1)
        return p, torch.randint(0, c, (n,), generator=g)

    def gen_seed():
        return int(torch.randint(0, 2**31 - 1, (1,), generator=g))

    small_p, small_y = soft(6, 5, 1.5)
    batch_p, batch_y = soft(64, 10, 3.0)
    row = torch.softmax(torch.randn(C_SAME, generator=g) * 1.5, dim=0)
    label = int(torch.randint(0, C_SAME, (1,), generator=g))
    double_p, double_y = soft(8, 10, 2.0)
    return {"small": (small_p, small_y, gen_seed(), gen_seed()),
            "batch": (batch_p, batch_y, gen_seed()),
            "same": (row.repeat(N_SAME, 1), torch.full((N_SAME,), label), gen_seed()),
            "double": (double_p.double(), double_y, gen_seed())}


def _with_global_state(seeds, fn, *args) -> dict:
    """Call fn with torch's, numpy's and Python's global generators seeded with `seeds` (one
    each); the caller's global random state is restored afterwards."""
    saved = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    try:
        torch.manual_seed(seeds[0])
        np.random.seed(seeds[1])
        random.seed(seeds[2])
        return _p.call(fn, *args)[0]
    finally:
        torch.set_rng_state(saved[0])
        np.random.set_state(saved[1])
        random.setstate(saved[2])


def permute_probe(fn, inp) -> dict:
    """Call fn on every case with a freshly seeded torch.Generator (see ``permute_inputs``)."""
    def run(p, y, gseed, states=(0, 0, 0)):
        return _with_global_state([GLOBAL_SEEDS[s] for s in states], fn, p.clone(), y.clone(),
                                  torch.Generator().manual_seed(gseed))

    p, y, s1, s2 = inp["small"]
    small = [run(p, y, s2 if i == 3 else s1, st) for i, st in enumerate(GLOBAL_STATES)]
    return {"small": small, "batch": run(*inp["batch"]), "same": run(*inp["same"]),
            "double": run(*inp["double"])}


def _perm_result(title: str, out: dict, p: torch.Tensor, where: str) -> torch.Tensor:
    """The returned tensor of a recorded call, checked for shape, dtype and untouched inputs."""
    raised(title, out, f"{tuple(p.shape)}, ({p.shape[0]},), a torch.Generator", where)
    unchanged(title, out, ["p", "labels"])
    got = result(title, out)
    N, C = p.shape
    if tuple(got.shape) == (N, C - 1):
        fail(title, f"{where}: your result has shape {tuple(got.shape)}, expected {(N, C)}: you "
                    "returned only the C - 1 shuffled wrong-class columns",
             "put them back around the true class: out = p.clone(), then write the shuffled "
             "values into the columns other than labels[i] (out[i, others] = ...)")
    if tuple(got.shape) != tuple(p.shape):
        fail(title, f"{where}: your result has shape {tuple(got.shape)}, expected "
                    f"{tuple(p.shape)} (the shape of p)",
             "return the whole (N, C) tensor: the true class in place, the others shuffled")
    dtype = out["value"].get("dtype")
    want = str(p.dtype).replace("torch.", "")
    if dtype != want:
        if not got.is_floating_point() and torch.equal(
                got.long().sort(dim=1).values, torch.arange(C).expand(N, C)):
            fail(title, f"{where}: your result is {dtype} and every row holds 0 .. {C - 1} once: "
                        "you returned column indices (an order), not probabilities",
                 "apply the order to p: p.gather(1, order), or out[i, others] = p[i, "
                 "others[order]]; the result is p's values in new places")
        fail(title, f"{where}: p is {want} but your result is {dtype}",
             "build the result from p itself (p.clone(), p.gather, indexing): no .float() or "
             "torch.tensor(...) that changes its dtype")
    return got


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
                    "holds the values of p's row)",
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


def _same_rows(title: str, got: torch.Tensor, p: torch.Tensor, y: torch.Tensor,
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


def _wrong_class_values(g: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
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
    tensor of probabilities indexed by ``_code`` each."""
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
            variants.append(counts / counts.sum())
    return variants


def _chi2(counts: torch.Tensor, shares: torch.Tensor) -> float:
    """Pearson's chi-square of `counts` against the probabilities `shares` (inf where an order
    of share 0 appears)."""
    expected = shares * counts.sum()
    if bool(((expected == 0) & (counts > 0)).any()):
        return float("inf")
    pos = expected > 0
    return float(((counts[pos] - expected[pos]) ** 2 / expected[pos]).sum())


def _uniform_orders(title, got, row, label) -> str:
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


def permute_verdict(data, inp, key) -> str:
    """Check ``fn(p (N, C), labels (N,), generator) -> (N, C)``: each row keeps p[i, labels[i]]
    in place and holds its other C - 1 values in a random order, drawn from `generator`
    independently for every row; p is not modified; the same generator state gives the same
    result whatever the global random state; the order is uniform over the (C - 1)! ones.
    """
    title = CHECKS["permute_dark_knowledge"].title
    p, y, _, _ = inp["small"]
    outs = data["small"]
    if not isinstance(outs, list) or len(outs) != len(GLOBAL_STATES):
        fail(title, "the probe's data is incomplete: the check cell or its output was tampered with",
             "run the check cell as it is in the lab")
    where = f"p of shape {tuple(p.shape)}"
    small = [_perm_result(title, o, p, where) for o in outs]
    for got in small:
        _same_rows(title, got, p, y, where)
    for (name, case), out in paired([(n, inp[n]) for n in ("batch", "double", "same")],
                                    [data[n] for n in ("batch", "double", "same")]):
        cp, cy = case[0], case[1]
        where = (f"{N_SAME:,} identical rows" if name == "same" else
                 f"p of shape {tuple(cp.shape)}, {str(cp.dtype).replace('torch.', '')}")
        _same_rows(title, _perm_result(title, out, cp, where), cp, cy, where)
    bp, by, _ = inp["batch"]
    batch = result(title, data["batch"]).to(bp.dtype)
    where = f"p of shape {tuple(bp.shape)}"
    name_mistake(CHECKS["permute_dark_knowledge"], batch, [["identity", bp, {}]], where,
                 atol=0.0, rtol=0.0)
    d = _wrong_class_values(batch, by).diff(dim=1)
    if bool((d >= 0).all()) or bool((d <= 0).all()):
        fail(title, f"{where}: in every row the wrong-class values are sorted "
                    f"({'ascending' if bool((d >= 0).all()) else 'descending'}): you sorted "
                    "them instead of shuffling them; a sort is the same for every generator",
             "put them in a random order drawn from generator: torch.randperm(C - 1, "
             "generator=generator), or torch.rand(N, C, generator=generator).argsort(dim=1)")
    first, other_global, again, other_gen = small[:4]
    if not torch.equal(first, again):
        fail(title, "two calls with generators in the same state, and the same global random "
                    "state, gave different results: your result is not reproducible",
             "draw every random number from `generator` (torch.rand(..., generator=generator), "
             "torch.randperm(n, generator=generator)); no time, os.urandom or unseeded generators")
    if not torch.equal(first, other_global):
        used = [lib for lib, got in zip(_LIBRARIES, small[4:]) if not torch.equal(first, got)]
        which = " and ".join(lib for lib, _ in used) or "a global random generator"
        how = "; ".join(h for _, h in used) or "an unseeded random function"
        fail(title, f"the same generator state gave different results when the global random "
                    f"state changed: you drew from {which}, not from `generator` ({how})",
             "pass generator=generator to every torch random function (torch.rand, torch.randperm, "
             "torch.multinomial, ...), and use no other random module")
    if torch.equal(first, other_gen):
        fail(title, "two different generators gave the same result: the order is not drawn "
                    "with `generator` (a generator of your own with a fixed seed, or no random "
                    "draw at all)",
             "draw the orders with the generator you receive, e.g. torch.rand(N, C, "
             "generator=generator).argsort(1); do not create or seed another one")
    same_p, same_y, _ = inp["same"]
    return _uniform_orders(title, result(title, data["same"]), same_p[0], int(same_y[0]))


check_permute_dark_knowledge = register("permute_dark_knowledge", permute_inputs, permute_probe,
                                        permute_verdict, PERMUTE_MISTAKES)
