"""Answer keys of Lab 05 (KD meets compression): the magnitude-pruning mask, fake quantization.

The reference implementations of the exercises (``prune_mask``, ``fake_quantize``, and
``quantize_int``, the integers and scales of the same quantization) and of their common
mistakes, evaluated on a check's inputs (``kdlab.checks.lab05``): the verdicts compare the
student's outcomes with these values and name the mistake whose values match.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from kdlab.checks.lab05 import check_prune_mask, check_fake_quantize

from ._table import key_of


# ------------------------------------------------------------------ references

def prune_mask(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Reference: False at the round(sparsity * numel) entries of smallest |w|, True elsewhere.

    weight: (...) any float tensor (not modified); sparsity in [0, 1] (ValueError otherwise).
    Returns: a bool tensor of weight's shape. Ties at the threshold are broken as
    ``torch.topk`` breaks them (as ``torch.nn.utils.prune`` does).
    """
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must lie in [0, 1], got {sparsity}")
    k = round(sparsity * weight.numel())
    mask = torch.ones(weight.numel(), dtype=torch.bool, device=weight.device)
    if k > 0:
        mask[torch.topk(weight.detach().abs().reshape(-1), k, largest=False).indices] = False
    return mask.reshape(weight.shape)


def _check_bits(bits) -> int:
    if not isinstance(bits, (int, np.integer)) or isinstance(bits, bool) or bits < 2:
        raise ValueError(f"bits must be an integer >= 2 (one level each side of 0), got {bits!r}")
    return int(bits)


def _channel_scale(v: torch.Tensor, qmax: int) -> torch.Tensor:
    """max|w| over all dims but 0, / qmax, shaped (C_out, 1, ...); 1 for an all-zero channel."""
    amax = v.abs().reshape(v.shape[0], -1).amax(1).reshape(-1, *([1] * (v.dim() - 1)))
    return torch.where(amax > 0, amax / qmax, torch.ones_like(amax))


