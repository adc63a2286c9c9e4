"""Checks of Lab 03 (response-based KD): the distillation loss and one distillation step.

``check_kd_loss(fn)`` compares the gradient of ``fn(student_logits, teacher_logits, labels,
T, alpha)`` with respect to the student's logits against the right loss at several (T, alpha)
settings. Any correct formulation passes: the KL form and the soft-target cross-entropy
(which differs from it only by the teacher's entropy, a constant for the student). Common
mistakes are recognised by their gradient and named in the message.

``check_distill_step(fn)`` runs ``fn(student, teacher, x, y, optimizer, T, alpha)`` for two
steps on small models with batch norm and compares what happened (the student's weights,
the teacher's weights, running statistics and gradients, the modes, the returned loss) with a
reference step computed here; the usual mistakes of a training step are named.

Both are probe + verdict checks (see ``_registry``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import _probe as _p
from ._common import (close, decode, expects_value_error, fail, paired, raised, short, type_name,
                      unchanged)
from ._registry import register

NAME = "check_kd_loss"
N, C = 6, 5  # default small batch: 6 examples, 5 classes
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


# ------------------------------------------------------------------ check_kd_loss

BAD_TS = (0.0, -2.0)


def inputs(seed=None, N: int = N, C: int = C) -> dict:
    """Inputs of the kd_loss check: student (N, C) and teacher (N, C) logits, labels (N,).

    seed None: the notebook's fixed inputs; an int: fresh values of the same kinds.
    N, C: batch size and number of classes (an instructor may change them: N >= 2, C >= 3).
    Also: the (T, alpha) settings, a very confident teacher, and temperatures to reject.
    """
    N, C = int(N), int(C)
    if N < 2 or C < 3:
        raise ValueError(f"check_kd_loss needs N >= 2 examples and C >= 3 classes, got N={N}, C={C}")
    g = torch.Generator().manual_seed(0 if seed is None else 30_000 + int(seed))
    s = torch.randn(N, C, generator=g) * 2
    t = torch.randn(N, C, generator=g) * 3
    y = torch.randint(0, C, (N,), generator=g)
    t_conf = torch.zeros(N, C)  # a very confident teacher: its softmax underflows at T = 1
    t_conf[torch.arange(N), y] = 120.0
    return {"s": s, "t": t, "y": y, "settings": DIAGNOSTIC + EXTRA, "s_conf": s * 20,
            "t_conf": t_conf, "conf_setting": (1.0, 0.5), "bad_Ts": BAD_TS}


def _call_with_grads(fn, s, t, y, T, alpha) -> dict:
    """fn on fresh leaves (s and t require grad); the outcome plus both gradients if scalar."""
    s = s.clone().requires_grad_(True)
    t = t.clone().requires_grad_(True)  # the teacher must not receive a gradient
    out, res = _p.call(fn, s, t, y.clone(), T, alpha)
    if torch.is_tensor(res) and res.dim() == 0 and res.requires_grad:
        out["grads"] = _p.grads(res, [s, t])
    return out


def probe(fn, inp) -> dict:
    """Call fn at every (T, alpha) setting, on confident logits and with bad temperatures."""
    s, t, y = inp["s"], inp["t"], inp["y"]
    return {"settings": [_call_with_grads(fn, s, t, y, T, a) for T, a in inp["settings"]],
            "confident": _call_with_grads(fn, inp["s_conf"], inp["t_conf"], y, *inp["conf_setting"]),
            "bad": [_p.call(fn, s.clone(), t.clone(), y.clone(), T, 0.5)[0] for T in inp["bad_Ts"]]}


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return close(a, b, atol=1e-6, rtol=1e-3)  # gradients: a looser relative tolerance


def _grad_of(loss_fn, s, t, y, T, alpha) -> torch.Tensor:
    s = s.clone().requires_grad_(True)
    return torch.autograd.grad(loss_fn(s, t, y, T, alpha), s)[0]


def _outcome(out: dict, s: torch.Tensor) -> tuple:
    """(loss value, grad wrt student, grad wrt teacher or None) of a recorded call, or fail."""
    raised(NAME, out, f"{tuple(s.shape)}, {tuple(s.shape)}, ({s.shape[0]},)")
    unchanged(NAME, out, ["student_logits", "teacher_logits", "labels"])
    v = out["value"]
    if v.get("kind") != "tensor":
        fail(NAME, f"kd_loss(...) should be a torch.Tensor, got {type_name(v)}",
             "use torch operations all the way and return the tensor")
    shape = tuple(v["shape"])
    if shape != ():
        if shape == (s.shape[0],):
            fail(NAME, f"kd_loss returned one value per example, shape {shape}; "
                       "expected a scalar, shape ()",
                 "average over the batch (reduction='batchmean' for the KL term, the default "
                 "'mean' for the cross-entropy)")
        fail(NAME, f"kd_loss returned shape {shape} for logits of shape {tuple(s.shape)}; "
                   "expected a scalar, shape ()",
             "sum over the classes, then average over the batch")
    grads = out.get("grads")
    if not v.get("requires_grad") or not grads or grads[0].get("kind") != "tensor":
        fail(NAME, "the loss does not depend on student_logits (no gradient flows back)",
             "do not call .detach(), .item() or torch.no_grad() on the student's side")
    gt = decode(grads[1]) if grads[1].get("kind") == "tensor" else None
    return decode(v), decode(grads[0]), gt


def _diagnose(data, s, t, y) -> None:
    """Fail with the name of the mistake whose gradient matches the student's, if any."""
    got = [_outcome(out, s)[1] for out in data["settings"][:len(DIAGNOSTIC)]]
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


