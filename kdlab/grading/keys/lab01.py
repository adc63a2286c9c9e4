"""Answer keys of Lab 01: softmax with temperature, entropy, the T-squared gradient scale.

The reference implementations of the exercises and of their common mistakes, evaluated on a
check's inputs (``kdlab.checks.lab01``): the verdicts compare the student's outcomes with
these values and name the mistake whose values match.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from kdlab.checks.lab01 import check_softmax_with_temperature, check_entropy, check_gradient_scale

from ._table import key_of


def softmax_with_temperature(logits: torch.Tensor, T: float) -> torch.Tensor:
    """Reference: softmax of logits / T along the last dimension, (..., C) -> (..., C)."""
    if not (T > 0 and math.isfinite(T)):
        raise ValueError(f"temperature T must be a finite number > 0, got {T}")
    return F.softmax(logits / T, dim=-1)


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Reference: entropy in nats along the last dimension, 0 log 0 = 0: (..., C) -> (...)."""
    return -torch.xlogy(p, p).sum(-1)


def _softmax_case(z: torch.Tensor, T: float) -> dict:
    mistakes = [["no_T", F.softmax(z, dim=-1), {}],
                ["times_T", F.softmax(z * T, dim=-1), {}],
                ["T_squared", F.softmax(z / T ** 2, dim=-1), {}],
                ["log_probs", F.log_softmax(z / T, dim=-1), {}],
                ["divide_after", F.softmax(z, dim=-1) / T, {}]]
    mistakes += [["dim", F.softmax(z / T, dim=d), {"dim": d, "shape": tuple(z.shape)}]
                 for d in range(z.dim() - 1)]
    if z.dim() > 1:
        mistakes.append(["whole_batch", F.softmax(z.flatten() / T, dim=0).view_as(z),
                         {"shape": tuple(z.shape)}])
    return {"expected": softmax_with_temperature(z, T), "mistakes": mistakes}


@key_of(check_softmax_with_temperature)
def softmax_key(inp: dict) -> dict:
    """Right and mistaken softmaxes of every case of ``softmax_inputs``."""
    return {"one_d": [_softmax_case(inp["z1"], T) for T in inp["Ts"]],
            "batch": [_softmax_case(z, T) for z, T in inp["batches"]],
            "big": [_softmax_case(inp["big"], T) for T in inp["big_Ts"]]}


@key_of(check_entropy)
def entropy_key(inp: dict) -> dict:
    """Right and mistaken entropies of every case of ``entropy_inputs``."""
    cases = []
    for p, _ in inp["cases"]:
        h = entropy(p)
        cases.append({"expected": h, "mistakes": [["negative", -h, {}],
                                                  ["bits", h / math.log(2), {}],
                                                  ["mean", h / p.shape[-1], {}]]})
    return {"cases": cases}


def soft_loss_grad_norm(s: torch.Tensor, t: torch.Tensor, T: float, scale_by_T2: bool = False,
                        wrt_scaled: bool = False, loss_value: bool = False) -> float:
    """Norm of d KL(p_t^T || p_s^T) / d s (batch mean; times T^2 if scale_by_T2): a float.

    s, t: (N, C). `wrt_scaled` (the gradient w.r.t. s / T) and `loss_value` (the loss itself)
    are two common mistakes.
    """
    z = s.detach().clone().requires_grad_()
    leaf = (z / T).detach().requires_grad_() if wrt_scaled else None
    inp = leaf if wrt_scaled else z / T
    loss = F.kl_div(F.log_softmax(inp, dim=-1), F.log_softmax(t / T, dim=-1),
                    reduction="batchmean", log_target=True)
    if scale_by_T2:
        loss = loss * T * T
    if loss_value:
        return loss.item()
    loss.backward()
    return (leaf if wrt_scaled else z).grad.norm().item()


@key_of(check_gradient_scale)
def gradient_key(inp: dict) -> dict:
    """Gradient norms at every T (unscaled, scaled) and those of the two mistakes the verdict
    names by their values (no_T, ignores_scale and scale_by_T it names from the ratios)."""
    s, t, Ts = inp["s"], inp["t"], inp["Ts"]
    return {"unscaled": [soft_loss_grad_norm(s, t, T) for T in Ts],
            "scaled": [soft_loss_grad_norm(s, t, T, scale_by_T2=True) for T in Ts],
            "mistakes": [[name, [soft_loss_grad_norm(s, t, T, **{name: True}) for T in Ts], {}]
                         for name in ("wrt_scaled", "loss_value")]}
