"""The figures' numbers: arrays, the temperature, class names, softmax with T and entropy.

What the figures and the explorers (``kd.widgets``) compute from logits, named once here:
``as_numpy``, ``is_real``, ``temperature``, ``class_names``, ``soft_probabilities`` and ``entropy_nats``.
The softmax and entropy are float64 numpy (so that probabilities like 1e-30 stay visible in a
figure); they are not the labs' exercises (those are torch functions with gradients), and the
grading sandbox strips them all the same.
"""
from __future__ import annotations

import numbers

import numpy as np
import torch


def as_numpy(x) -> np.ndarray:
    """A tensor, list or array -> float64 numpy array (detached, on the CPU)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def is_real(T) -> bool:
    """True for a real number of any numeric type: int, float, numpy scalar, 0-dim real tensor."""
    if torch.is_tensor(T):
        return T.dim() == 0 and T.dtype != torch.bool and not T.is_complex()
    return isinstance(T, numbers.Real) and not isinstance(T, bool)


def temperature(T) -> float:
    """The temperature as a float; TypeError or ValueError saying what is wrong with it."""
    if not is_real(T):
        what = (f"a tensor of shape {tuple(T.shape)} and dtype {T.dtype}" if torch.is_tensor(T)
                else f"{type(T).__name__} {T!r}")
        raise TypeError(f"temperature T must be a real number (int, float, numpy scalar or 0-dim "
                        f"tensor), got {what}; pass one number, e.g. T=4.0")
    value = float(T)
    if not (value > 0 and np.isfinite(value)):
        raise ValueError(f"temperature T must be a finite number > 0, got {value!r}")
    return value


def class_names(C: int, given=None) -> list[str]:
    """The C classes' names as strings: "0".."C-1", or the `given` ones (ValueError if not C)."""
    names = [str(c) for c in range(C)] if given is None else [str(c) for c in given]
    if len(names) != C:
        raise ValueError(f"class_names has {len(names)} names for {C} classes")
    return names


def soft_probabilities(logits, T) -> np.ndarray:
    """The figures' softmax of logits / T along the last dimension, in float64 numpy (so that
    probabilities like 1e-30 stay visible): (..., C) -> (..., C)."""
    z = as_numpy(logits).astype(np.float64) / temperature(T)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def entropy_nats(p) -> np.ndarray:
    """The figures' entropy in nats along the last dimension, 0 log 0 = 0: (..., C) -> (...)."""
    p = as_numpy(p).astype(np.float64)
    return 0.0 - np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(axis=-1)
