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

import math
import random

import numpy as np
import torch

from . import _probe as _p
from ._common import (Mistake, close, recorded, fail, name_mistake, paired,
                      raised, rejects, result, short, unchanged)
from ._registry import Check
from ._scalar import SCALAR_LOSS_PARTS, ScalarLoss
from ._shuffles import (C_SAME, N_SAME, same_rows, uniform_orders,
                        wrong_class_values)

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
    g = check_dkd_loss.rng(seed)
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


DKD = ScalarLoss(("student_logits", "teacher_logits", "labels"),
                 "sum each KL over its classes, then average over the batch: .sum(dim=1).mean()",
                 no_gradient="the loss does not depend on student_logits (no gradient flows "
                             "back to them)", per_example_words=True)


def _dkd_outcome(check, out: dict, s: torch.Tensor, where: str) -> tuple:
    """(loss value, gradient w.r.t. the student, gradient w.r.t. the teacher or None), or fail."""
    return DKD.outcome(check, out, f"for logits of shape {tuple(s.shape)}",
                       f"{tuple(s.shape)}, {tuple(s.shape)}, ({s.shape[0]},)", where,
                       batch=s.shape[0])


def _name_dkd_mistake(check, settings, keys, outcomes) -> None:
    """Fail with the mistake whose gradient matches the student's at every setting where the
    student's gradient is wrong (one setting alone can fit two: at T = 2 on TCKD alone, T
    instead of T**2 and a mean over the 2 entries of b both halve the loss)."""
    wrong = [(st, k, gs) for st, k, (_, gs, _) in zip(settings, keys, outcomes)
             if not _grad_close(gs, k["grad"])]
    for m in check.mistakes:
        if all(any(name == m.name and _grad_close(gs, ref) for name, ref, _ in k["mistakes"])
               for _, k, gs in wrong):
            (T, a, b), k, gs = wrong[0]
            fail(check.title, f"T={T:g}, alpha={a:g}, beta={b:g}"
                              f"{f' (and {len(wrong) - 1} more settings)' if len(wrong) > 1 else ''}"
                              f": {m.what}\n    gradient got      {short(gs)}\n    gradient "
                              f"expected {short(k['grad'])}", m.hint)


def dkd_verdict(check, data, inp, key) -> str:
    """Check ``fn(student_logits (N, C), teacher_logits (N, C), labels (N,), T, alpha, beta)``.

    Returns a scalar: T**2 times the batch mean of alpha * KL(b_t || b_s) + beta * KL(q_t || q_s),
    b = (p_y, 1 - p_y) from p = softmax(logits / T), q = softmax(logits / T) over the classes
    other than the label. The gradient with respect to the student's logits must match at
    every setting (the value may be the KL form or the cross-entropy form), the teacher gets
    no gradient, confident logits stay finite, and T <= 0 raises ValueError.
    Parts (``SCALAR_LOSS_PARTS``): gradient, teacher, value, stable, errors.
    """
    title = check.title
    s = inp["s"]
    outcomes = []
    for (T, a, b), k, out in paired(inp["settings"], key["settings"], data["settings"]):
        outcomes.append(_dkd_outcome(check, out, s, f"T={T:g}, alpha={a:g}, beta={b:g}"))
    with check.part("gradient"):
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
    with check.part("teacher"):
        for (T, a, b), k, (val, gs, gt) in paired(inp["settings"], key["settings"], outcomes):
            DKD.no_teacher_gradient(check, gt, "teacher_logits received a gradient: the teacher is a "
                                    "target, not a learner", "use teacher_logits.detach() before "
                                    "computing its distributions")
    with check.part("value"):
        for (T, a, b), k, (val, gs, gt) in paired(inp["settings"], key["settings"], outcomes):
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
    with check.part("stable"):
        k = key["confident"]
        out = data["confident"]
        where = "confident logits (student logit margin 100 at T=1)"
        raised(title, out, where=where)
        v = out["value"]
        grads = out.get("grads") or [{"kind": "none"}]
        val = recorded(v) if v.get("kind") == "tensor" else torch.tensor(float("nan"))
        gs = (recorded(grads[0]) if grads[0].get("kind") == "tensor"
              else torch.full(tuple(inp["s_conf"].shape), float("nan")))
        DKD.confident(
            check, val, gs, (f"the loss or its gradient is nan or inf for a student that is sure of "
                             f"the true class (logit margin 100, T=1; loss {short(val)}): its "
                             "wrong-class probabilities underflow to 0 in float32 (1 - p_y rounds to "
                             "0), and their log is -inf",
                             "never compute log(1 - p_y) from probabilities: take the logsumexp of "
                             "the non-target log-probabilities, torch.logsumexp(log_p.masked_fill("
                             "is_target, float('-inf')), dim=1)"),
            k["grad"], (f"{where}: the gradient is wrong: got {short(gs)}, expected "
                        f"{short(k['grad'])}", "compute every log-probability with F.log_softmax / "
                        "torch.logsumexp, without clamping probabilities"), atol=1e-5, rtol=1e-3)
    with check.part("errors"):
        rejects(title, inp["bad_Ts"], data["bad"], "T", "not T > 0", "temperature T must be > 0")
    return (f"gradients match decoupled KD at {len(inp['settings'])} (T, alpha, beta) settings "
            "and on confident logits, the teacher gets no gradient, T <= 0 is rejected")


