"""Checks of Lab 03 (response-based KD): the Hinton et al. (2015) distillation loss.

``check_kd_loss(fn)`` compares the gradient of ``fn(student_logits, teacher_logits, labels,
T, alpha)`` with respect to the student's logits against the right loss at several (T, alpha)
settings. Any correct formulation passes: the KL form and the soft-target cross-entropy
(which differs from it only by the teacher's entropy, a constant for the student). Common
mistakes are recognised by their gradient and named in the message.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._common import as_tensor, call, fail, passed, short

NAME = "check_kd_loss"
N, C = 6, 5  # small batch: 6 examples, 5 classes
DIAGNOSTIC = [(4.0, 0.7), (2.0, 0.25)]  # settings where every mistake below looks different
EXTRA = [(1.0, 0.5), (20.0, 1.0), (3.0, 0.0)]  # edge settings: T = 1, soft only, hard only
FORMULA = ("loss = (1 - alpha) * F.cross_entropy(student_logits, labels) + alpha * T**2 * "
           "KL(softmax(teacher_logits / T) || softmax(student_logits / T)), averaged over the batch")


# ------------------------------------------------------------------ the right loss and mistakes

def _logp(z: torch.Tensor, T: float) -> torch.Tensor:
    return F.log_softmax(z / T, dim=1)


def _kl(logp_t: torch.Tensor, logp_s: torch.Tensor) -> torch.Tensor:
    """Per-example KL(p_t || p_s) from log-probabilities (N, C): (N,)."""
    return (logp_t.exp() * (logp_t - logp_s)).sum(1)


def _kl_div(inp: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """What F.kl_div(inp, target, reduction='batchmean') computes, for any inputs: scalar."""
    return (torch.xlogy(target, target) - target * inp).sum() / inp.shape[0]


def reference(s, t, y, T, alpha):
    """The right loss (KL form): s, t (N, C) logits, y (N,) labels -> scalar."""
    t = t.detach()
    hard = F.cross_entropy(s, y)
    soft = _kl(_logp(t, T), _logp(s, T)).mean()
    return (1 - alpha) * hard + alpha * T * T * soft


def teacher_entropy_term(t, T, alpha):
    """alpha * T^2 * mean entropy of the softened teacher: soft-target CE minus the KL form."""
    logp = _logp(t.detach(), T)
    return alpha * T * T * -(logp.exp() * logp).sum(1).mean()


def _mix(s, y, T, alpha, soft):
    return (1 - alpha) * F.cross_entropy(s, y) + alpha * T * T * soft


def _mse_probs(s, t, T):
    return F.mse_loss(F.softmax(s / T, dim=1), F.softmax(t / T, dim=1))


# name -> (loss(s, t, y, T, alpha), what is wrong, hint). Each is a common mistake.
MISTAKES = {
    "no_T2": (
        lambda s, t, y, T, a: (1 - a) * F.cross_entropy(s, y) + a * _kl(_logp(t, T), _logp(s, T)).mean(),
        "the soft term is missing its factor T**2",
        "softening by T shrinks the soft gradients by 1/T**2; multiply the KL term by T**2 so "
        "that changing T does not change the balance between the two terms (Hinton et al. §2)"),
    "reversed": (
        lambda s, t, y, T, a: _mix(s, y, T, a, _kl(_logp(s, T), _logp(t, T)).mean()),
        "the KL divergence is reversed: you computed KL(student || teacher)",
        "the teacher's distribution is the target: KL(p_teacher || p_student). "
        "F.kl_div(input, target) computes KL(target || input), so pass the student's "
        "log-probabilities as input and the teacher's as target"),
    "teacher_not_softened": (
        lambda s, t, y, T, a: _mix(s, y, T, a, _kl(_logp(t, 1.0), _logp(s, T)).mean()),
        "the teacher's logits are not divided by T (its soft targets are not softened)",
        "soft targets are softmax(teacher_logits / T)"),
    "student_not_softened": (
        lambda s, t, y, T, a: _mix(s, y, T, a, _kl(_logp(t, T), _logp(s, 1.0)).mean()),
        "the student's logits are not divided by T in the soft term",
        "match softmax(student_logits / T) to the teacher's softmax(teacher_logits / T)"),
    "alpha_on_hard": (
        lambda s, t, y, T, a: a * F.cross_entropy(s, y) + (1 - a) * T * T * _kl(_logp(t, T), _logp(s, T)).mean(),
        "alpha weights the wrong term: here alpha multiplies the soft (teacher) term and "
        "(1 - alpha) the hard-label cross-entropy",
        "swap the weights: (1 - alpha) * hard + alpha * T**2 * soft (some libraries use the "
        "opposite convention; this lab follows the lecture's)"),
    "mean_over_classes": (
        lambda s, t, y, T, a: _mix(s, y, T, a, _kl(_logp(t, T), _logp(s, T)).mean() / s.shape[1]),
        "the soft term is averaged over the classes as well as the batch (reduction='mean'), "
        "so it is C times too small",
        "use F.kl_div(..., reduction='batchmean'): sum over classes, mean over the batch"),
    "sum_over_batch": (
        lambda s, t, y, T, a: s.shape[0] * reference(s, t, y, T, a),
        "the loss is summed over the batch instead of averaged, so it grows with the batch size",
        "average over the examples: F.kl_div(..., reduction='batchmean') and "
        "F.cross_entropy's default reduction='mean'"),
    "sum_over_batch_soft": (
        lambda s, t, y, T, a: _mix(s, y, T, a, _kl(_logp(t, T), _logp(s, T)).sum()),
        "the soft term is summed over the batch instead of averaged (reduction='sum'), so it "
        "grows with the batch size",
        "use F.kl_div(..., reduction='batchmean')"),
    "sum_over_batch_hard": (
        lambda s, t, y, T, a: (1 - a) * F.cross_entropy(s, y, reduction="sum") + a * T * T * _kl(_logp(t, T), _logp(s, T)).mean(),
        "the hard-label cross-entropy is summed over the batch instead of averaged, so it "
        "grows with the batch size",
        "keep F.cross_entropy's default reduction='mean'"),
    "hard_ce_softened": (
        lambda s, t, y, T, a: (1 - a) * F.cross_entropy(s / T, y) + a * T * T * _kl(_logp(t, T), _logp(s, T)).mean(),
        "the hard-label cross-entropy is computed on the softened student logits "
        "(student_logits / T)",
        "the hard term is the ordinary cross-entropy at T = 1: F.cross_entropy(student_logits, labels)"),
    "kl_div_log_target": (
        lambda s, t, y, T, a: _mix(s, y, T, a, _kl_div(_logp(s, T), _logp(t.detach(), T))),
        "F.kl_div received the teacher's LOG-probabilities as target without log_target=True",
        "pass F.softmax(teacher_logits / T, dim=1) as target, or keep log_softmax and add "
        "log_target=True"),
    "kl_div_probs_input": (
        lambda s, t, y, T, a: _mix(s, y, T, a, _kl_div(F.softmax(s / T, dim=1), F.softmax(t.detach() / T, dim=1))),
        "F.kl_div received the student's probabilities as input; it expects log-probabilities",
        "use F.log_softmax(student_logits / T, dim=1) as the first argument of F.kl_div"),
}

_MSE_HINT = ("use KL(p_teacher || p_student), e.g. F.kl_div(F.log_softmax(student_logits / T, dim=1), "
             "F.softmax(teacher_logits / T, dim=1), reduction='batchmean')")
for _scale in ("mean", "sum_classes"):  # F.mse_loss, or squared error summed over classes
    for _t2 in (True, False):
        MISTAKES[f"mse_probs_{_scale}{'' if _t2 else '_no_T2'}"] = (
            lambda s, t, y, T, a, k=_scale, t2=_t2: (1 - a) * F.cross_entropy(s, y) + a * (
                T * T if t2 else 1) * _mse_probs(s, t, T) * (s.shape[1] if k == "sum_classes" else 1),
            "the soft term is a squared error between probabilities, not the KL divergence",
            _MSE_HINT)


# ------------------------------------------------------------------ the check

def inputs(seed: int = 0):
    """Fixed small inputs: student (N, C), teacher (N, C) logits and labels (N,)."""
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(N, C, generator=g) * 2
    t = torch.randn(N, C, generator=g) * 3
    y = torch.randint(0, C, (N,), generator=g)
    return s, t, y


def _student_grad(fn, s, t, y, T, alpha):
    """Call fn on fresh leaves; return (loss value, grad wrt student, grad wrt teacher)."""
    s = s.clone().requires_grad_(True)
    t = t.clone().requires_grad_(True)  # the teacher must not receive a gradient
    out = as_tensor(NAME, call(NAME, fn, s, t, y.clone(), T, alpha), "kd_loss(...)")
    if out.dim() != 0:
        if tuple(out.shape) == (s.shape[0],):
            fail(NAME, f"kd_loss returned one value per example, shape {tuple(out.shape)}; "
                       "expected a scalar, shape ()",
                 "average over the batch (reduction='batchmean' for the KL term, the default "
                 "'mean' for the cross-entropy)")
        fail(NAME, f"kd_loss returned shape {tuple(out.shape)} for logits of shape "
                   f"{tuple(s.shape)}; expected a scalar, shape ()",
             "sum over the classes, then average over the batch")
    if not out.requires_grad:
        fail(NAME, "the loss does not depend on student_logits (no gradient flows back)",
             "do not call .detach(), .item() or torch.no_grad() on the student's side")
    gs, gt = torch.autograd.grad(out, [s, t], allow_unused=True)
    if gs is None:
        fail(NAME, "the loss does not depend on student_logits (no gradient flows back)",
             "do not detach the student's logits")
    return out.detach(), gs, gt


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=1e-3, atol=1e-6))


def _grad_of(loss_fn, s, t, y, T, alpha) -> torch.Tensor:
    s = s.clone().requires_grad_(True)
    return torch.autograd.grad(loss_fn(s, t, y, T, alpha), s)[0]


def _diagnose(fn, s, t, y) -> None:
    """Fail with the name of the mistake whose gradient matches the student's, if any."""
    got = [_student_grad(fn, s, t, y, T, a)[1] for T, a in DIAGNOSTIC]
    want = [_grad_of(reference, s, t, y, T, a) for T, a in DIAGNOSTIC]
    if all(_close(g, w) for g, w in zip(got, want)):
        return
    for loss_fn, what, hint in MISTAKES.values():
        if all(_close(g, _grad_of(loss_fn, s, t, y, T, a)) for g, (T, a) in zip(got, DIAGNOSTIC)):
            fail(NAME, what, hint)
    for g, w, (T, a) in zip(got, want, DIAGNOSTIC):
        if not _close(g, w):
            maxdiff = (g - w).abs().max().item() if g.shape == w.shape else float("nan")
            fail(NAME, f"the gradient of your loss with respect to student_logits is wrong at "
                       f"T={T}, alpha={a}: max abs difference {maxdiff:.3g}\n"
                       f"    got      {short(g)}\n    expected {short(w)}",
                 f"{FORMULA}. Try one term at a time (alpha=0, then alpha=1)")