def verdict(data, inp) -> str:
    """Check kd_loss(student_logits (N, C), teacher_logits (N, C), labels (N,), T, alpha) -> ().

    The gradient with respect to the student's logits must match the distillation loss at
    every (T, alpha) setting; the teacher gets no gradient; the value is the KL form or the
    soft-target cross-entropy form; confident logits stay finite; T <= 0 raises ValueError.
    """
    s, t, y = inp["s"], inp["t"], inp["y"]
    _diagnose(data, s, t, y)
    for (T, a), out in paired(inp["settings"], data["settings"]):
        val, gs, gt = _outcome(out, s)
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
        val = val.to(torch.float32)
        if not (torch.allclose(val, kl_form, rtol=1e-4, atol=1e-5)
                or torch.allclose(val, ce_form, rtol=1e-4, atol=1e-5)):
            fail(NAME, f"the gradient is right but the loss value is not, at T={T}, alpha={a}: "
                       f"got {val.item():.5g}, expected {kl_form.item():.5g} (KL form) or "
                       f"{ce_form.item():.5g} (soft-target cross-entropy form)",
                 "remove any constant you added to the loss")
    s_conf, t_conf, (Tc, ac) = inp["s_conf"], inp["t_conf"], inp["conf_setting"]
    out = data["confident"]
    raised(NAME, out)
    v = out["value"]
    grads = out.get("grads") or [{"kind": "none"}]
    val = decode(v) if v.get("kind") == "tensor" else torch.tensor(float("nan"))
    gs = decode(grads[0]) if grads[0].get("kind") == "tensor" else torch.full_like(s_conf, float("nan"))
    if not (bool(torch.isfinite(val).all()) and bool(torch.isfinite(gs).all())):
        fail(NAME, f"the loss or its gradient is nan/inf for confident logits (teacher logits "
                   f"differing by 120, student logits up to {s_conf.abs().max().item():.0f}, "
                   f"T={Tc:g}): loss {val.flatten()[:1].tolist()}",
             "compute log-probabilities with F.log_softmax, not torch.log(F.softmax(...)), and let "
             "F.kl_div handle 0 * log 0 (or write the soft term as a cross-entropy)")
    if not _close(gs, _grad_of(reference, s_conf, t_conf, y, Tc, ac)):
        fail(NAME, "the gradient is wrong for confident logits (teacher logits differing by 120, T=1)",
             "compute log-probabilities with F.log_softmax rather than log(softmax) or clamping")
    for bad_T, out in paired(inp["bad_Ts"], data["bad"]):
        expects_value_error(NAME, out, f"T={bad_T}", "start with: if T <= 0: raise ValueError(...)",
                            "a temperature must be > 0; start with: "
                            "if T <= 0: raise ValueError(f'temperature T must be > 0, got {T}')")
    return (f"gradients match the distillation loss at {len(inp['settings'])} (T, alpha) "
            "settings, the teacher gets no gradient, T <= 0 is rejected")


check_kd_loss = register("kd_loss", inputs, probe, verdict)


# ------------------------------------------------------------------ check_distill_step