def quantize_int(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: the integers and scales of symmetric per-output-channel quantization.

    w: (C_out, ...) float; bits: 2..8. Returns (q, scale): q (C_out, ...) int8 in
    [-qmax, qmax], qmax = 2**(bits-1) - 1; scale (C_out,) float32 with w ~= q * scale.
    """
    if not 2 <= _check_bits(bits) <= 8:
        raise ValueError(f"bits must be in 2..8 for int8 storage, got {bits}")
    qmax = 2 ** (bits - 1) - 1
    scale = _channel_scale(w.detach(), qmax)
    q = torch.clamp(torch.round(w.detach() / scale), -qmax, qmax)
    return q.to(torch.int8), scale.reshape(-1).to(torch.float32)


def fake_quantize(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Reference: symmetric per-output-channel fake quantization, straight-through gradient.

    w: (C_out, ...) float; bits: an int >= 2. Returns (C_out, ...) of w's dtype,
    clamp(round(w / scale), -qmax, qmax) * scale, scale = max|w| of the channel / qmax
    (an all-zero channel stays zero); its gradient with respect to w is the identity.
    """
    qmax = 2 ** (_check_bits(bits) - 1) - 1
    v = w.detach()
    scale = _channel_scale(v, qmax)
    return w + (torch.clamp(torch.round(v / scale), -qmax, qmax) * scale - v)


# ------------------------------------------------------------------ prune_mask

def _smallest(scores: torch.Tensor, k: int) -> dict:
    """Every mask removing the k smallest `scores`, as {"count": k, "remove": the entries all
    of them remove, "keep": the entries all of them keep}; the rest tie with the k-th smallest.
    """
    flat = scores.double()
    if k == 0:
        return {"count": 0, "remove": torch.zeros_like(flat, dtype=torch.bool),
                "keep": torch.ones_like(flat, dtype=torch.bool)}
    t = flat.reshape(-1).kthvalue(k).values
    return {"count": int(k), "remove": flat < t, "keep": flat > t}


def _fixed(keep: torch.Tensor) -> dict:
    """The one mask `keep` (a comparison with a threshold: no choice among ties)."""
    return {"count": int((~keep).sum()), "remove": ~keep, "keep": keep}


def _per_slice(a: torch.Tensor, s: float, dim: int) -> dict:
    """Each slice along `dim` pruned on its own (the per-row mistake), as one selection."""
    parts = [_smallest(row, round(s * row.numel())) for row in a.movedim(dim, 0)]
    return {"count": sum(p["count"] for p in parts),
            "remove": torch.stack([p["remove"] for p in parts]).movedim(0, dim),
            "keep": torch.stack([p["keep"] for p in parts]).movedim(0, dim)}


def _prune_case(w: torch.Tensor, s: float) -> dict:
    a, n = w.abs(), w.numel()
    k = round(s * n)
    right = _smallest(a, k)
    t = float(a.reshape(-1).double().kthvalue(k).values) if k else 0.0
    base = {"n": n, "k": k, "s": s, "exact": s * n, "t": t,
            "ties": int((a.double() == t).sum()) if k else 0}
    cands = [("inverted", {"count": n - k, "remove": right["keep"], "keep": right["remove"]}, {}),
             ("largest", _smallest(-a, k), {}),
             ("values", _smallest(w, k), {}),
             ("truncate", _smallest(a, int(s * n)), {}),
             ("ceil", _smallest(a, math.ceil(s * n)), {}),
             ("round_half_up", _smallest(a, min(n, math.floor(s * n + 0.5))), {}),
             ("quantile", _fixed(a > torch.quantile(a.reshape(-1), s)), {})]
    if k:
        cands += [("threshold_gt", _fixed(a > t), {}), ("threshold_ge", _fixed(a >= t), {})]
    if w.dim() > 1:
        cands += [("per_slice", _per_slice(a, s, d), {"dim": d, "slice": "row" if d == 0 else "slice"})
                  for d in range(w.dim()) if w.shape[d] > 1]
    return {"k": k, "right": right,
            "mistakes": [[name, sel, {**base, "removed": sel["count"], **f}] for name, sel, f in cands]}


@key_of(check_prune_mask)
def prune_key(inp: dict) -> dict:
    """The right selection and each mistake's, for every case of ``prune_inputs``."""
    return {"cases": [_prune_case(w, s) for w, s, _ in inp["cases"]]}


# ------------------------------------------------------------------ fake_quantize

def _quant(w, bits, per="channel", qmax=None, qmin=None, rnd=torch.round, denom=None, mag=torch.abs,
           reduce="amax"):
    """Symmetric fake quantization (values as float64) with knobs that give the mistakes.

    Computed in w's dtype, as the student's code computes it. per: "channel" (dim 0),
    "tensor" or "dim1" (the wrong axis); qmax / qmin: the clamp's range (default
    [-(2**(bits-1) - 1), 2**(bits-1) - 1]); denom: what max|w| is divided by (default qmax);
    mag: what the max is taken of (default |w|); reduce: "amax", or "mean" (the mistake).
    """
    qm = 2 ** (bits - 1) - 1 if qmax is None else qmax
    lo = -qm if qmin is None else qmin
    shape = (-1,) + (1,) * (w.dim() - 1)
    if per == "tensor":
        amax = mag(w).max().expand(w.shape[0]).reshape(shape)
    elif per == "dim1":
        amax = mag(w).amax(dim=[i for i in range(w.dim()) if i != 1], keepdim=True)
    elif reduce == "mean":
        amax = mag(w).reshape(w.shape[0], -1).mean(1).reshape(shape)
    else:
        amax = mag(w).reshape(w.shape[0], -1).amax(1).reshape(shape)
    scale = torch.where(amax > 0, amax / (qm if denom is None else denom), torch.ones_like(amax))
    return (torch.clamp(rnd(w / scale), lo, qm) * scale).double()


def _asymmetric(w: torch.Tensor, bits: int, per_tensor: bool = False) -> torch.Tensor:
    """Min-max (asymmetric) quantization with a zero point, float64."""
    w = w.double()
    flat = w.reshape(1 if per_tensor else w.shape[0], -1)
    lo, hi = flat.amin(1).clamp(max=0), flat.amax(1).clamp(min=0)
    scale = torch.where(hi > lo, (hi - lo) / (2 ** bits - 1), torch.ones_like(hi)).reshape(-1, 1)
    zp = torch.round(-lo.reshape(-1, 1) / scale)
    q = torch.clamp(torch.round(flat / scale) + zp, 0, 2 ** bits - 1)
    return ((q - zp) * scale).reshape(w.shape)


def _quant_case(w: torch.Tensor, bits: int) -> dict:
    """The right fake quantization of w, its tolerance (per entry) and each mistake's values."""
    qmax, p, u = 2 ** (bits - 1) - 1, 2 ** (bits - 1), 2 ** bits - 1
    amax = w.double().abs().reshape(w.shape[0], -1).amax(1).reshape(-1, *([1] * (w.dim() - 1)))
    fields = {"bits": bits, "qmax": qmax, "p": p, "u": u, "levels": 2 * qmax + 1}
    cands = [("no_quant", w.double()),
             ("levels", torch.clamp(torch.round(w.double() / _channel_scale(w.double(), qmax)),
                                    -qmax, qmax)),
             ("per_tensor", _quant(w, bits, per="tensor"))]
    if w.dim() > 1:
        cands.append(("dim1", _quant(w, bits, per="dim1")))
    cands += [("qmax_pow2", _quant(w, bits, qmax=p, denom=p)),
              ("asym_range", _quant(w, bits, qmin=-p, denom=p)),
              ("unsigned", _quant(w, bits, qmax=u, denom=u)),
              ("two_pow_b", _quant(w, bits, qmax=u, qmin=-2 ** bits, denom=2 ** bits)),
              ("asymmetric", _asymmetric(w, bits)),
              ("asymmetric_tensor", _asymmetric(w, bits, per_tensor=True)),
              ("no_abs", _quant(w, bits, mag=lambda x: x)),
              ("mean_scale", _quant(w, bits, reduce="mean")),
              ("floor", _quant(w, bits, rnd=torch.floor)),
              ("trunc", _quant(w, bits, rnd=torch.trunc))]
    return {"expected": fake_quantize(w, bits).detach().double(),
            "tol": (1e-5 * torch.where(amax > 0, amax, torch.ones_like(amax)) + 1e-12).expand(w.shape),
            "mistakes": [[name, ref, fields] for name, ref in cands]}


@key_of(check_fake_quantize)
def quant_key(inp: dict) -> dict:
    """Right and mistaken quantizations of every case of ``quant_inputs``, and for the
    gradient case the entries where a clamp may stop it (levels +-qmax) and those at max|w|."""
    w, b = inp["w"], inp["grad_bits"]
    w64 = w.double()
    amax = w64.abs().reshape(w.shape[0], -1).amax(1).reshape(-1, *([1] * (w.dim() - 1)))
    levels = torch.round(w64 / _channel_scale(w64, 2 ** (b - 1) - 1))
    return {"plain": [_quant_case(w, bits) for bits in inp["bits"]],
            "conv": _quant_case(inp["conv"], inp["conv_bits"]),
            "grad_case": _quant_case(w, b), "grad": inp["upstream"].double(),
            "edge": (levels.abs() == 2 ** (b - 1) - 1) & (w != 0),
            "amax_pos": (w64.abs() == amax) & (w != 0)}
