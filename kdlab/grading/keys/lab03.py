"""Answer keys of Lab 03 (response-based KD): the distillation loss and one distillation step.

The reference ``kd_loss`` (also the loss of the benchmarks and tests), the common mistakes of
the exercise as losses, and a reference distillation step (done right and done wrong),
evaluated on a check's inputs (``kdlab.checks.lab03``): the verdicts compare the student's
gradients, losses and weights with these values and name the mistake whose values match.
"""
from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

from kdlab.checks.lab03 import check_kd_loss, check_distill_step, step_entries, step_models

from ._table import key_of


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
            T: float = 4.0, alpha: float = 0.9) -> torch.Tensor:
    """Hinton et al. (2015) distillation loss, alpha on the soft term.

    (1 - alpha) * CE(student, labels) + alpha * T^2 * KL(p_teacher^T || p_student^T),
    averaged over the batch. The teacher is a target: no gradient flows into it.
    Inputs: student_logits (N, C), teacher_logits (N, C), labels (N,) int64, T > 0 (a real
    number or a 0-dim real tensor), alpha in [0, 1]. Returns: a scalar tensor.
    """
    real_tensor = torch.is_tensor(T) and T.dim() == 0 and T.dtype != torch.bool and not T.is_complex()
    if not (real_tensor or isinstance(T, numbers.Real) and not isinstance(T, bool)):
        raise TypeError(f"temperature T must be a real number or a 0-dim real tensor, got "
                        f"{type(T).__name__} {T!r}")
    T = float(T)
    if not (T > 0 and math.isfinite(T)):
        raise ValueError(f"temperature T must be a finite number > 0, got {T!r}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student_logits {tuple(student_logits.shape)} and teacher_logits "
                         f"{tuple(teacher_logits.shape)} must have the same shape (N, C)")
    soft = F.kl_div(F.log_softmax(student_logits / T, dim=-1),
                    F.log_softmax(teacher_logits.detach() / T, dim=-1),
                    reduction="batchmean", log_target=True)
    hard = F.cross_entropy(student_logits, labels) if alpha < 1 else student_logits.sum() * 0
    return (1 - alpha) * hard + alpha * T * T * soft


# ------------------------------------------------------------------ kd_loss: the mistakes

def _logp(z, T):
    return F.log_softmax(z / T, dim=1)


def _kl(logp_t, logp_s):
    """Per-example KL(p_t || p_s) from log-probabilities (N, C): (N,)."""
    return (logp_t.exp() * (logp_t - logp_s)).sum(1)


def _kl_div(inp, target):
    """What F.kl_div(inp, target, reduction='batchmean') computes, for any inputs: scalar."""
    return (torch.xlogy(target, target) - target * inp).sum() / inp.shape[0]


def _mix(s, y, T, a, soft):
    return (1 - a) * F.cross_entropy(s, y) + a * T * T * soft


def _soft(s, t, T):
    return _kl(_logp(t, T), _logp(s, T)).mean()


def _mse(s, t, T, sum_classes):
    return F.mse_loss(F.softmax(s / T, dim=1), F.softmax(t / T, dim=1)) * (s.shape[1] if sum_classes else 1)


KD_WRONG_LOSSES = {  # name -> loss(s, t, y, T, alpha), each named as an entry of check_kd_loss.mistakes
    "no_T2": lambda s, t, y, T, a: (1 - a) * F.cross_entropy(s, y) + a * _soft(s, t, T),
    "reversed": lambda s, t, y, T, a: _mix(s, y, T, a, _kl(_logp(s, T), _logp(t, T)).mean()),
    "teacher_not_softened": lambda s, t, y, T, a: _mix(s, y, T, a, _kl(_logp(t, 1.0), _logp(s, T)).mean()),
    "student_not_softened": lambda s, t, y, T, a: _mix(s, y, T, a, _kl(_logp(t, T), _logp(s, 1.0)).mean()),
    "alpha_on_hard": lambda s, t, y, T, a: a * F.cross_entropy(s, y) + (1 - a) * T * T * _soft(s, t, T),
    "mean_over_classes": lambda s, t, y, T, a: _mix(s, y, T, a, _soft(s, t, T) / s.shape[1]),
    "sum_over_batch": lambda s, t, y, T, a: s.shape[0] * kd_loss(s, t, y, T, a),
    "sum_over_batch_soft": lambda s, t, y, T, a: _mix(s, y, T, a, _kl(_logp(t, T), _logp(s, T)).sum()),
    "sum_over_batch_hard": lambda s, t, y, T, a: ((1 - a) * F.cross_entropy(s, y, reduction="sum")
                                                  + a * T * T * _soft(s, t, T)),
    "hard_ce_softened": lambda s, t, y, T, a: (1 - a) * F.cross_entropy(s / T, y) + a * T * T * _soft(s, t, T),
    "kl_div_log_target": lambda s, t, y, T, a: _mix(s, y, T, a, _kl_div(_logp(s, T), _logp(t, T))),
    "kl_div_probs_input": lambda s, t, y, T, a: _mix(s, y, T, a, _kl_div(F.softmax(s / T, dim=1),
                                                                         F.softmax(t / T, dim=1))),
}
for _sum in (False, True):  # F.mse_loss, or squared error summed over the classes
    for _t2 in (True, False):
        KD_WRONG_LOSSES[f"mse_probs_{'sum_classes' if _sum else 'mean'}{'' if _t2 else '_no_T2'}"] = (
            lambda s, t, y, T, a, k=_sum, t2=_t2: (1 - a) * F.cross_entropy(s, y)
            + a * (T * T if t2 else 1) * _mse(s, t, T, k))


