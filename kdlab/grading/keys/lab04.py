"""Answer keys of Lab 04 (hint learning, FitNets): the hint regressor and the hint loss.

The reference hint loss and its common mistakes, evaluated on the hint-loss check's inputs,
and for the regressor check the facts of a right regressor on each shape pair: its output
shape, the region of the student's map that adaptive pooling brings to each output position,
and where a local change of the student's map must move the output.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from kdlab.checks.lab04 import check_hint_regressor, check_hint_loss, fixed_regressor

from ._table import key_of


def hint_loss(student_features: torch.Tensor, teacher_features: torch.Tensor, regressor) -> torch.Tensor:
    """FitNets hint loss (Romero et al. 2015): MSE between the regressed student map and the hint.

    mean((regressor(student_features) - teacher_features)^2) over every element; the teacher's
    map is a target: no gradient flows into it.
    Inputs: student_features (N, Cs, Hs, Ws) from the guided layer; teacher_features
    (N, Ct, Ht, Wt) from the hint layer; regressor: a module mapping (N, Cs, Hs, Ws) to
    (N, Ct, Ht, Wt). Returns: a scalar tensor.
    """
    regressed = regressor(student_features)
    if regressed.shape != teacher_features.shape:
        raise ValueError(f"the regressor maps student features {tuple(student_features.shape)} to "
                         f"{tuple(regressed.shape)}, but the teacher's hint is "
                         f"{tuple(teacher_features.shape)}: build it for these channels and size")
    return F.mse_loss(regressed, teacher_features.detach())


def _sq(s, t, r):
    return (r(s) - t.detach()) ** 2


# the common mistakes of hint_loss, named as in check_hint_loss.mistakes; the first two
# run only where the student's and the teacher's maps have the same shape
HINT_WRONG_LOSSES = {
    "unregressed": lambda s, t, r: F.mse_loss(s, t),
    "reversed": lambda s, t, r: F.mse_loss(r(t), s),
    "sum": lambda s, t, r: _sq(s, t, r).sum(),
    "sum_per_example": lambda s, t, r: _sq(s, t, r).sum() / s.shape[0],
    "half": lambda s, t, r: 0.5 * _sq(s, t, r).mean(),
    "norm": lambda s, t, r: (r(s) - t.detach()).norm(),
}
SAME_SHAPE_ONLY = ("unregressed", "reversed")


@key_of(check_hint_loss)
def hint_key(inp: dict) -> dict:
    """The right loss, its gradient w.r.t. the student's map and the mistakes' values, per case."""
    cases = []
    for _, s, t, spec in inp["cases"]:
        reg = fixed_regressor(spec)
        s = s.clone().requires_grad_(True)
        loss = hint_loss(s, t, reg)
        grad = torch.autograd.grad(loss, s)[0]
        with torch.no_grad():
            mistakes = [[name, fn(s, t, reg).double(), {}] for name, fn in HINT_WRONG_LOSSES.items()
                        if s.shape == t.shape or name not in SAME_SHAPE_ONLY]
        cases.append({"expected": loss.detach().double(), "grad": grad.double(), "mistakes": mistakes})
    return {"cases": cases}


def _regions(n_in: int, n_out: int) -> list:
    """The input rows [a, b) that adaptive pooling averages into each of the n_out output rows."""
    return [(math.floor(i * n_in / n_out), math.ceil((i + 1) * n_in / n_out)) for i in range(n_out)]


@key_of(check_hint_regressor)
def regressor_key(inp: dict) -> dict:
    """Per shape pair: the output shapes (the check's batch and the layout batch), the pooling
    region of every output row and column, and the output place of each probed input position."""
    cases = []
    for c in inp["cases"]:
        cs, ct, size, (n, _, hs, ws) = c["case"]
        H, W = tuple(size) if size is not None else (hs, ws)
        cases.append({"shape": (n, ct, H, W), "batch_shape": (c["xs"].shape[0], ct, H, W),
                      "rows": _regions(hs, H), "cols": _regions(ws, W),
                      "centres": [((p + 0.5) * H / hs - 0.5, (q + 0.5) * W / ws - 0.5)
                                  for p, q in c["positions"]]})
    return {"cases": cases}