def check_kd_loss(fn) -> None:
    """Check kd_loss(student_logits (N, C), teacher_logits (N, C), labels (N,), T, alpha) -> ()."""
    s, t, y = inputs()
    _diagnose(fn, s, t, y)
    for T, a in DIAGNOSTIC + EXTRA:
        val, gs, gt = _student_grad(fn, s, t, y, T, a)
        want = _grad_of(reference, s, t, y, T, a)
        if not _close(gs, want):
            fail(NAME, f"the gradient with respect to student_logits is wrong at T={T}, "
                       f"alpha={a}: got {short(gs)}, expected {short(want)}",
                 f"{FORMULA}. alpha=0 means labels only, alpha=1 teacher only")
        if gt is not None and gt.abs().max().item() > 0:
            fail(NAME, "teacher_logits received a gradient: the teacher is a target, not a learner",
                 "use teacher_logits.detach() (or compute its softmax under torch.no_grad())")
        kl_form = reference(s, t, y, T, a)
        ce_form = kl_form + teacher_entropy_term(t, T, a)
        if not (torch.allclose(val, kl_form, rtol=1e-4, atol=1e-5)
                or torch.allclose(val, ce_form, rtol=1e-4, atol=1e-5)):
            fail(NAME, f"the gradient is right but the loss value is not, at T={T}, alpha={a}: "
                       f"got {val.item():.5g}, expected {kl_form.item():.5g} (KL form) or "
                       f"{ce_form.item():.5g} (soft-target cross-entropy form)",
                 "remove any constant you added to the loss")
    # a very confident teacher: its softmax underflows to exact zeros at T = 1
    t_conf = torch.zeros(N, C)
    t_conf[torch.arange(N), y] = 120.0
    val, gs, _ = _student_grad(fn, s * 20, t_conf, y, 1.0, 0.5)
    if not (torch.isfinite(val) and torch.isfinite(gs).all()):
        fail(NAME, f"the loss or its gradient is nan/inf for confident logits (teacher logits "
                   f"differing by 120, student logits up to {s.abs().max().item() * 20:.0f}, "
                   f"T=1): loss {val.item()}",
             "compute log-probabilities with F.log_softmax, not torch.log(F.softmax(...)), and let "
             "F.kl_div handle 0 * log 0 (or write the soft term as a cross-entropy)")
    if not _close(gs, _grad_of(reference, s * 20, t_conf, y, 1.0, 0.5)):
        fail(NAME, "the gradient is wrong for confident logits (teacher logits differing by 120, T=1)",
             "compute log-probabilities with F.log_softmax rather than log(softmax) or clamping")
    for bad_T in (0.0, -2.0):
        try:
            fn(s.clone(), t.clone(), y.clone(), bad_T, 0.5)
        except ValueError:
            continue
        except NotImplementedError:
            fail(NAME, "not implemented yet", "remove `raise NotImplementedError`")
        except Exception as e:
            fail(NAME, f"T={bad_T} raised {type(e).__name__}: {e}; expected a ValueError that "
                       "says T must be > 0", "start with: if T <= 0: raise ValueError(...)")
        fail(NAME, f"T={bad_T} was accepted; a temperature must be > 0",
             "start with: if T <= 0: raise ValueError(f'temperature T must be > 0, got {T}')")
    passed(NAME, f"gradients match the distillation loss at {len(DIAGNOSTIC + EXTRA)} (T, alpha) "
                 "settings, the teacher gets no gradient, T <= 0 is rejected")
