"""Answer keys of Lab 06: decoupled KD and the permuted-dark-knowledge control.

The reference implementation of ``dkd_loss`` and of its common mistakes, evaluated on the
check's inputs (``kdlab.checks.lab06``): the verdict compares the student's gradient with
these gradients and names the mistake whose gradient matches. ``permute_dark_knowledge`` has
many right answers (one per shuffle); its key holds what every right answer shares: the
true-class probabilities and each row's sorted values.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kdlab.checks.lab06 import check_dkd_loss, check_permute_dark_knowledge

from ._table import key_of


def _target(y: torch.Tensor, C: int) -> torch.Tensor:
    return F.one_hot(y, C).bool()


def _binary_log(z: torch.Tensor, y: torch.Tensor, T: float) -> torch.Tensor:
    """(N, 2) log of b = (p_y, 1 - p_y) with p = softmax(z / T), stable for confident z."""
    log_p = F.log_softmax(z / T, dim=1)
    rest = torch.logsumexp(log_p.masked_fill(_target(y, z.shape[1]), float("-inf")), dim=1)
    return torch.stack([log_p.gather(1, y[:, None]).squeeze(1), rest], dim=1)


def _q_log(z: torch.Tensor, y: torch.Tensor, T: float) -> torch.Tensor:
    """(N, C) log q: log-softmax of z / T over the non-target classes (-inf at the target)."""
    return F.log_softmax((z / T).masked_fill(_target(y, z.shape[1]), float("-inf")), dim=1)


def _kl_rows(log_a: torch.Tensor, log_b: torch.Tensor, skip=None) -> torch.Tensor:
    """Per-row KL(a || b) from log-probabilities; columns in `skip` (a mask) left out (their
    -inf set to 0 before any arithmetic, so that no nan reaches the gradient)."""
    if skip is None:
        return (log_a.exp() * (log_a - log_b)).sum(1)
    log_a, log_b = log_a.masked_fill(skip, 0.0), log_b.masked_fill(skip, 0.0)
    return (log_a.exp() * (log_a - log_b)).masked_fill(skip, 0.0).sum(1)


def tckd_nckd(s, t, y, T, Ts=None, Tt=None):
    """Per-example TCKD and NCKD (without T**2): (N,), (N,). Ts, Tt: the temperatures of the
    student's and the teacher's logits (default T for both)."""
    Ts, Tt = Ts or T, Tt or T
    t = t.detach()
    tckd = _kl_rows(_binary_log(t, y, Tt), _binary_log(s, y, Ts))
    nckd = _kl_rows(_q_log(t, y, Tt), _q_log(s, y, Ts), _target(y, s.shape[1]))
    return tckd, nckd


def dkd_loss(student_logits, teacher_logits, labels, T, alpha, beta):
    """Reference: T**2 * mean(alpha * KL(b_t || b_s) + beta * KL(q_t || q_s)) -> scalar."""
    if not T > 0:
        raise ValueError(f"temperature T must be > 0, got {T}")
    tckd, nckd = tckd_nckd(student_logits, teacher_logits, labels, T)
    return T**2 * (alpha * tckd + beta * nckd).mean()


def _entropies(t, y, T):
    """Per-example entropies of b_t and q_t: the CE form minus the KL form, (N,), (N,)."""
    lb, lq = _binary_log(t, y, T), _q_log(t, y, T)
    hb = -(lb.exp() * lb).sum(1)
    hq = -(lq.exp() * lq).masked_fill(_target(y, t.shape[1]), 0.0).sum(1)
    return hb, hq


# ------------------------------------------------------------------ the common mistakes

def _mistakes(s, t, y, T, a, b) -> dict:
    """name -> loss(s) for every named mistake of ``kdlab.checks.lab06.DKD_MISTAKES``."""
    C = s.shape[1]
    tgt = _target(y, C)
    td = t.detach()

    def right(tc, nc, scale=T * T):
        return scale * (a * tc + b * nc).mean()

    def reversed_kl():
        tc = _kl_rows(_binary_log(s, y, T), _binary_log(td, y, T))
        nc = _kl_rows(_q_log(s, y, T), _q_log(td, y, T), tgt)
        return right(tc, nc)

    def nckd_weighted():
        tc, nc = tckd_nckd(s, td, y, T)
        w = 1 - F.softmax(td / T, 1).gather(1, y[:, None]).squeeze(1)
        return right(tc, w * nc)

    def q_not_renormalised():
        tc, _ = tckd_nckd(s, td, y, T)
        lt, ls = F.log_softmax(td / T, 1), F.log_softmax(s / T, 1)
        nc = (lt.exp() * (lt - ls)).masked_fill(tgt, 0.0).sum(1)
        return right(tc, nc)

    def target_logit_zero():
        tc, _ = tckd_nckd(s, td, y, T)
        lt = F.log_softmax((td / T).masked_fill(tgt, 0.0), 1)
        ls = F.log_softmax((s / T).masked_fill(tgt, 0.0), 1)
        nc = (lt.exp() * (lt - ls)).masked_fill(tgt, 0.0).sum(1)
        return right(tc, nc)

    def tckd_target_only():
        _, nc = tckd_nckd(s, td, y, T)
        lt, ls = _binary_log(td, y, T)[:, 0], _binary_log(s, y, T)[:, 0]
        return right(lt.exp() * (lt - ls), nc)

    def teacher_argmax():
        return T * T * (lambda tc, nc: (a * tc + b * nc).mean())(*tckd_nckd(s, td, td.argmax(1), T))

    def q_student_unnormalised():
        tc, _ = tckd_nckd(s, td, y, T)
        lt = _q_log(td, y, T)
        ls = F.log_softmax(s / T, 1)
        return right(tc, _kl_rows(lt, ls, tgt))

    def nckd_all_classes():
        tc, _ = tckd_nckd(s, td, y, T)
        return right(tc, _kl_rows(F.log_softmax(td / T, 1), F.log_softmax(s / T, 1)))

    def softmax_dim0():
        def b_log(z):
            log_p = F.log_softmax(z / T, dim=0)
            rest = torch.logsumexp(log_p.masked_fill(tgt, float("-inf")), dim=1)
            return torch.stack([log_p.gather(1, y[:, None]).squeeze(1), rest], dim=1)

        def q_log(z):
            return F.log_softmax((z / T).masked_fill(tgt, float("-inf")), dim=0)

        return right(_kl_rows(b_log(td), b_log(s)), _kl_rows(q_log(td), q_log(s), tgt))

    def target_zero_kept():
        tc, _ = tckd_nckd(s, td, y, T)
        lt = F.log_softmax((td / T).masked_fill(tgt, 0.0), 1)
        ls = F.log_softmax((s / T).masked_fill(tgt, 0.0), 1)
        return right(tc, _kl_rows(lt, ls))

    def mean_over_classes():
        tc, nc = tckd_nckd(s, td, y, T)
        return right(tc / 2, nc / C)

    return {
        "no_T2": lambda: right(*tckd_nckd(s, td, y, T), scale=1.0),
        "T_not_T2": lambda: right(*tckd_nckd(s, td, y, T), scale=T),
        "no_T": lambda: right(*tckd_nckd(s, td, y, 1.0)),
        "teacher_not_softened": lambda: right(*tckd_nckd(s, td, y, T, Ts=T, Tt=1.0)),
        "student_not_softened": lambda: right(*tckd_nckd(s, td, y, T, Ts=1.0, Tt=T)),
        "reversed": reversed_kl,
        "swapped_weights": lambda: T * T * (b * tckd_nckd(s, td, y, T)[0]
                                            + a * tckd_nckd(s, td, y, T)[1]).mean(),
        "nckd_weighted": nckd_weighted,
        "q_not_renormalised": q_not_renormalised,
        "q_student_unnormalised": q_student_unnormalised,
        "nckd_all_classes": nckd_all_classes,
        "softmax_dim0": softmax_dim0,
        "target_zero_kept": target_zero_kept,
        "student_argmax": lambda: right(*tckd_nckd(s, td, s.detach().argmax(1), T)),
        "target_logit_zero": target_logit_zero,
        "tckd_target_only": tckd_target_only,
        "teacher_argmax": teacher_argmax,
        "sum_over_batch": lambda: len(y) * right(*tckd_nckd(s, td, y, T)),
        "mean_over_classes": mean_over_classes,
    }


def _grad(loss_of_s, s: torch.Tensor) -> torch.Tensor:
    z = s.detach().clone().requires_grad_(True)
    return torch.autograd.grad(loss_of_s(z), z)[0]


def _setting_key(s, t, y, T, a, b, with_mistakes: bool = True) -> dict:
    grad = _grad(lambda z: dkd_loss(z, t, y, T, a, b), s)
    hb, hq = _entropies(t, y, T)
    kl = dkd_loss(s, t, y, T, a, b).item()
    out = {"grad": grad, "value_kl": kl,
           "value_ce": kl + (T * T * (a * hb + b * hq).mean()).item()}
    if with_mistakes:
        out["mistakes"] = []
        for name in _mistakes(s, t, y, T, a, b):
            g = _grad(lambda z, n=name: _mistakes(z, t, y, T, a, b)[n](), s)
            if not torch.allclose(g, grad, atol=1e-5, rtol=1e-3):  # tells apart from right here
                out["mistakes"].append([name, g, {}])
    return out


@key_of(check_dkd_loss)
def dkd_key(inp: dict) -> dict:
    """Right gradients and values at every setting, and each mistake's gradient there."""
    s, t, y = inp["s"], inp["t"], inp["y"]
    return {"settings": [_setting_key(s, t, y, T, a, b) for T, a, b in inp["settings"]],
            "confident": _setting_key(inp["s_conf"], inp["t_conf"], inp["y_conf"],
                                      *inp["conf_setting"], with_mistakes=False)}


# ------------------------------------------------------------------ permute_dark_knowledge

def permute_dark_knowledge(p, labels, generator):
    """Reference: p with every row's wrong-class entries shuffled (uniformly, per row)."""
    N, C = p.shape
    rows = torch.arange(N)
    keys = torch.rand(N, C, generator=generator)
    keys[rows, labels] = 2.0
    order = keys.argsort(dim=1)[:, :C - 1]
    wrong = torch.ones(N, C, dtype=torch.bool)
    wrong[rows, labels] = False
    out = p.clone()
    out[rows[:, None], wrong.nonzero()[:, 1].view(N, C - 1)] = p.gather(1, order)
    return out


@key_of(check_permute_dark_knowledge)
def permute_key(inp: dict) -> dict:
    """Nothing computed: every right answer is a different shuffle, and what they all share
    (p_y in place, each row's values) the verdict reads off the very `p` the student's
    function received, on the machine that ran it. Shipped floats from another CPU would
    differ in their last bit (a softmax's vector kernels), and a permutation is exact."""
    return {"facts_from": "inputs", "mistakes": ["identity"]}