def _grad(loss_fn, s, t, y, T, a) -> torch.Tensor:
    """d loss_fn(s, t, y, T, a) / d s: (N, C)."""
    s = s.clone().requires_grad_(True)
    return torch.autograd.grad(loss_fn(s, t.detach(), y, T, a), s)[0]


def teacher_entropy_term(t, T, a) -> torch.Tensor:
    """alpha * T^2 * mean entropy of the softened teacher: soft-target CE minus the KL form."""
    logp = _logp(t, T)
    return a * T * T * -(logp.exp() * logp).sum(1).mean()


@key_of(check_kd_loss)
def kd_loss_key(inp: dict) -> dict:
    """Right gradients and losses at every setting, and every mistake's gradients.

    settings: per (T, alpha) the gradient (N, C) and the loss in the KL and soft-target CE
    forms; diagnostic and mistakes: the right and each mistake's gradients at the first
    n_diagnostic settings, stacked (n_diagnostic, N, C); confident: the gradient (N, C) there.
    """
    s, t, y = inp["s"], inp["t"], inp["y"]
    diag = inp["settings"][:inp["n_diagnostic"]]

    def stacked(loss_fn):
        return torch.stack([_grad(loss_fn, s, t, y, T, a) for T, a in diag])

    settings = []
    for T, a in inp["settings"]:
        kl = kd_loss(s, t, y, T, a).detach()
        settings.append({"grad": _grad(kd_loss, s, t, y, T, a), "kl": kl,
                         "ce": kl + teacher_entropy_term(t, T, a)})
    Tc, ac = inp["conf_setting"]
    return {"diagnostic": stacked(kd_loss), "settings": settings,
            "mistakes": [[name, stacked(fn), {}] for name, fn in KD_WRONG_LOSSES.items()],
            "confident": _grad(kd_loss, inp["s_conf"], inp["t_conf"], y, Tc, ac)}


# ------------------------------------------------------------------ distill_step

def _reference_run(inp, variant: str = "right") -> list:
    """The check's two steps done right or as `variant`: [{"student", "loss", "loss_ce"}] * 2.

    student: the student's state dict after the step (float entries); variants: "right", "no_zero_grad" (gradients accumulate), "swapped" and "swapped_ce" (the
    loss, KL or soft-target cross-entropy form, with the teacher's and the student's logits
    exchanged and the student's side not detached). loss_ce: the soft-target cross-entropy
    form of the right loss (the KL form plus the teacher's entropy term).
    """
    student, teacher, opt = step_models(inp)
    T, a = inp["T"], inp["alpha"]
    teacher.eval()
    out = []
    for x, y in inp["batches"]:
        student.train()
        if variant != "no_zero_grad":
            opt.zero_grad()
        with torch.no_grad():
            t_out = teacher(x)
        s_out = student(x)
        if variant in ("swapped", "swapped_ce"):  # KL(p_s || p_t), or -sum p_s log p_t
            logp_s, logp_t = F.log_softmax(s_out / T, 1), F.log_softmax(t_out / T, 1)
            soft = (logp_s.exp() * ((logp_s if variant == "swapped" else 0) - logp_t)).sum(1).mean()
            loss = (1 - a) * F.cross_entropy(t_out, y) + a * T * T * soft
        else:
            loss = kd_loss(s_out, t_out, y, T, a)
        loss.backward()
        opt.step()
        value = float(loss.detach())
        out.append({"student": {k: v.detach().clone() for k, v in student.state_dict().items()
                                if v.is_floating_point()},
                    "loss": value, "loss_ce": value + float(teacher_entropy_term(t_out, T, a))})
    return out


@key_of(check_distill_step)
def distill_step_key(inp: dict) -> dict:
    """Two reference steps and the student's parameters after the named mistakes' steps.

    steps: per step the student's parameters and running statistics (flat float32 vectors, in
    the order of ``step_entries``) and the loss in both forms; step1_mistakes: no update, the
    loss with teacher and student swapped; step2_mistakes: no zero_grad.
    """
    params, stats = step_entries(inp["student"])

    def flat(state, names):
        return torch.cat([state[k].to(torch.float32).flatten() for k in names])

    right = _reference_run(inp)
    return {"steps": [{"params": flat(r["student"], params), "stats": flat(r["student"], stats),
                       "loss": r["loss"], "loss_ce": r["loss_ce"]} for r in right],
            "step1_mistakes": [["no_update", flat(inp["student"], params), {}]]
            + [["swapped", flat(_reference_run(inp, v)[0]["student"], params), {}]
               for v in ("swapped", "swapped_ce")],
            "step2_mistakes": [["no_zero_grad", flat(_reference_run(inp, "no_zero_grad")[1]["student"],
                                                     params), {}]]}
