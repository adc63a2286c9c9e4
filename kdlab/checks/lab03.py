"""Checks of Lab 03 (response-based KD): the distillation loss and one distillation step.

``check_kd_loss`` compares the gradients of the student's loss with the answer key at several
(T, alpha) settings (the KL and the soft-target cross-entropy forms both pass) and names a
mistake by its gradient. ``check_distill_step`` runs two steps on small models with batch norm,
the student handed over in eval mode, records the states, modes and grad mode of the forward
passes, and compares them with two reference steps of the key.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from . import _probe as _p
from ._common import (Mistake, close, recorded, fail, name_mistake,
                      paired, raised, rejects, type_name, unchanged)
from ._registry import Check
from ._scalar import SCALAR_LOSS_PARTS, ScalarLoss

# ------------------------------------------------------------------ kd_loss

_MSE = ("the soft term is a squared error between probabilities, not the KL divergence",
        "use KL(p_teacher || p_student), e.g. F.kl_div(F.log_softmax(student_logits / T, dim=1), "
        "F.softmax(teacher_logits / T, dim=1), reduction='batchmean')")
KD_LOSS_MISTAKES = [
    Mistake("no_T2", "the soft term is missing its factor T**2",
            "softening by T shrinks the soft gradients by 1/T**2; multiply the KL term by T**2 so "
            "that changing T does not change the balance between the two terms (Hinton et al. §2)"),
    Mistake("reversed", "the KL divergence is reversed: you computed KL(student || teacher)",
            "the teacher's distribution is the target: KL(p_teacher || p_student). "
            "F.kl_div(input, target) computes KL(target || input), so pass the student's "
            "log-probabilities as input and the teacher's as target"),
    Mistake("teacher_not_softened", "the teacher's logits are not divided by T (its soft "
                                    "targets are not softened)",
            "soft targets are softmax(teacher_logits / T)"),
    Mistake("student_not_softened", "the student's logits are not divided by T in the soft term",
            "match softmax(student_logits / T) to the teacher's softmax(teacher_logits / T)"),
    Mistake("alpha_on_hard", "alpha weights the wrong term: here alpha multiplies the soft "
                             "(teacher) term and (1 - alpha) the hard-label cross-entropy",
            "swap the weights: (1 - alpha) * hard + alpha * T**2 * soft (some libraries use the "
            "opposite convention; this lab follows the lecture's)"),
    Mistake("mean_over_classes", "the soft term is averaged over the classes as well as the "
                                 "batch (reduction='mean'), so it is C times too small",
            "use F.kl_div(..., reduction='batchmean'): sum over classes, mean over the batch"),
    Mistake("sum_over_batch", "the loss is summed over the batch instead of averaged, so it "
                              "grows with the batch size",
            "average over the examples: F.kl_div(..., reduction='batchmean') and "
            "F.cross_entropy's default reduction='mean'"),
    Mistake("sum_over_batch_soft", "the soft term is summed over the batch instead of averaged "
                                   "(reduction='sum'), so it grows with the batch size",
            "use F.kl_div(..., reduction='batchmean')"),
    Mistake("sum_over_batch_hard", "the hard-label cross-entropy is summed over the batch "
                                   "instead of averaged, so it grows with the batch size",
            "keep F.cross_entropy's default reduction='mean'"),
    Mistake("hard_ce_softened", "the hard-label cross-entropy is computed on the softened "
                                "student logits (student_logits / T)",
            "the hard term is the ordinary cross-entropy at T = 1: "
            "F.cross_entropy(student_logits, labels)"),
    Mistake("kl_div_log_target", "F.kl_div received the teacher's LOG-probabilities as target "
                                 "without log_target=True",
            "pass F.softmax(teacher_logits / T, dim=1) as target, or keep log_softmax and add "
            "log_target=True"),
    Mistake("kl_div_probs_input", "F.kl_div received the student's probabilities as input; it "
                                  "expects log-probabilities",
            "use F.log_softmax(student_logits / T, dim=1) as the first argument of F.kl_div"),
] + [Mistake(f"mse_probs_{k}", *_MSE) for k in ("mean", "mean_no_T2", "sum_classes",
                                                  "sum_classes_no_T2")]
FORMULA = ("loss = (1 - alpha) * F.cross_entropy(student_logits, labels) + alpha * T**2 * "
           "KL(softmax(teacher_logits / T) || softmax(student_logits / T)), averaged over the batch")
GRAD_TOL = dict(atol=1e-6, rtol=1e-3)  # gradients: a looser relative tolerance
VALUE_TOL = dict(atol=1e-5, rtol=1e-4)


def kd_loss_inputs(seed=None, N: int = 6, C: int = 5) -> dict:
    """Inputs of the kd_loss check: student (N, C) and teacher (N, C) logits, labels (N,).

    seed None: the notebook's fixed inputs; an int: fresh values of the same kinds. N >= 2,
    C >= 3: batch size and classes. Also: the (T, alpha) settings (the first n_diagnostic tell
    every named mistake apart; then T = 1, soft only, hard only), a confident teacher, bad Ts.
    """
    N, C, g = int(N), int(C), check_kd_loss.rng(seed)
    if N < 2 or C < 3:
        raise ValueError(f"check_kd_loss needs N >= 2 examples and C >= 3 classes, got N={N}, C={C}")
    s, t = torch.randn(N, C, generator=g) * 2, torch.randn(N, C, generator=g) * 3
    y = torch.randint(0, C, (N,), generator=g)
    t_conf = torch.zeros(N, C)  # a very confident teacher: its softmax underflows at T = 1
    t_conf[torch.arange(N), y] = 120.0
    return {"s": s, "t": t, "y": y, "n_diagnostic": 2,
            "settings": [(4.0, 0.7), (2.0, 0.25), (1.0, 0.5), (20.0, 1.0), (3.0, 0.0)],
            "s_conf": s * 20, "t_conf": t_conf, "conf_setting": (1.0, 0.5), "bad_Ts": (0.0, -2.0)}


def kd_loss_probe(fn, inp) -> dict:
    """Call fn at every (T, alpha) setting, on confident logits and with bad temperatures."""
    s, t, y = inp["s"], inp["t"], inp["y"]
    return {"settings": [_p.call_with_grads(fn, s, t, y, T, a) for T, a in inp["settings"]],
            "confident": _p.call_with_grads(fn, inp["s_conf"], inp["t_conf"], y, *inp["conf_setting"]),
            "bad": [_p.call(fn, s.clone(), t.clone(), y.clone(), T, 0.5)[0] for T in inp["bad_Ts"]]}


KD_LOSS = ScalarLoss(("student_logits", "teacher_logits", "labels"),
                     "sum over the classes, then average over the batch",
                     per_example="average over the batch (reduction='batchmean' for the KL term, "
                                 "the default 'mean' for the cross-entropy)")


def _outcome(check, out: dict, s: torch.Tensor) -> tuple:
    """(loss value, grad wrt student, grad wrt teacher or None) of a recorded call, or fail."""
    return KD_LOSS.outcome(check, out, f"for logits of shape {tuple(s.shape)}",
                           f"{tuple(s.shape)}, {tuple(s.shape)}, ({s.shape[0]},)", batch=s.shape[0])


def kd_loss_verdict(check, data, inp, key) -> str:
    """Check kd_loss(student_logits (N, C), teacher_logits (N, C), labels (N,), T, alpha) -> ().

    The gradient with respect to the student's logits must match the distillation loss at
    every (T, alpha) setting; the teacher gets no gradient; the value is the KL form or the
    soft-target cross-entropy form; confident logits stay finite; T <= 0 raises ValueError.
    Parts (``SCALAR_LOSS_PARTS``): gradient, teacher, value, stable, errors.
    """
    title = check.title
    rows = [(T, a, k, *_outcome(check, out, inp["s"]))
            for (T, a), k, out in paired(inp["settings"], key["settings"], data["settings"])]
    with check.part("gradient"):
        diag = torch.stack([gs for *_, gs, _ in rows[:inp["n_diagnostic"]]])
        KD_LOSS.named(check, diag, key["diagnostic"], key["mistakes"], **GRAD_TOL)
        for T, a, k, _, gs, _ in rows:
            KD_LOSS.gradient(check, gs, k["grad"], f"at T={T}, alpha={a}: the gradient of your "
                             "loss with respect to student_logits", f"{FORMULA}. alpha=0 means "
                             "labels only, alpha=1 teacher only: try one term at a time", **GRAD_TOL)
    with check.part("teacher"):
        for T, a, k, val, _, gt in rows:
            KD_LOSS.no_teacher_gradient(check, gt, "teacher_logits received a gradient: the "
                                        "teacher is a target, not a learner", "use "
                                        "teacher_logits.detach() (or compute its softmax under "
                                        "torch.no_grad())")
    with check.part("value"):
        for T, a, k, val, _, gt in rows:
            KD_LOSS.value(check, val, (k["kl"], k["ce"]), f"the gradient is right but the loss "
                          f"value is not, at T={T}, alpha={a}: got {val.item():.5g}, expected "
                          f"{k['kl'].item():.5g} (KL form) or {k['ce'].item():.5g} (soft-target "
                          "cross-entropy form)", "remove any constant you added to the loss",
                          **VALUE_TOL)
    with check.part("stable"):
        s_conf = inp["s_conf"]
        val, gs, _ = _outcome(check, data["confident"], s_conf)
        KD_LOSS.confident(
            check, val, gs, (f"the loss or its gradient is nan/inf for confident logits (teacher "
                             f"logits differing by 120, student logits up to "
                             f"{s_conf.abs().max().item():.0f}, T={inp['conf_setting'][0]:g}): loss "
                             f"{val.flatten()[:1].tolist()}",
                             "compute log-probabilities with F.log_softmax, not torch.log(F.softmax("
                             "...)), and let F.kl_div handle 0 * log 0 (or write the soft term as a "
                             "cross-entropy)"),
            key["confident"], ("the gradient is wrong for confident logits (teacher logits differing "
                               "by 120, T=1)", "compute log-probabilities with F.log_softmax rather "
                               "than log(softmax) or clamping"), **GRAD_TOL)
    with check.part("errors"):
        rejects(title, inp["bad_Ts"], data["bad"], "T", "T <= 0", "temperature T must be > 0")
    return (f"gradients match the distillation loss at {len(inp['settings'])} (T, alpha) "
            "settings, the teacher gets no gradient, T <= 0 is rejected")


check_kd_loss = Check("kd_loss", kd_loss_inputs, kd_loss_probe, kd_loss_verdict, KD_LOSS_MISTAKES,
                      parts=SCALAR_LOSS_PARTS)


# ------------------------------------------------------------------ distill_step

DISTILL_STEP_MISTAKES = [
    Mistake("no_update", "your step did not change the student's weights",
            "call optimizer.step() after loss.backward(), and optimizer.zero_grad() before the "
            "backward pass, not between backward() and step()"),
    Mistake("swapped", "the student's update is the one of the loss with the teacher and the "
                       "student swapped",
            "kd_loss(student_logits, teacher_logits, y, T, alpha): the student's logits come "
            "first, the teacher's soft targets are the target"),
    Mistake("no_zero_grad", "the gradients of step 1 were added to those of step 2: "
                            "optimizer.zero_grad() is missing",
            "backward() accumulates into .grad; call optimizer.zero_grad() in every step "
            "before loss.backward()"),
]
_D, _H_S, _H_T = 12, 16, 24  # input features, student and teacher hidden units
STATE_TOL = dict(atol=2e-5, rtol=1e-4)


def _mlp(d: int, h: int, c: int) -> nn.Module:
    """A small MLP with batch norm: x (N, d) -> logits (N, c); its output depends on the mode."""
    return nn.Sequential(nn.Linear(d, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Linear(h, c))


def distill_step_inputs(seed=None, N: int = 16, C: int = 5, T: float = 4.0,
                        alpha: float = 0.7) -> dict:
    """Inputs of the distill_step check: two batches, the weights of a student and a teacher.

    seed None: the notebook's fixed inputs; an int: fresh values of the same kinds. N >= 4,
    C >= 3, T > 0 and alpha in [0, 1): the step's. Returns: student and teacher (state dicts of
    MLPs with batch norm; the teacher's running statistics look trained, so its output in train
    mode differs), batches [(x (N, 12), y (N,))] * 2, C, T, alpha and SGD's lr.
    """
    N, C, T, alpha, g = int(N), int(C), float(T), float(alpha), check_distill_step.rng(seed)
    if N < 4 or C < 3 or not T > 0 or not 0 <= alpha < 1:
        raise ValueError(f"check_distill_step needs N >= 4, C >= 3, T > 0 and 0 <= alpha < 1, "
                         f"got N={N}, C={C}, T={T}, alpha={alpha}")

    def weights(model: nn.Module) -> dict:
        r = {"running_var": lambda v: 0.5 + torch.rand(v.shape, generator=g) * 2,
             "running_mean": lambda v: torch.randn(v.shape, generator=g) * 0.5,
             "weight": lambda v: (1 + 0.3 * torch.randn(v.shape, generator=g) if v.dim() == 1
                                  else torch.randn(v.shape, generator=g) / math.sqrt(v.shape[-1]) * 1.5),
             "bias": lambda v: torch.randn(v.shape, generator=g) / math.sqrt(v.shape[-1]) * 1.5}
        return {k: r[k.split(".")[-1]](v) if v.is_floating_point() else v.clone()
                for k, v in model.state_dict().items()}

    student, teacher = weights(_mlp(_D, _H_S, C)), weights(_mlp(_D, _H_T, C))
    teacher["3.weight"] = teacher["3.weight"] * 3  # a confident teacher, as after training
    batches = [(torch.randn(N, _D, generator=g) + 0.3, torch.randint(0, C, (N,), generator=g))
               for _ in range(2)]
    return {"student": student, "teacher": teacher, "C": C, "batches": batches, "T": T,
            "alpha": alpha, "lr": 0.1}  # plain SGD: the update shows the gradient itself


def step_models(inp) -> tuple:
    """Fresh (student, teacher, SGD over the student) with the inputs' weights, in train mode."""
    student, teacher = _mlp(_D, _H_S, inp["C"]), _mlp(_D, _H_T, inp["C"])
    student.load_state_dict(inp["student"])
    teacher.load_state_dict(inp["teacher"])
    return student, teacher, torch.optim.SGD(student.parameters(), lr=inp["lr"])


