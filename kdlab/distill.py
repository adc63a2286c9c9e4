"""The distillation loss the labs train with after Lab 03 (the course's helper, not an exercise).

``kd.distill.loss(T, alpha)`` returns the loss function ``kd.train.fit`` calls with a teacher:
``fit(student, batches, kd.distill.loss(T=4, alpha=0.9), teacher_logits=...)``. Like ``fit``
it refuses to run inside a check (``kd.runtime.refuse_in_check``): an exercise must be the
student's own code.
"""
from __future__ import annotations

import torch
from torch import nn

from .runtime import refuse_in_check


def loss(T: float = 4.0, alpha: float = 0.9):
    """The distillation loss the labs train with after Lab 03, for ``fit`` with a teacher.

    Returns loss_fn(student_logits (B, C), teacher_logits (B, C), labels (B,)) -> scalar:
    (1 - alpha) * cross-entropy with the labels + alpha * T**2 * cross-entropy of the
    student's softened outputs with the teacher's soft targets softmax(teacher_logits / T)
    (which differs from the KL form by the teacher's entropy, a constant for the student,
    so it trains the same). The teacher gets no gradient. Use it in ``fit``:
    ``kd.train.fit(student, batches, kd.distill.loss(T=4, alpha=0.9), teacher_logits=...)``.
    It refuses to run inside a check: an exercise must be your own code.
    """
    if not (isinstance(T, (int, float)) and not isinstance(T, bool) and T > 0 and T < float("inf")):
        raise ValueError(f"kd.distill.loss: T must be a finite number > 0, got {T!r}")
    if not (isinstance(alpha, (int, float)) and 0 <= alpha <= 1):
        raise ValueError(f"kd.distill.loss: alpha must be a number in [0, 1], got {alpha!r}")
    T, alpha = float(T), float(alpha)

    def loss_fn(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                labels: torch.Tensor) -> torch.Tensor:
        refuse_in_check("kd.distill.loss")
        if student_logits.shape != teacher_logits.shape:
            raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                             f"{tuple(teacher_logits.shape)} must have the same shape (B, C)")
        targets = torch.softmax(teacher_logits.detach() / T, dim=-1)
        soft = nn.functional.cross_entropy(student_logits / T, targets)
        hard = nn.functional.cross_entropy(student_logits, labels) if alpha < 1 else 0.0
        return (1 - alpha) * hard + alpha * T * T * soft

    loss_fn.__name__ = loss_fn.__qualname__ = f"distillation(T={T:g}, alpha={alpha:g})"
    return loss_fn