check_dkd_loss = Check("dkd_loss", dkd_inputs, dkd_probe, dkd_verdict, DKD_MISTAKES,
                       parts=SCALAR_LOSS_PARTS)


# ------------------------------------------------------------------ permute_dark_knowledge

PERMUTE_MISTAKES = [
    Mistake("identity", "your result equals p: nothing was shuffled",
            "shuffle the C - 1 wrong-class entries of every row, e.g. with "
            "torch.randperm(C - 1, generator=generator) per row", keyed=False),
]
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
    - "same": one (5,) row of distinct values, its label and a generator seed; the probe calls
      fn on 10,000 copies of it (``same_rows_case``): every row must get its own order, and
      each of the 24 orders of the wrong classes about 1/24 of the rows
    - "double": (8, 10) float64 soft targets: the result keeps the dtype
    """
    g = check_permute_dark_knowledge.rng(seed)

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
            "same": (row, label, gen_seed()),
            "double": (double_p.double(), double_y, gen_seed())}


def same_rows_case(case) -> tuple:
    """(p (N_SAME, C_SAME), labels (N_SAME,), generator seed) from the inputs' "same" case:
    its one row repeated (the inputs carry the row once, not 10,000 times)."""
    row, label, gseed = case
    return row.repeat(N_SAME, 1), torch.full((N_SAME,), int(label)), gseed


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
    return {"small": small, "batch": run(*inp["batch"]), "same": run(*same_rows_case(inp["same"])),
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



def permute_verdict(check, data, inp, key) -> str:
    """Check ``fn(p (N, C), labels (N,), generator) -> (N, C)``: each row keeps p[i, labels[i]]
    in place and holds its other C - 1 values in a random order, drawn from `generator`
    independently for every row; p is not modified; the same generator state gives the same
    result whatever the global random state; the order is uniform over the (C - 1)! ones.
    """
    title = check.title
    p, y, _, _ = inp["small"]
    outs = data["small"]
    if not isinstance(outs, list) or len(outs) != len(GLOBAL_STATES):
        fail(title, "the probe's data is incomplete: the check cell or its output was tampered with",
             "run the check cell as it is in the lab")
    where = f"p of shape {tuple(p.shape)}"
    small = [_perm_result(title, o, p, where) for o in outs]
    for got in small:
        same_rows(title, got, p, y, where)
    cases = [("batch", inp["batch"]), ("double", inp["double"]),
             ("same", same_rows_case(inp["same"]))]
    for (name, case), out in paired(cases, [data[n] for n in ("batch", "double", "same")]):
        cp, cy = case[0], case[1]
        where = (f"{N_SAME:,} identical rows" if name == "same" else
                 f"p of shape {tuple(cp.shape)}, {str(cp.dtype).replace('torch.', '')}")
        same_rows(title, _perm_result(title, out, cp, where), cp, cy, where)
    bp, by, _ = inp["batch"]
    batch = result(title, data["batch"]).to(bp.dtype)
    where = f"p of shape {tuple(bp.shape)}"
    name_mistake(check, batch, [["identity", bp, {}]], where,
                 atol=0.0, rtol=0.0)
    d = wrong_class_values(batch, by).diff(dim=1)
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
    row, label, _ = inp["same"]
    return uniform_orders(title, result(title, data["same"]), row, int(label))


check_permute_dark_knowledge = Check("permute_dark_knowledge", permute_inputs, permute_probe,
                                        permute_verdict, PERMUTE_MISTAKES)