STEP = "check_distill_step"
_D, _H_S, _H_T = 12, 16, 24  # input features, student and teacher hidden units
_LR = 0.1                     # plain SGD: the update shows the gradient itself
_PARAM_TOL = dict(atol=2e-5, rtol=1e-4)
_SIGNATURE = "distill_step(student, teacher, x, y, optimizer, T, alpha)"


def _mlp(d: int, h: int, c: int) -> nn.Module:
    """A small MLP with batch norm: x (N, d) -> logits (N, c); its output depends on the mode."""
    return nn.Sequential(nn.Linear(d, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Linear(h, c))


def step_inputs(seed=None, N: int = 16, C: int = 5, T: float = 4.0, alpha: float = 0.7) -> dict:
    """Inputs of the distill_step check: two batches, the weights of a student and a teacher.

    seed None: the notebook's fixed inputs; an int: fresh values of the same kinds.
    N: batch size (>= 4), C: classes (>= 3), T > 0 and alpha in [0, 1) of the step.
    Both models are small MLPs with batch norm; the teacher has trained-looking running
    statistics, so its output in train mode (batch statistics) differs from eval mode.
    """
    N, C, T, alpha = int(N), int(C), float(T), float(alpha)
    if N < 4 or C < 3 or not T > 0 or not 0 <= alpha < 1:
        raise ValueError(f"check_distill_step needs N >= 4, C >= 3, T > 0 and 0 <= alpha < 1, "
                         f"got N={N}, C={C}, T={T}, alpha={alpha}")
    g = torch.Generator().manual_seed(1 if seed is None else 31_000 + int(seed))

    def weights(model: nn.Module) -> dict:
        st = {}
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                w = torch.randn(v.shape, generator=g) / math.sqrt(max(1, v.shape[-1])) * 1.5
                if k.endswith("running_var"):
                    w = 0.5 + torch.rand(v.shape, generator=g) * 2
                elif k.endswith("running_mean"):
                    w = torch.randn(v.shape, generator=g) * 0.5
                elif k.endswith(".weight") and v.dim() == 1:  # batch-norm scale
                    w = 1 + 0.3 * torch.randn(v.shape, generator=g)
                st[k] = w
            else:
                st[k] = v.clone()
        return st

    student = weights(_mlp(_D, _H_S, C))
    teacher = weights(_mlp(_D, _H_T, C))
    teacher["3.weight"] = teacher["3.weight"] * 3  # a confident teacher, as after training
    batches = []
    for _ in range(2):
        x = torch.randn(N, _D, generator=g) + 0.3
        batches.append((x, torch.randint(0, C, (N,), generator=g)))
    return {"student": student, "teacher": teacher, "C": C, "batches": batches, "T": T,
            "alpha": alpha, "lr": _LR}


def _build(inp) -> tuple:
    """A fresh student (train mode), teacher (train mode, as built) and SGD optimizer."""
    C = inp["C"]
    student, teacher = _mlp(_D, _H_S, C), _mlp(_D, _H_T, C)
    student.load_state_dict(inp["student"])
    teacher.load_state_dict(inp["teacher"])
    student.train()
    teacher.train()
    return student, teacher, torch.optim.SGD(student.parameters(), lr=inp["lr"])


def _state(model: nn.Module) -> dict:
    return {k: _p.tensor(v) for k, v in model.state_dict().items() if v.is_floating_point()}


def step_probe(fn, inp) -> dict:
    """Two calls of fn on a fresh student, teacher (both with batch norm) and SGD optimizer."""
    student, teacher, opt = _build(inp)
    steps = []
    for x, y in inp["batches"]:
        out, _ = _p.call(fn, student, teacher, x.clone(), y.clone(), opt, inp["T"], inp["alpha"])
        steps.append({"call": out, "student": _state(student), "student_training": student.training,
                      "teacher_training": teacher.training})
        if out.get("raised"):
            break
    grads = {k: (_p.tensor(p.grad) if p.grad is not None else {"kind": "none"})
             for k, p in teacher.named_parameters()}
    return {"steps": steps, "teacher": _state(teacher), "teacher_grads": grads}


def _reference_run(inp, variant: str = "right") -> list:
    """[(student state after the step, loss value)] for both steps, done right or as `variant`.

    variants: "right", "no_zero_grad" (gradients accumulate), "swapped" and "swapped_ce" (the
    loss, KL or soft-target cross-entropy form, with the teacher's and the student's logits
    exchanged and the student's side not detached).
    """
    student, teacher, opt = _build(inp)
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
            loss = reference(s_out, t_out, y, T, a)
        loss.backward()
        opt.step()
        out.append(({k: v.detach().clone() for k, v in student.state_dict().items()
                     if v.is_floating_point()}, float(loss.detach())))
    return out


def _states_close(got: dict, want: dict, keys=None) -> bool:
    keys = keys if keys is not None else list(want)
    for k in keys:
        if k not in got or got[k].get("kind") != "tensor":
            return False
        g = decode(got[k]).to(torch.float32)
        if g.shape != want[k].shape or not torch.allclose(g, want[k], **_PARAM_TOL):
            return False
    return True


def _max_diff(got: dict, want: dict, keys) -> tuple:
    worst = (0.0, "")
    for k in keys:
        g = decode(got[k]).to(torch.float32)
        d = (g - want[k]).abs().max().item() if g.shape == want[k].shape else float("inf")
        worst = max(worst, (d, k))
    return worst


def _loss_number(check_out: dict, k: int) -> float:
    """The returned loss as a float; fail if it is not a Python float."""
    v = check_out["value"]
    if v.get("kind") == "tensor":
        if v.get("requires_grad"):
            fail(STEP, f"step {k}: the loss is returned as a tensor that still holds the autograd "
                       "graph (requires_grad=True)",
                 "return loss.item(): a Python float. A tensor with its graph keeps every "
                 "activation of the step alive, so a loop that collects the losses runs out of memory")
        fail(STEP, f"step {k}: the loss is returned as a tensor of shape {tuple(v['shape'])}, "
                   "expected a Python float", "return loss.item()")
    if v.get("kind") != "number" or v.get("type") != "float":
        fail(STEP, f"step {k}: expected the loss as a Python float, got {type_name(v)}",
             "compute the loss, do the update, and return loss.item()")
    return float(v["value"])


def step_verdict(data, inp) -> str:
    """Check distill_step(student, teacher, x (N, ...), y (N,), optimizer, T, alpha) -> float.

    One distillation step: teacher in eval mode and without gradient, both forward passes,
    kd_loss(student_logits, teacher_logits, y, T, alpha), zero_grad, backward, step; the
    loss returned as a Python float. Two calls must equal two reference steps.
    """
    T, a = inp["T"], inp["alpha"]
    ref = _reference_run(inp)
    init = {k: v.to(torch.float32) for k, v in inp["student"].items() if v.is_floating_point()}
    params = [k for k in init if not k.split(".")[-1].startswith("running")]
    stats = [k for k in init if k not in params]
    steps = data["steps"]
    for k, st in enumerate(steps, 1):
        out = st["call"]
        r = out.get("raised")
        if r and ("does not require grad" in r.get("message", "")
                  or "does not have a grad_fn" in r.get("message", "")):
            fail(STEP, f"step {k}: backward() raised {r['type']}: {r['message']}: the loss does not "
                       "depend on the student's weights",
                 "compute the student's logits with gradients on (not under torch.no_grad(), "
                 "not detached) and pass them FIRST: kd_loss(student_logits, teacher_logits, y, "
                 "T, alpha). If you swapped the two, the student's logits are the ones your "
                 "kd_loss detaches")
        raised(STEP, out)
        unchanged(STEP, out, ["student", "teacher", "x", "y", "optimizer"])
        _loss_number(out, k)
        if not st["student_training"]:
            fail(STEP, f"step {k}: the student was left in eval mode, so its batch norm used "
                       "running statistics and did not update them while training",
                 "call student.train() in the step (and teacher.eval() for the teacher only)")
    t_state = data["teacher"]
    moved = [k for k in inp["teacher"] if inp["teacher"][k].is_floating_point()
             and k.split(".")[-1].startswith("running")
             and not _states_close(t_state, {k: inp["teacher"][k].to(torch.float32)})]
    grads = [k for k, g in data["teacher_grads"].items()
             if g.get("kind") == "tensor" and decode(g).abs().max().item() > 0]
    if grads:
        fail(STEP, f"gradients reached the teacher: after two steps its parameters "
                   f"{', '.join(grads[:3])} have a non-zero .grad",
             "run the teacher under torch.no_grad() (or detach its logits): it is a fixed "
             "target, not a learner, and its backward pass wastes time and memory")
    if moved:
        fail(STEP, f"the teacher was run in train mode: its batch-norm running statistics "
                   f"({', '.join(moved[:2])}) changed, and its outputs used the batch's statistics",
             "call teacher.eval() before its forward pass: soft targets come from the teacher "
             "as it is evaluated, and the teacher must not change")
    t_params = [k for k in inp["teacher"] if k not in moved and inp["teacher"][k].is_floating_point()]
    if not _states_close(t_state, {k: inp["teacher"][k].to(torch.float32) for k in t_params}):
        fail(STEP, "the teacher's weights changed during the step",
             "only the student learns: the optimizer holds the student's parameters; do not "
             "step or modify the teacher")
    if len(steps) < 2:
        fail(STEP, "the second step did not run", "call the function twice in a row to test it")
    s1 = steps[0]["student"]
    loss1 = _loss_number(steps[0]["call"], 1)
    if not _states_close(s1, ref[0][0], params):
        if _states_close(s1, init, params):
            fail(STEP, "step 1 did not change the student's weights",
                 "call optimizer.step() after loss.backward(), and optimizer.zero_grad() "
                 "before the backward pass, not between backward() and step()")
        if any(_states_close(s1, _reference_run(inp, v)[0][0], params)
               for v in ("swapped", "swapped_ce")):
            fail(STEP, "the student's update is the one of the loss with the teacher and the "
                       "student swapped",
                 "kd_loss(student_logits, teacher_logits, y, T, alpha): the student's logits "
                 "come first, the teacher's soft targets are the target")
        want_loss = ref[0][1]
        ce_loss = want_loss + float(teacher_entropy_term(_teacher_out(inp, 0), T, a))
        if not (math.isclose(loss1, want_loss, rel_tol=1e-4, abs_tol=1e-5)
                or math.isclose(loss1, ce_loss, rel_tol=1e-4, abs_tol=1e-5)):
            fail(STEP, f"step 1: your step's loss is {loss1:.6g}, expected {want_loss:.6g} "
                       f"(kd_loss of the student's and the eval-mode teacher's logits, T={T:g}, "
                       f"alpha={a:g}), and the update differs accordingly",
                 "your step uses a loss that is not the distillation loss: make check_kd_loss "
                 "pass first, then call kd_loss(student_logits, teacher_logits, y, T, alpha) "
                 "with the arguments in this order")
        d, key = _max_diff(s1, ref[0][0], params)
        fail(STEP, f"step 1: the loss is right but the student's weights after the step differ "
                   f"from a reference step (max abs difference {d:.3g} in {key})",
             "one forward pass of each model, then optimizer.zero_grad(), loss.backward(), "
             "optimizer.step() (exactly once each)")
    if not _states_close(s1, ref[0][0], stats):
        fail(STEP, "step 1: the student's batch-norm running statistics are not those of one "
                   "forward pass in train mode",
             "run the student exactly once per step, in train mode")
    s2 = steps[1]["student"]
    if not _states_close(s2, ref[1][0], params):
        if _states_close(s2, _reference_run(inp, "no_zero_grad")[1][0], params):
            fail(STEP, "step 2: the gradients of step 1 were added to those of step 2: "
                       "optimizer.zero_grad() is missing",
                 "backward() accumulates into .grad; call optimizer.zero_grad() in every step "
                 "before loss.backward()")
        if _states_close(s2, s1, params):
            fail(STEP, "step 2 did not change the student's weights",
                 "every call must do one update: optimizer.step() after loss.backward()")
        d, key = _max_diff(s2, ref[1][0], params)
        fail(STEP, f"step 2: the student's weights differ from two reference steps (max abs "
                   f"difference {d:.3g} in {key})",
             "each call: zero_grad, both forward passes, kd_loss, backward, step")
    for k in (1, 2):
        got = _loss_number(steps[k - 1]["call"], k)
        want = ref[k - 1][1]
        ce = want + float(teacher_entropy_term(_teacher_out(inp, k - 1), T, a))
        if not (math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-5)
                or math.isclose(got, ce, rel_tol=1e-4, abs_tol=1e-5)):
            fail(STEP, f"step {k}: the update is right but the returned loss is {got:.6g}, "
                       f"expected {want:.6g}",
                 "return the loss of this step's forward pass: loss.item()")
    return (f"two steps equal the reference (teacher in eval mode without gradient, student "
            f"updated once per call, SGD lr={inp['lr']}), loss returned as a float")


def _teacher_out(inp, k: int) -> torch.Tensor:
    """The eval-mode teacher's logits on batch k."""
    _, teacher, _ = _build(inp)
    with torch.no_grad():
        return teacher.eval()(inp["batches"][k][0])


check_distill_step = register("distill_step", step_inputs, step_probe, step_verdict)