def step_entries(state: dict) -> tuple:
    """The names of a model state's (parameters, batch-norm running statistics)."""
    floats = [k for k, v in state.items() if v.is_floating_point()]
    return [k for k in floats if "running" not in k], [k for k in floats if "running" in k]


def _state(model: nn.Module) -> dict:
    return {k: _p.tensor(v) for k, v in model.state_dict().items() if v.is_floating_point()}


def distill_step_probe(fn, inp) -> dict:
    """Call fn twice on a fresh student (in eval mode), teacher (train mode) and SGD; record.

    Recorded per step: the call, the student's state, its batch norm's mode and the grad mode
    of the teacher's forward passes (hooks); then the teacher's state and .grad.
    """
    student, teacher, opt = step_models(inp)
    student.eval()  # as after evaluate(): the step must call student.train()
    seen = {"student_modes": [], "teacher_grad_modes": []}
    student[1].register_forward_pre_hook(lambda m, a: seen["student_modes"].append(m.training))
    teacher[0].register_forward_pre_hook(
        lambda m, a: seen["teacher_grad_modes"].append(torch.is_grad_enabled()))
    steps = []
    for x, y in inp["batches"]:
        for v in seen.values():
            v.clear()
        out, _ = _p.call(fn, student, teacher, x.clone(), y.clone(), opt, inp["T"], inp["alpha"])
        steps.append({"call": out, "student": _state(student), **{k: list(v) for k, v in seen.items()}})
        if out.get("raised"):
            break
    grads = {k: (_p.tensor(p.grad) if p.grad is not None else {"kind": "none"})
             for k, p in teacher.named_parameters()}
    return {"steps": steps, "teacher": _state(teacher), "teacher_grads": grads}


