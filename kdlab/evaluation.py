"""Evaluation: a model's outputs for a whole set, in batches, and its accuracy and errors.

``predict_logits(model, x)`` runs the model in eval mode without gradients (the train/eval
mode is restored afterwards); ``evaluate(model, x, y)`` counts its errors on (x, y).
"""
from __future__ import annotations

import torch
from torch import nn


def _progress(iterable, enabled: bool, **kw):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, **kw)


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 1000,
                   progress: bool = False) -> torch.Tensor:
    """Model outputs for all of x, in batches, in eval mode, without gradients.

    Inputs: x (N, 1, 28, 28). Returns: (N, C) float32 on the CPU.
    The model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    p = next(model.parameters(), None)
    dev = p.device if p is not None else torch.device("cpu")
    try:
        outs = [model(x[i:i + batch_size].to(dev)).cpu()
                for i in _progress(range(0, len(x), batch_size), progress, desc="predict",
                                   unit="batch")]
    finally:
        model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> dict:
    """Accuracy and number of errors of `model` on (x, y).

    Inputs: x (N, 1, 28, 28), y (N,). Returns {"accuracy": float, "errors": int, "n": int}.
    """
    pred = predict_logits(model, x, batch_size).argmax(1)
    if pred.shape != y.shape:
        raise ValueError(f"predictions {tuple(pred.shape)} and labels {tuple(y.shape)} differ")
    errors = int((pred != y.cpu()).sum())
    return {"accuracy": 1 - errors / len(y), "errors": errors, "n": len(y)}
