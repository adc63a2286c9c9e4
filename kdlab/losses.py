"""Reference distillation losses, for labs that build on an earlier exercise.

Lab 03 asks students to write ``kd_loss`` and Lab 04 ``hint_loss`` themselves; later labs
and the benchmarks use these reference versions so that they do not depend on a student's
answer.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_T(T: float) -> None:
    if not (isinstance(T, (int, float)) and T > 0 and T != float("inf")):
        raise ValueError(f"temperature T must be a finite number > 0, got {T!r}")


def soft_targets(logits: torch.Tensor, T: float) -> torch.Tensor:
    """Softmax of logits / T along the last dimension: (..., C) -> (..., C)."""
    _check_T(T)
    return F.softmax(logits / T, dim=-1)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
            T: float = 4.0, alpha: float = 0.9) -> torch.Tensor:
    """Hinton et al. (2015) distillation loss, alpha on the soft term.

    (1 - alpha) * CE(student, labels) + alpha * T^2 * KL(p_teacher^T || p_student^T),
    averaged over the batch. The teacher is a target: no gradient flows into it.
    Inputs: student_logits (N, C), teacher_logits (N, C), labels (N,) int64, T > 0,
    alpha in [0, 1]. Returns: a scalar tensor.
    """
    _check_T(T)
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
