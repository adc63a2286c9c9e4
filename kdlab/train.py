"""The course's one training loop: ``fit`` trains a model with the loss it is given.

``fit(model, data, loss_fn, epochs)`` trains any model with any loss passed in. When a
teacher is given (live model, or its logits cached once), the loss is called as
``loss_fn(student_out, teacher_out, labels)``, the argument order of the labs' ``kd_loss``;
otherwise as ``loss_fn(out, labels)``. Evaluation is in ``kdlab.evaluation``, the course's
distillation loss in ``kdlab.distill``, the run's policy (budget, seeding, threads, device)
in ``kdlab.runtime``.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from .data import Batches
from . import evaluation
from .runtime import refuse_in_check


def _as_batches(data, batch_size: int = 128):
    """Accept Batches, a (x, y) pair of tensors, or any iterable of (x, y[, idx]) batches."""
    if isinstance(data, tuple) and len(data) == 2 and all(torch.is_tensor(t) for t in data):
        return Batches(data[0], data[1], batch_size=batch_size, shuffle=True, seed=0)
    return data


def _check_labels(out: torch.Tensor, y: torch.Tensor) -> None:
    if out.dim() == 2 and y.dtype == torch.long:
        if y.shape != out.shape[:1]:
            raise ValueError(f"labels of shape {tuple(y.shape)} do not match model output "
                             f"{tuple(out.shape)}: expected labels ({out.shape[0]},)")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= out.shape[1]):
            raise ValueError(f"labels must lie in 0..{out.shape[1] - 1} for output "
                             f"{tuple(out.shape)}; got values {int(y.min())}..{int(y.max())}")


def fit(model: nn.Module, data, loss_fn, epochs: int = 1, *, teacher: nn.Module | None = None,
        teacher_logits: torch.Tensor | None = None, optimizer=None, lr: float = 1e-3,
        scheduler=None, val=None, progress: bool = True, dev=None, desc: str = "train") -> dict:
    """Train `model` on `data` with the loss `loss_fn`; return the history.

    Inputs:
    - model: the network to train (its parameters are updated in place)
    - data: ``kd.data.Batches`` (yields x, y, idx), a pair (x, y) of tensors, or any
      iterable of (x, y) batches. x: (B, ...), y: (B,)
    - loss_fn: ``loss_fn(out, y)``, or ``loss_fn(out, teacher_out, y)`` with a teacher;
      must return a scalar tensor
    - epochs: passes over `data`
    - teacher: a model run live (eval mode, no grad) on every batch
    - teacher_logits: (N, ...) teacher outputs computed once, looked up by the batch's idx
      (needs batches that carry indices: ``kd.data.Batches``, or ``kd.views.ViewBatches``,
      whose idx is the row of the chosen view, so each image gets the logits of the view the
      student sees); give at most one of teacher / teacher_logits
    - optimizer: a torch optimizer; default Adam(lr)
    - scheduler: optional learning-rate scheduler, stepped after every optimizer step
    - val: optional (x_val, y_val); test errors are measured after every epoch
    - progress: show a tqdm progress bar
    - dev: the device to train on (default: where the model's parameters are)
    Returns: history dict with "loss" (mean per epoch), "step_loss" (per step),
    "val_errors" and "val_acc" (per epoch, if val), "epoch_time" (seconds per epoch).

    Side effects: `model` is moved to `dev` and left in train mode (call ``model.eval()``
    before using it; ``evaluate`` and ``predict_logits`` switch to eval mode themselves). A
    live `teacher` is moved to `dev` and set to eval mode, and stays so after the call.
    """
    refuse_in_check("kd.train.fit")
    if teacher is not None and teacher_logits is not None:
        raise ValueError("give either teacher= (run live) or teacher_logits= (cached), not both")
    data = _as_batches(data)
    dev = torch.device(dev) if dev is not None else next(model.parameters()).device
    model.to(dev)
    if teacher is not None:
        teacher.to(dev).eval()
    opt = optimizer if optimizer is not None else torch.optim.Adam(model.parameters(), lr=lr)
    hist = {"loss": [], "step_loss": [], "val_errors": [], "val_acc": [], "epoch_time": []}
    total = epochs * len(data) if hasattr(data, "__len__") else None
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=desc, unit="batch", leave=True)
    try:
        for epoch in range(epochs):
            model.train()
            t0, losses = time.perf_counter(), []
            for batch in data:
                x, y = batch[0].to(dev), batch[1].to(dev)
                out = model(x)
                _check_labels(out, y)
                if teacher is not None:
                    with torch.no_grad():
                        t_out = teacher(x)
                    loss = loss_fn(out, t_out, y)
                elif teacher_logits is not None:
                    if len(batch) < 3:
                        raise ValueError("teacher_logits needs batches that carry indices: "
                                         "pass data as kd.data.Batches(x, y, ...)")
                    loss = loss_fn(out, teacher_logits[batch[2]].to(dev), y)
                else:
                    loss = loss_fn(out, y)
                if not torch.is_tensor(loss) or loss.dim() != 0:
                    shape = tuple(loss.shape) if torch.is_tensor(loss) else type(loss).__name__
                    raise ValueError(f"loss_fn must return a scalar tensor, got {shape} for model "
                                     f"output {tuple(out.shape)} and labels {tuple(y.shape)}; "
                                     "reduce it, e.g. with .mean()")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if scheduler is not None:
                    scheduler.step()
                losses.append(loss.item())
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(epoch=epoch + 1, loss=f"{losses[-1]:.4f}")
            hist["epoch_time"].append(time.perf_counter() - t0)
            hist["step_loss"] += losses
            hist["loss"].append(float(np.mean(losses)) if losses else float("nan"))
            if val is not None:
                r = evaluation.evaluate(model, *val)
                hist["val_errors"].append(r["errors"])
                hist["val_acc"].append(r["accuracy"])
                if bar is not None:
                    bar.set_postfix(epoch=epoch + 1, loss=f"{hist['loss'][-1]:.4f}",
                                    val_errors=r["errors"])
    finally:
        if bar is not None:
            bar.close()
    return hist
