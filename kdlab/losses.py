"""Reference distillation losses, for labs that build on an earlier exercise.

Lab 03 asks students to write ``kd_loss`` and Lab 04 ``hint_loss`` themselves; later labs
and the benchmarks use these reference versions so that they do not depend on a student's
answer. ``soft_targets`` and ``entropy`` are the course's one softmax-with-temperature and
one entropy: the figures and explorers (``kd.plot``, ``kd.widgets``) use them too.
"""
from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F


def is_real_number(T) -> bool:
    """True for a real number of any numeric type: int, float, numpy scalar, 0-dim real tensor
    (not bool, not complex)."""
    if torch.is_tensor(T):
        return T.dim() == 0 and T.dtype != torch.bool and not T.is_complex()
    return isinstance(T, numbers.Real) and not isinstance(T, bool)


def _check_T(T) -> float:
    """The temperature as a float; TypeError or ValueError saying what is wrong with it.

    Accepts a real number of any numeric type: int, float, a numpy scalar (np.float32(4.0))
    or a 0-dim real tensor (torch.tensor(4.0)); it must be finite and > 0.
    """
    if torch.is_tensor(T) and not is_real_number(T):
        raise TypeError(f"temperature T must be a real number or a 0-dim real tensor, got a "
                        f"tensor of shape {tuple(T.shape)} and dtype {T.dtype}; pass one "
                        "number, e.g. T=4.0")
    if not is_real_number(T):
        raise TypeError(f"temperature T must be a real number (int, float, numpy scalar or 0-dim "
                        f"tensor), got {type(T).__name__} {T!r}; pass one number, e.g. T=4.0")
    value = float(T)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"temperature T must be a finite number > 0, got {value!r}")
    return value


def soft_targets(logits: torch.Tensor, T: float) -> torch.Tensor:
    """Softmax of logits / T along the last dimension: (..., C) -> (..., C).

    Computed in the dtype of `logits` (pass float64 to keep probabilities like 1e-30 exact).
    """
    return F.softmax(logits / _check_T(T), dim=-1)


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of distributions along the last dimension: (..., C) -> (...).

    -sum p log p, with 0 log 0 = 0 (a class of probability 0 adds nothing).
    """
    return 0.0 - torch.special.xlogy(probs, probs).sum(-1)  # 0.0 - : no -0.0 for one-hot


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
            T: float = 4.0, alpha: float = 0.9) -> torch.Tensor:
    """Hinton et al. (2015) distillation loss, alpha on the soft term.

    (1 - alpha) * CE(student, labels) + alpha * T^2 * KL(p_teacher^T || p_student^T),
    averaged over the batch. The teacher is a target: no gradient flows into it.
    Inputs: student_logits (N, C), teacher_logits (N, C), labels (N,) int64, T > 0,
    alpha in [0, 1]. Returns: a scalar tensor.
    """
    T = _check_T(T)
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student_logits {tuple(student_logits.shape)} and teacher_logits "
                         f"{tuple(teacher_logits.shape)} must have the same shape (N, C)")
    soft = F.kl_div(F.log_softmax(student_logits / T, dim=-1),
                    F.log_softmax(teacher_logits.detach() / T, dim=-1),
                    reduction="batchmean", log_target=True)
    hard = F.cross_entropy(student_logits, labels) if alpha < 1 else student_logits.sum() * 0
    return (1 - alpha) * hard + alpha * T * T * soft


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
