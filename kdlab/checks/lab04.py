"""Checks of Lab 04 (hint learning, FitNets): the hint regressor and the hint loss.

``check_hint_regressor(HintRegressor)`` builds the student's regressor for several
(student map, teacher map) shape pairs, one with a spatial mismatch, and checks the output
shape, that it has trainable parameters that a gradient reaches, and that it owns them (no
module of the teacher, nothing shared between two regressors).

``check_hint_loss(fn)`` calls ``fn(student_features, teacher_features, regressor)`` with a
fixed regressor and compares value and gradients with the mean squared error between the
regressed student map and the (detached) teacher map. Common mistakes are named.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._common import as_tensor, call, fail, passed, short

REG = "check_hint_regressor"
LOSS = "check_hint_loss"

# (student_channels, teacher_channels, hint_size, student map shape) -> output (N, Ct, *hint_size)
REGRESSOR_CASES = [
    (16, 48, (7, 7), (2, 16, 14, 14)),   # the lab's pair: ThinDeepCNN stage2 -> Teacher layer2
    (8, 24, (14, 14), (2, 8, 14, 14)),   # same size, only the channels differ
    (32, 96, (4, 4), (3, 32, 7, 7)),     # 7 -> 4: not an integer ratio
    (6, 4, (5, 5), (1, 6, 5, 5)),        # fewer teacher channels than student channels
]


# ------------------------------------------------------------------ HintRegressor

def _build(cls, cs: int, ct: int, size):
    try:
        return cls(cs, ct, hint_size=size)
    except NotImplementedError:
        fail(REG, "not implemented yet",
             "write your code in the exercise cell above and remove `raise NotImplementedError`")
    except TypeError as e:
        fail(REG, f"HintRegressor({cs}, {ct}, hint_size={size}) raised TypeError: {e}",
             "keep the signature HintRegressor(student_channels, teacher_channels, hint_size=None)")
    except Exception as e:  # noqa: BLE001 - report any crash of the student's constructor
        fail(REG, f"HintRegressor({cs}, {ct}, hint_size={size}) raised {type(e).__name__}: {e}",
             "run the exercise cell again and read the traceback of a small example")


def check_hint_regressor(cls) -> None:
    """Check the class HintRegressor(student_channels, teacher_channels, hint_size=None).

    An instance maps a student map (N, Cs, Hs, Ws) to (N, Ct, *hint_size) (or (N, Ct, Hs, Ws)
    when hint_size is None) with trainable parameters of its own.
    """
    if isinstance(cls, nn.Module):
        fail(REG, "got an instance of a module; expected the class itself",
             "pass the class: kd.checks.check_hint_regressor(HintRegressor)")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        fail(REG, f"expected a subclass of torch.nn.Module, got {cls!r}",
             "define `class HintRegressor(nn.Module)` with __init__ and forward")
    from kdlab.models import BasicBlock, Teacher

    g = torch.Generator().manual_seed(0)
    for cs, ct, size, in_shape in REGRESSOR_CASES + [(5, 7, None, (2, 5, 9, 9))]:
        torch.manual_seed(0)
        reg = _build(cls, cs, ct, size)
        where = f"HintRegressor({cs}, {ct}, hint_size={size})"
        for name, m in reg.named_modules():
            if isinstance(m, (Teacher, BasicBlock)):
                fail(REG, f"{where} contains a module of the teacher ({name or 'itself'}: "
                          f"{type(m).__name__})",
                     "the regressor is a new, small layer of the student (e.g. one nn.Conv2d); "
                     "the teacher stays frozen and outside it")
        params = [p for p in reg.parameters() if p.requires_grad]
        if not params:
            fail(REG, f"{where} has no trainable parameters "
                      f"({sum(p.numel() for p in reg.parameters())} frozen ones)",
                 "the regressor must learn the mapping: use a layer such as "
                 "nn.Conv2d(student_channels, teacher_channels, 3, padding=1), and do not set "
                 "requires_grad=False or register the weights as buffers")
        x = torch.randn(in_shape, generator=g).abs().requires_grad_(True)
        out = as_tensor(REG, call(REG, reg, x), f"{where}(x)")
        want = (in_shape[0], ct) + (tuple(size) if size is not None else tuple(in_shape[2:]))
        if tuple(out.shape) != want:
            hint = ("the channels come from the conv layer; the spatial size must match the "
                    "teacher's hint: pool the result to hint_size (F.adaptive_avg_pool2d) or "
                    "use a strided convolution, and leave the size alone when hint_size is None")
            fail(REG, f"{where} maps a student map of shape {tuple(in_shape)} to "
                      f"{tuple(out.shape)}, expected {want}", hint)
        if not torch.isfinite(out).all():
            fail(REG, f"{where} returned nan or inf: {short(out)}", "look for a division by zero")
        grads = torch.autograd.grad(out.square().mean(), params + [x], allow_unused=True)
        if grads[-1] is None or not grads[-1].abs().sum() > 0:
            fail(REG, f"the output of {where} does not depend on its input",
                 "apply the layers to x in forward and do not detach it")
        if all(gr is None or not gr.abs().sum() > 0 for gr in grads[:-1]):
            fail(REG, f"no gradient reaches the parameters of {where}",
                 "use the trainable layers in forward (not only in __init__), without torch.no_grad()")
    # two regressors must not share parameters (e.g. a layer taken from the teacher or a global)
    a, b = _build(cls, 16, 48, (7, 7)), _build(cls, 16, 48, (7, 7))
    ptrs = {p.data_ptr() for p in a.parameters()}
    shared = [n for n, p in b.named_parameters() if p.data_ptr() in ptrs]
    if shared:
        fail(REG, f"two HintRegressor instances share the parameters {shared[:3]}: the regressor "
                  "reuses a module created outside it (for example a layer of the teacher)",
             "create fresh layers inside __init__; training the regressor must never change "
             "the teacher, and each student needs its own regressor")
    n = sum(p.numel() for p in a.parameters() if p.requires_grad)
    passed(REG, f"output shapes right for {len(REGRESSOR_CASES) + 1} shape pairs, "
                f"{n} trainable parameters of its own for 16 -> 48 channels")


# ------------------------------------------------------------------ hint_loss

def _fixed_regressors():
    """Two fixed regressors: 4 -> 4 channels same size, and 6 -> 10 channels 8x8 -> 4x4."""
    torch.manual_seed(1234)
    same = nn.Conv2d(4, 4, 3, padding=1)
    down = nn.Sequential(nn.Conv2d(6, 10, 3, padding=1), nn.AdaptiveAvgPool2d(4))
    return same, down


def hint_inputs():
    """Fixed features: case A student/teacher (3, 4, 5, 5); case B (2, 6, 8, 8) -> (2, 10, 4, 4)."""
    g = torch.Generator().manual_seed(7)
    a = (torch.randn(3, 4, 5, 5, generator=g), torch.randn(3, 4, 5, 5, generator=g).relu())
    b = (torch.randn(2, 6, 8, 8, generator=g), torch.randn(2, 10, 4, 4, generator=g).relu())
    return a, b


def reference(s, t, regressor):
    """The right loss: mean over all elements of (regressor(s) - t.detach())^2."""
    return F.mse_loss(regressor(s), t.detach())


def _sq(s, t, r):
    return (r(s) - t.detach()) ** 2


# name -> (loss(s, t, regressor), what is wrong, hint); told apart on the same-shape case A
MISTAKES = {
    "unregressed": (
        lambda s, t, r: F.mse_loss(s, t),
        "the loss compares the student's features with the teacher's directly: the regressor "
        "is not applied",
        "compare regressor(student_features) with teacher_features; without the regressor the "
        "shapes generally differ and the student would have to copy the teacher's channels"),
    "reversed": (
        lambda s, t, r: F.mse_loss(r(t), s),
        "the regressor is applied to the teacher's features and compared with the student's: "
        "wrong direction",
        "the regressor maps the STUDENT's map to the teacher's shape: "
        "F.mse_loss(regressor(student_features), teacher_features.detach())"),
    "sum": (
        lambda s, t, r: _sq(s, t, r).sum(),
        "the squared errors are summed instead of averaged (reduction='sum'), so the loss grows "
        "with the batch and the map size",
        "average over every element: F.mse_loss's default reduction='mean'"),
    "sum_per_example": (
        lambda s, t, r: _sq(s, t, r).sum() / s.shape[0],
        "the squared errors are summed over channels and positions (averaged only over the "
        "batch), so the loss grows with the size of the map",
        "average over every element: F.mse_loss(regressed, target) with its default reduction"),
    "half": (
        lambda s, t, r: 0.5 * _sq(s, t, r).mean(),
        "the loss is half the mean squared error",
        "this lab uses the plain mean squared error, F.mse_loss, without the factor 1/2"),
    "norm": (
        lambda s, t, r: (r(s) - t.detach()).norm(),
        "the loss is the Euclidean norm of the difference (a square root), not the mean "
        "squared error",
        "square the differences and average: F.mse_loss(regressor(student_features), teacher_features)"),
}


def _run(fn, s, t, regressor, what: str):
    """Call fn on fresh leaves; return (value, grad wrt s, grad wrt t, grads wrt regressor)."""
    s = s.clone().requires_grad_(True)
    t = t.clone().requires_grad_(True)  # the teacher must not receive a gradient
    params = list(regressor.parameters())
    out = as_tensor(LOSS, call(LOSS, fn, s, t, regressor), "hint_loss(...)")
    if out.dim() != 0:
        fail(LOSS, f"hint_loss returned shape {tuple(out.shape)} for {what}; expected a scalar, "
                   "shape ()", "reduce with the mean over every element (F.mse_loss's default)")
    if not out.requires_grad:
        fail(LOSS, "the loss does not depend on the student's features (no gradient flows back)",
             "do not call .detach(), .item() or torch.no_grad() on the student's side")
    grads = torch.autograd.grad(out, [s, t] + params, allow_unused=True)
    return out.detach(), grads[0], grads[1], grads[2:]


def _nonzero(gr) -> bool:
    return gr is not None and bool(gr.abs().sum() > 0)


def check_hint_loss(fn) -> None:
    """Check hint_loss(student_features (N, Cs, H, W), teacher_features (N, Ct, h, w), regressor) -> ()."""
    same, down = _fixed_regressors()
    (sa, ta), (sb, tb) = hint_inputs()
    # case A: same shapes, so the un-regressed and reversed versions also run; name the mistake
    got, _, _, _ = _run(fn, sa, ta, same, "student and teacher maps (3, 4, 5, 5)")
    with torch.no_grad():
        want = reference(sa, ta, same)
        if not torch.allclose(got, want, rtol=1e-4, atol=1e-6):
            for loss_fn, what, hint in MISTAKES.values():
                if torch.allclose(got, loss_fn(sa, ta, same), rtol=1e-4, atol=1e-6):
                    fail(LOSS, what, hint)
    cmp_hint = ("hint_loss = F.mse_loss(regressor(student_features), teacher_features.detach()), "
                "the mean over every element")
    if not torch.allclose(got, want, rtol=1e-4, atol=1e-6):
        fail(LOSS, f"wrong value for student and teacher maps (3, 4, 5, 5): got {got.item():.6g}, "
                   f"expected {want.item():.6g}", cmp_hint)
    # case B: channels and size differ, as in the lab; check value and where gradients go
    got, gs, gt, gp = _run(fn, sb, tb, down, "student map (2, 6, 8, 8), teacher map (2, 10, 4, 4)")
    want = reference(sb, tb, down).detach()
    if not torch.allclose(got, want, rtol=1e-4, atol=1e-6):
        fail(LOSS, f"wrong value for a student map (2, 6, 8, 8) regressed to the teacher's "
                   f"(2, 10, 4, 4): got {got.item():.6g}, expected {want.item():.6g}", cmp_hint)
    if _nonzero(gt):
        fail(LOSS, "a gradient flows into the teacher's features: the teacher is not detached",
             "the hint is a fixed target: use teacher_features.detach() (otherwise a live teacher "
             "would be trained towards the student)")
    if not _nonzero(gs):
        fail(LOSS, "no gradient reaches the student's features",
             "do not detach student_features; the hint must train the student's lower layers")
    if not any(_nonzero(p) for p in gp):
        fail(LOSS, "no gradient reaches the regressor's parameters",
             "call the regressor on the student's features inside the loss, without torch.no_grad()")
    passed(LOSS, f"mean squared error of regressed student vs detached teacher map "
                 f"({got.item():.4f} on a (2, 6, 8, 8) -> (2, 10, 4, 4) example)")