def _vec(state: dict, names, like: dict):
    """The entries `names` of a recorded state as one float32 vector (None if malformed).

    like: the inputs' state; an entry missing or of another shape than there gives None.
    """
    parts = [recorded(state[k]) if isinstance(state.get(k), dict) and state[k].get("kind") == "tensor"
             else None for k in names]
    if any(v is None or tuple(v.shape) != tuple(like[k].shape) for v, k in zip(parts, names)):
        return None
    return torch.cat([v.to(torch.float32).flatten() for v in parts])


def _worst(got, want, names, like) -> str:
    """'max abs difference d in <entry>' between a recorded state vector and the key's."""
    if got is None:
        return "an entry is missing or has another shape"
    d = (got - want).abs().split([like[k].numel() for k in names])
    return "max abs difference {:.3g} in {}".format(*max((c.max().item(), k) for c, k in zip(d, names)))


def _loss_number(title: str, out: dict, k: int) -> float:
    """The returned loss as a float; fail if it is not a Python float."""
    v = out["value"]
    if v.get("kind") == "tensor" and v.get("requires_grad"):
        fail(title, f"step {k}: the loss is returned as a tensor that still holds the autograd "
                    "graph (requires_grad=True)",
             "return loss.item(): a Python float. A tensor with its graph keeps every activation "
             "of the step alive, so a loop that collects the losses runs out of memory")
    if v.get("kind") == "tensor":
        fail(title, f"step {k}: the loss is returned as a tensor of shape {tuple(v['shape'])}, "
                    "expected a Python float", "return loss.item()")
    if v.get("kind") != "number" or v.get("type") != "float":
        fail(title, f"step {k}: expected the loss as a Python float, got {type_name(v)}",
             "compute the loss, do the update, and return loss.item()")
    return float(v["value"])


def distill_step_verdict(check, data, inp, key) -> str:
    """Check distill_step(student, teacher, x (N, ...), y (N,), optimizer, T, alpha) -> float.

    One distillation step: the student switched to train mode, the teacher in eval mode and
    run under torch.no_grad(), both forward passes, kd_loss(student_logits, teacher_logits,
    y, T, alpha), zero_grad, backward, step; the loss returned as a Python float. Two calls
    must equal two reference steps.
    """
    title, steps = check.title, data["steps"]
    for k, st in enumerate(steps, 1):
        out = st["call"]
        r = out.get("raised") or {}
        if "does not require grad" in r.get("message", "") or "does not have a grad_fn" in r.get("message", ""):
            fail(title, f"step {k}: backward() raised {r['type']}: {r['message']}: the loss does not "
                        "depend on the student's weights",
                 "compute the student's logits with gradients on (not under torch.no_grad(), not "
                 "detached) and pass them FIRST: kd_loss(student_logits, teacher_logits, y, T, "
                 "alpha). If you swapped the two, the student's logits are the ones your kd_loss detaches")
        raised(title, out)
        unchanged(title, out, ["student", "teacher", "x", "y", "optimizer"])
        _loss_number(title, out, k)
        if not all(st["student_modes"]):
            fail(title, f"step {k}: the student was left in eval mode during its forward pass: the "
                        "check hands it to your step in eval mode (as a notebook does after "
                        "evaluate()) and your step did not call student.train(), so its batch "
                        "norm used running statistics and did not update them while training",
                 "call student.train() at the start of every step (and teacher.eval() for the "
                 "teacher only)")
    t0, t1 = inp["teacher"], data["teacher"]
    moved = [k for k in step_entries(t0)[1] if not close(_vec(t1, [k], t0), t0[k], **STATE_TOL)]
    grads = [k for k, g in data["teacher_grads"].items()
             if g.get("kind") == "tensor" and recorded(g).abs().max().item() > 0]
    if grads:
        fail(title, f"gradients reached the teacher: after two steps its parameters "
                    f"{', '.join(grads[:3])} have a non-zero .grad",
             "run the teacher under torch.no_grad(): it is a fixed target, not a learner, and its "
             "backward pass wastes time and memory")
    if moved:
        fail(title, f"the teacher was run in train mode: its batch-norm running statistics "
                    f"({', '.join(moved[:2])}) changed, and its outputs used the batch's statistics",
             "call teacher.eval() before its forward pass: soft targets come from the teacher as "
             "it is evaluated, and the teacher must not change")
    for k, st in enumerate(steps, 1):
        if any(st["teacher_grad_modes"]):
            fail(title, f"step {k}: the teacher's forward pass ran with gradient tracking on: "
                        "autograd recorded its whole graph and kept every activation of the "
                        "teacher in memory for a backward pass that never comes (detaching its "
                        "logits afterwards does not undo that)",
                 "compute the teacher's logits under torch.no_grad(): with torch.no_grad(): "
                 "teacher_logits = teacher(x)")
    fixed = [k for k in sum(step_entries(t0), []) if k not in moved]
    if not close(_vec(t1, fixed, t0), torch.cat([t0[k].flatten() for k in fixed]), **STATE_TOL):
        fail(title, "the teacher's weights changed during the step", "only the student learns: the "
             "optimizer holds the student's parameters; do not step or modify the teacher")
    if len(steps) < 2:
        fail(title, "the second step did not run", "call the function twice in a row to test it")
    (params, stats), like, ref = step_entries(inp["student"]), inp["student"], key["steps"]
    s1, s2 = (_vec(st["student"], params, like) for st in steps[:2])
    losses = [_loss_number(title, st["call"], k) for k, st in enumerate(steps, 1)]
    right_loss = [any(math.isclose(got, r[f], rel_tol=1e-4, abs_tol=1e-5) for f in ("loss", "loss_ce"))
                  for got, r in paired(losses, ref)]
    if not close(s1, ref[0]["params"], **STATE_TOL):
        name_mistake(check, s1, key["step1_mistakes"], "step 1", **STATE_TOL)
        if not right_loss[0]:
            fail(title, f"step 1: your step's loss is {losses[0]:.6g}, expected {ref[0]['loss']:.6g} "
                        f"(kd_loss of the student's and the eval-mode teacher's logits, "
                        f"T={inp['T']:g}, alpha={inp['alpha']:g}), and the update differs accordingly",
                 "your step uses a loss that is not the distillation loss: make check_kd_loss pass "
                 "first, then call kd_loss(student_logits, teacher_logits, y, T, alpha) with the "
                 "arguments in this order")
        fail(title, f"step 1: the loss is right but the student's weights after the step differ "
                    f"from a reference step ({_worst(s1, ref[0]['params'], params, like)})",
             "one forward pass of each model, then optimizer.zero_grad(), loss.backward(), "
             "optimizer.step() (exactly once each)")
    if not close(_vec(steps[0]["student"], stats, like), ref[0]["stats"], **STATE_TOL):
        fail(title, "step 1: the student's batch-norm running statistics are not those of one "
                    "forward pass in train mode", "run the student exactly once per step, in train mode")
    if not close(s2, ref[1]["params"], **STATE_TOL):
        name_mistake(check, s2, key["step2_mistakes"], "step 2", **STATE_TOL)
        if close(s2, s1, **STATE_TOL):
            fail(title, "step 2 did not change the student's weights",
                 "every call must do one update: optimizer.step() after loss.backward()")
        fail(title, f"step 2: the student's weights differ from two reference steps "
                    f"({_worst(s2, ref[1]['params'], params, like)})",
             "each call: zero_grad, both forward passes, kd_loss, backward, step")
    for k, (got, r, ok) in enumerate(paired(losses, ref, right_loss), 1):
        if not ok:
            fail(title, f"step {k}: the update is right but the returned loss is {got:.6g}, "
                        f"expected {r['loss']:.6g}", "return the loss of this step's forward pass: loss.item()")
    return (f"two steps equal the reference (student switched to train mode, teacher in eval "
            f"mode under no_grad, one update per call, SGD lr={inp['lr']}), loss returned as a float")


check_distill_step = Check("distill_step", distill_step_inputs, distill_step_probe,
                              distill_step_verdict, DISTILL_STEP_MISTAKES)
