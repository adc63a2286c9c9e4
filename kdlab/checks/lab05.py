"""Checks of Lab 05 (KD meets compression): the magnitude-pruning mask and fake quantization.

``check_prune_mask(fn)``: ``fn(weight, sparsity)`` is a bool mask, False for the
round(sparsity * numel) entries of smallest |w|, over the whole tensor (one global
threshold), ValueError outside [0, 1], the weight left alone.

``check_fake_quantize(fn)``: ``fn(w, bits)`` is symmetric per-output-channel fake
quantization, clamp(round(w / scale), -qmax, qmax) * scale with qmax = 2**(bits-1) - 1 and
scale = max|w| of the channel / qmax, zero channels stay zero, gradient = identity
(straight-through), ValueError for bits < 2.

Both name the common mistakes they recognise. The course's reference versions live in
``kdlab.compress``; an exercise that is or calls them fails like one that calls kd.losses.
"""
from __future__ import annotations

import math

import torch

from . import _probe as _p
from ._common import (decode, expects_value_error, fail, paired, raised, result, short,
                      unchanged)
from ._registry import register

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


# ------------------------------------------------------------------ prune_mask

_PRUNE = "check_prune_mask"


def _distinct(shape, g, dtype) -> torch.Tensor:
    """A tensor of `shape` with distinct magnitudes, mixed signs and rows of different scales."""
    n = math.prod(shape)
    mags = (torch.randperm(n, generator=g).double() + 1) / n
    signs = torch.randint(0, 2, (n,), generator=g).double() * 2 - 1
    w = (mags * signs).reshape(shape)
    if len(shape) > 1:  # rows of different scales: per-row pruning differs from global
        scale = torch.linspace(0.2, 3.0, shape[0], dtype=torch.float64)
        scale = scale[torch.randperm(shape[0], generator=g)]
        w = w * scale.reshape(-1, *([1] * (len(shape) - 1)))
    w = w.to(dtype)
    if w.abs().unique().numel() != n:  # float rounding made a tie: nudge
        w = w * (1 + 1e-3 * torch.arange(n, dtype=torch.float64).reshape(shape).to(dtype) / n)
    return w


def prune_inputs(seed=None, shape=(8, 10), dtype="float32") -> dict:
    """Inputs of the pruning check: weights with distinct magnitudes, sparsities, bad sparsities.

    seed None: the fixed inputs of the notebook; an int: fresh values of the same kinds.
    params: shape of the main weight (at least 2 entries), dtype "float32" or "float64".
    Sparsities include 0, 1, 0.5 and two where sparsity * numel is not a whole number (one just
    below and one just above it), so that floor, ceil and round give different counts.
    """
    shape = tuple(int(s) for s in shape)
    if math.prod(shape) < 4 or dtype not in _DTYPES:
        raise ValueError(f"shape needs at least 4 entries and dtype one of {sorted(_DTYPES)}; "
                         f"got shape={shape}, dtype={dtype!r}")
    dt = _DTYPES[dtype]
    g = torch.Generator().manual_seed(5 if seed is None else 5000 + int(seed))
    w = _distinct(shape, g, dt)
    n = w.numel()
    k = max(2, min(n - 2, round(0.3 * n) if seed is None
                   else int(torch.randint(2, n - 1, (1,), generator=g))))
    conv = _distinct((4, 3, 3, 3), g, dt)
    cases = [(w, 0.5, "main"), (w, (k - 0.3) / n, "main"), (w, (k + 0.3) / n, "main"),
             (w, 0.0, "main"), (w, 1.0, "main"), (conv, 0.6, "conv"), (w, 0.8, "param")]
    return {"cases": cases, "bad": (-0.1, 1.5)}


def prune_probe(fn, inp) -> dict:
    """Call fn(weight, sparsity) on each case (the last on an nn.Parameter) and bad sparsities."""
    outs = []
    for w, s, kind in inp["cases"]:
        arg = torch.nn.Parameter(w.clone()) if kind == "param" else w.clone()
        outs.append(_p.call(fn, arg, s)[0])
    w0 = inp["cases"][0][0]
    bad = [_p.call(fn, w0.clone(), s)[0] for s in inp["bad"]]
    return {"cases": outs, "bad": bad}


def _ref_mask(w: torch.Tensor, s: float) -> torch.Tensor:
    k = round(s * w.numel())
    mask = torch.ones(w.numel(), dtype=torch.bool)
    if k:
        mask[torch.topk(w.abs().reshape(-1).double(), k, largest=False).indices] = False
    return mask.reshape(w.shape)


def _mask_by(scores: torch.Tensor, k: int, largest: bool = False) -> torch.Tensor:
    """False at the k smallest (or largest) scores, True elsewhere."""
    mask = torch.ones(scores.numel(), dtype=torch.bool)
    if k:
        mask[torch.topk(scores.reshape(-1).double(), k, largest=largest).indices] = False
    return mask.reshape(scores.shape)


def _per_slice(w: torch.Tensor, s: float, dim: int) -> torch.Tensor:
    """Each slice along `dim` pruned on its own (the per-row / per-column mistake)."""
    moved = w.movedim(dim, 0)
    masks = torch.stack([_ref_mask(row, s) for row in moved])
    return masks.movedim(0, dim)


def _describe(w: torch.Tensor, s: float, kind: str) -> str:
    what = {"conv": "a conv weight", "param": "an nn.Parameter (requires_grad=True)"}.get(kind, "a weight")
    return f"{what} of shape {tuple(w.shape)}, sparsity={s:.4g}"


def _diagnose_mask(got: torch.Tensor, w: torch.Tensor, s: float, where: str) -> None:
    """Name the mistake that turns the right mask into `got`, or fail with the difference."""
    n, k = w.numel(), round(s * w.numel())
    expected = _ref_mask(w, s)
    g = got.bool()
    removed = int((~g).sum())
    if torch.equal(g, ~expected):
        fail(_PRUNE, f"{where}: your mask is inverted: it is True at the {k} entries to remove and "
                     "False at the ones to keep",
             "the mask says what to KEEP: True for the large |w|, False for the pruned ones")
    if torch.equal(g, _mask_by(w.abs(), k, largest=True)):
        fail(_PRUNE, f"{where}: you removed the {k} entries of LARGEST |w|: wrong direction",
             "magnitude pruning removes the smallest |w| (the least important weights); "
             "use torch.topk(..., largest=False) or compare |w| with the k-th smallest")
    if torch.equal(g, _mask_by(w, k)) and not torch.equal(expected, _mask_by(w, k)):
        fail(_PRUNE, f"{where}: you removed the {k} smallest VALUES (the most negative weights), "
                     "not the smallest magnitudes",
             "rank by magnitude: weight.abs()")
    for dim in range(w.dim()):
        if w.shape[dim] > 1 and w.dim() > 1 and torch.equal(g, _per_slice(w, s, dim)):
            fail(_PRUNE, f"{where}: you pruned each slice along dimension {dim} separately "
                         f"(sparsity {s:.4g} in every {'row' if dim == 0 else 'slice'}); the "
                         "exercise asks for ONE threshold over the whole tensor",
                 "flatten first: weight.abs().reshape(-1), pick the k smallest of all of them, "
                 "then reshape the mask back to weight's shape")
    if removed != k:
        exact = s * n
        named = ""
        if removed == math.floor(exact) and removed != k:
            named = f" (= int({exact:.4g}): you truncated instead of rounding)"
        elif removed == math.ceil(exact) and removed != k:
            named = f" (= ceil({exact:.4g}): you rounded up)"
        elif abs(removed - k) == 1:
            named = ": off by one"
        fail(_PRUNE, f"{where}: your mask removes {removed} of {n} entries, expected "
                     f"round({s:.4g} * {n}) = {k}{named}",
             "remove exactly k = round(sparsity * weight.numel()) entries (the count "
             "torch.nn.utils.prune uses); check the cases k = 0 and k = numel, and that a "
             "threshold comparison (< or <=) does not keep or drop one entry too many")
    wrong = int((g != expected).sum())
    fail(_PRUNE, f"{where}: your mask removes the right number of entries ({k}) but not the "
                 f"smallest |w|: {wrong} of {n} entries differ from the expected mask",
         "find the k smallest of weight.abs() over the whole tensor (torch.topk(..., "
         "largest=False) or torch.kthvalue) and set exactly those to False")


def prune_verdict(data, inp) -> str:
    """Check ``fn(weight, sparsity)``: a bool mask of weight's shape, False at the
    round(sparsity * numel) entries of smallest |w| over the whole tensor, True elsewhere.

    weight: any shape; sparsity in [0, 1], ValueError outside; weight is not modified.
    """
    for (w, s, kind), out in paired(inp["cases"], data["cases"]):
        where = _describe(w, s, kind)
        r = out.get("raised")
        if r and s in (0.0, 1.0) and r["type"] not in ("NotImplementedError", "AssertionError"):
            fail(_PRUNE, f"{where}: your function raised {r['type']}: {r['message']}",
                 f"sparsity {s:g} means k = {round(s * w.numel())} entries to remove: torch.kthvalue "
                 "needs 1 <= k <= numel; handle k = 0 (keep everything) and k = numel "
                 "(remove everything) first, or use torch.topk, which accepts k = 0")
        raised(_PRUNE, out, where=where)
        got = result(_PRUNE, out, "the mask")
        unchanged(_PRUNE, out, ["weight"])
        expected = _ref_mask(w, s)
        dtype = out["value"].get("dtype")
        if tuple(got.shape) != tuple(w.shape):
            fail(_PRUNE, f"{where}: your mask has shape {tuple(got.shape)}, expected "
                         f"{tuple(w.shape)} (the weight's shape)",
                 "reshape the flat mask back: mask.reshape(weight.shape)")
        if dtype != "bool":
            gd = got.double()
            if torch.equal(gd, expected.double()):
                fail(_PRUNE, f"{where}: your mask has the right 0s and 1s but dtype {dtype}, "
                             "expected torch.bool",
                     "a comparison (weight.abs() > threshold) gives a bool tensor; or call .bool()")
            if torch.allclose(gd, (w * expected).double()):
                fail(_PRUNE, f"{where}: you returned the pruned weight (weight * mask), not the mask",
                     "return the bool mask itself; torch.nn.utils.prune multiplies it in")
            fail(_PRUNE, f"{where}: your mask has dtype {dtype}, expected torch.bool "
                         f"(got {short(got)})",
                 "return a bool tensor: True = keep, False = prune")
        if not torch.equal(got.bool(), expected):
            _diagnose_mask(got, w, s, where)
    for s, out in paired(inp["bad"], data["bad"]):
        expects_value_error(_PRUNE, out, f"sparsity={s}",
                             "reject a sparsity outside [0, 1]: if not 0 <= sparsity <= 1: "
                             "raise ValueError(f'sparsity must be in [0, 1], got {sparsity}')")
    n = inp["cases"][0][0].numel()
    return (f"global magnitude mask, exact counts (round(s * {n})), sparsity 0 and 1, a conv "
            "weight, the weight left alone, ValueError outside [0, 1]")


check_prune_mask = register("prune_mask", prune_inputs, prune_probe, prune_verdict)


# ------------------------------------------------------------------ fake_quantize

_QUANT = "check_fake_quantize"


def _channels_shape(w: torch.Tensor) -> tuple:
    return (-1,) + (1,) * (w.dim() - 1)


def _quant(w: torch.Tensor, bits: int, per="channel", qmax=None, qmin=None, rnd=torch.round,
           denom=None) -> torch.Tensor:
    """Symmetric fake quantization (float64) with knobs that reproduce the common mistakes.

    per: "channel" (dim 0), "tensor", or "dim1" (the wrong axis); qmax: the clamp's top level
    (default 2**(bits-1) - 1); qmin: the bottom (default -qmax); denom: what max|w| is divided
    by to get the scale (default qmax); rnd: the rounding function.
    """
    # computed in w's dtype, as the student's code computes it (floor and trunc of the largest
    # entry, exactly qmax in float64, can land one level lower in float32)
    qm = 2 ** (bits - 1) - 1 if qmax is None else qmax
    lo = -qm if qmin is None else qmin
    d = qm if denom is None else denom
    if per == "tensor":
        amax = w.abs().max().expand(w.shape[0]).reshape(_channels_shape(w))
    elif per == "dim1":
        amax = w.abs().amax(dim=[i for i in range(w.dim()) if i != 1], keepdim=True)
    else:
        amax = w.abs().reshape(w.shape[0], -1).amax(1).reshape(_channels_shape(w))
    scale = torch.where(amax > 0, amax / d, torch.ones_like(amax))
    return (torch.clamp(rnd(w / scale), lo, qm) * scale).double()


def _asymmetric(w: torch.Tensor, bits: int, per_tensor: bool = False) -> torch.Tensor:
    """Min-max (asymmetric) quantization with a zero point, float64."""
    w = w.double()
    flat = w.reshape(1 if per_tensor else w.shape[0], -1)
    lo = flat.amin(1).clamp(max=0)
    hi = flat.amax(1).clamp(min=0)
    scale = torch.where(hi > lo, (hi - lo) / (2 ** bits - 1), torch.ones_like(hi)).reshape(-1, 1)
    zp = torch.round(-lo.reshape(-1, 1) / scale)
    q = torch.clamp(torch.round(flat / scale) + zp, 0, 2 ** bits - 1)
    return ((q - zp) * scale).reshape(w.shape)


def _no_ties(w: torch.Tensor, bits_list) -> bool:
    """True if no w / scale lies within 1e-3 of a rounding tie (x.5) at any of the bit widths."""
    for b in bits_list:
        for per in ("channel", "tensor", "dim1"):
            qm = 2 ** (b - 1) - 1
            for d in (qm, 2 ** (b - 1), 2 ** b - 1):
                w64 = w.double()
                if per == "tensor":
                    amax = w64.abs().max()
                elif per == "dim1" and w.dim() > 1:
                    amax = w64.abs().amax(dim=[i for i in range(w.dim()) if i != 1], keepdim=True)
                else:
                    amax = w64.abs().reshape(w.shape[0], -1).amax(1).reshape(_channels_shape(w))
                x = w64 / torch.where(amax > 0, amax / d, torch.ones_like(amax))
                frac = (x - x.floor() - 0.5).abs()
                if bool((frac < 1e-3).any()):
                    return False
    return True


def _quant_weight(shape, g, dtype, zero_row: int | None, bits_list) -> torch.Tensor:
    """Random weight whose channels (dim 0) have very different scales, one channel all zero."""
    for _ in range(100):
        scales = 10 ** (torch.rand(shape[0], generator=g, dtype=torch.float64) * 3 - 2)
        w = torch.randn(shape, generator=g, dtype=torch.float64) * scales.reshape(-1, *([1] * (len(shape) - 1)))
        if zero_row is not None:
            w[zero_row] = 0
        w = w.to(dtype)
        if _no_ties(w, bits_list):
            return w
    raise RuntimeError("could not draw a weight without rounding ties")  # pragma: no cover


def quant_inputs(seed=None, shape=(6, 8), bits=(8, 4, 3, 2), dtype="float32") -> dict:
    """Inputs of the fake-quantization check.

    seed None: the fixed inputs of the notebook; an int: fresh values of the same kinds.
    params: shape (C_out, ...) of the main weight, at least 2 channels and 2 entries each;
    bits: the bit widths tried (each >= 2); dtype "float32" or "float64".
    The main weight's channels differ in scale by up to 1000x and one is all zero; a conv
    weight (4, 2, 3, 3) is tried at 4 bits; the gradient is taken at 3 bits; bits 1, 0 and
    -2 must raise ValueError. No value lies near a rounding tie.
    """
    shape = tuple(int(s) for s in shape)
    bits = tuple(int(b) for b in bits)
    if len(shape) < 2 or shape[0] < 2 or math.prod(shape[1:]) < 2 or dtype not in _DTYPES \
            or not bits or min(bits) < 2:
        raise ValueError(f"need shape (C_out >= 2, ...) with >= 2 entries per channel, bits >= 2 "
                         f"and dtype in {sorted(_DTYPES)}; got shape={shape}, bits={bits}, "
                         f"dtype={dtype!r}")
    dt = _DTYPES[dtype]
    g = torch.Generator().manual_seed(6 if seed is None else 6000 + int(seed))
    zero = shape[0] - 1 if seed is None else int(torch.randint(0, shape[0], (1,), generator=g))
    w = _quant_weight(shape, g, dt, zero, bits + (3,))
    conv = _quant_weight((4, 2, 3, 3), g, dt, None, (4,))
    upstream = torch.randn(shape, generator=g, dtype=torch.float64).to(dt)
    return {"w": w, "bits": bits, "conv": conv, "conv_bits": 4, "grad_bits": 3,
            "upstream": upstream, "bad": (1, 0, -2), "zero_row": zero}


def quant_probe(fn, inp) -> dict:
    """Call fn(w, bits) at each bit width, on the conv weight, with autograd, and with bad bits."""
    w = inp["w"]
    plain = [_p.call(fn, w.clone(), b)[0] for b in inp["bits"]]
    conv = _p.call(fn, inp["conv"].clone(), inp["conv_bits"])[0]
    leaf = w.clone().requires_grad_()
    out, res = _p.call(fn, leaf, inp["grad_bits"])
    grad = {"kind": "none"}
    if torch.is_tensor(res) and res.requires_grad and tuple(res.shape) == tuple(w.shape):
        try:
            loss = (res * inp["upstream"]).sum()
            grad = _p.grads(loss, [leaf])[0]
        except Exception as e:  # noqa: BLE001 - a result autograd cannot use
            grad = {"kind": "error", "type": type(e).__name__, "message": _p.text(e)}
    bad = [_p.call(fn, w.clone(), b)[0] for b in inp["bad"]]
    return {"plain": plain, "conv": conv, "grad_call": out, "grad": grad, "bad": bad}


def _close64(got: torch.Tensor, ref: torch.Tensor, scale_ref: torch.Tensor) -> bool:
    """Equal up to float32 rounding, relative to each channel's size."""
    if tuple(got.shape) != tuple(ref.shape):
        return False
    g = got.double()
    if not bool(torch.isfinite(g).all()):
        return False
    tol = 1e-5 * scale_ref.double() + 1e-12
    return bool(((g - ref).abs() <= tol).all())


def _diagnose_quant(got: torch.Tensor, w: torch.Tensor, bits: int, where: str, zero_row) -> None:
    """Name the mistake behind a wrong fake quantization, or fail with got vs expected."""
    expected = _quant(w, bits)
    amax = w.double().abs().reshape(w.shape[0], -1).amax(1).reshape(_channels_shape(w))
    tol_ref = torch.where(amax > 0, amax, torch.ones_like(amax)).expand(w.shape)
    if tuple(got.shape) != tuple(w.shape):
        fail(_QUANT, f"{where}: result has shape {tuple(got.shape)}, expected {tuple(w.shape)} "
                     "(the weight's shape)",
             "keep the shape: compute one scale per output channel with keepdim or reshape "
             "and broadcast it")
    g = got.double()
    if not bool(torch.isfinite(g).all()):
        bad_rows = sorted({int(i) for i in (~torch.isfinite(g)).reshape(w.shape[0], -1).any(1).nonzero().reshape(-1)})
        if zero_row is not None and bad_rows == [zero_row]:
            fail(_QUANT, f"{where}: channel {zero_row} is all zeros and your result there is "
                         f"nan or inf: its scale is 0 and 0 / 0 = nan",
                 "an all-zero channel must stay zero: use a scale of 1 (or any nonzero value) "
                 "where max|w| is 0, e.g. torch.where(amax > 0, amax / qmax, 1)")
        fail(_QUANT, f"{where}: result contains nan or inf in channels {bad_rows}: {short(got)}",
             "look for a division by a zero scale")
    qmax = 2 ** (bits - 1) - 1
    mistakes = [
        (w.double(), "your result equals the weight: nothing was quantized",
         "round w / scale to integer levels and multiply back: "
         "torch.clamp(torch.round(w / scale), -qmax, qmax) * scale"),
        (torch.clamp(torch.round(w.double() / torch.where(amax > 0, amax / qmax, torch.ones_like(amax))),
                     -qmax, qmax),
         "you returned the integer levels round(w / scale), not the fake-quantized weight",
         "multiply the clamped integers back by the scale: q * scale"),
        (_quant(w, bits, per="tensor"),
         "you used ONE scale for the whole tensor (per-tensor); the exercise asks for one "
         "scale per output channel (dim 0)",
         "max|w| per channel: w.abs().reshape(w.shape[0], -1).amax(dim=1), reshaped to "
         "(C_out, 1, ...) to broadcast"),
        (_quant(w, bits, per="dim1") if w.dim() > 1 else None,
         "your scales are per input column (dimension 1), not per output channel (dimension 0)",
         "reduce |w| over every dimension except 0: w.abs().reshape(w.shape[0], -1).amax(dim=1)"),
        (_quant(w, bits, qmax=2 ** (bits - 1), denom=2 ** (bits - 1)),
         f"you used qmax = 2**(bits-1) = {2 ** (bits - 1)}; a symmetric signed range has "
         f"qmax = 2**(bits-1) - 1 = {qmax} (levels -{qmax}..{qmax})",
         "qmax = 2 ** (bits - 1) - 1, scale = max|w| / qmax, clamp to [-qmax, qmax]"),
        (_quant(w, bits, qmax=2 ** (bits - 1) - 1, qmin=-2 ** (bits - 1), denom=2 ** (bits - 1)),
         f"you used the asymmetric integer range [-{2 ** (bits - 1)}, {2 ** (bits - 1) - 1}] with "
         f"scale = max|w| / {2 ** (bits - 1)}: the largest weights are clipped",
         f"symmetric quantization uses [-qmax, qmax] with qmax = 2**(bits-1) - 1 = {qmax} and "
         "scale = max|w| / qmax"),
        (_quant(w, bits, qmax=2 ** bits - 1, denom=2 ** bits - 1),
         f"you used qmax = 2**bits - 1 = {2 ** bits - 1}: that is the count of an UNSIGNED "
         f"range; with a sign bit there are only {2 * qmax + 1} levels",
         "qmax = 2 ** (bits - 1) - 1"),
        (_quant(w, bits, qmax=2 ** bits - 1, qmin=-2 ** bits, denom=2 ** bits),
         f"you used 2**bits levels each side of zero: the wrong level count for {bits} bits",
         "qmax = 2 ** (bits - 1) - 1"),
        (_asymmetric(w, bits),
         "your quantization is asymmetric (min-max range with a zero point); the exercise asks "
         "for symmetric quantization around 0",
         "scale = max|w| / qmax with qmax = 2**(bits-1) - 1, no zero point"),
        (_asymmetric(w, bits, per_tensor=True),
         "your quantization is asymmetric (min-max with a zero point) AND per tensor",
         "symmetric, per output channel: scale = max|w| of the channel / (2**(bits-1) - 1)"),
        (_quant(w, bits, rnd=torch.floor),
         "you rounded down (floor) instead of to the nearest level",
         "torch.round(w / scale)"),
        (_quant(w, bits, rnd=torch.trunc),
         "you truncated toward zero (int conversion) instead of rounding to the nearest level",
         "torch.round(w / scale); .int() or .long() truncate"),
    ]
    for ref, what, hint in mistakes:
        if ref is not None and _close64(got, ref, tol_ref):
            fail(_QUANT, f"{where}: {what}", hint)
    diff = (g - expected).abs()
    fail(_QUANT, f"{where}: the result is wrong: max abs difference {diff.max().item():.3g}\n"
                 f"    got      {short(got)}\n    expected {short(expected)}",
         "scale = max|w| per output channel / qmax, qmax = 2**(bits-1) - 1; "
         "result = clamp(round(w / scale), -qmax, qmax) * scale")


def _check_quant(out: dict, w: torch.Tensor, bits: int, where: str, zero_row) -> torch.Tensor:
    raised(_QUANT, out, where=where)
    got = result(_QUANT, out, "the result")
    unchanged(_QUANT, out, ["weight"])
    dtype = out["value"].get("dtype")
    expected = _quant(w, bits)
    amax = w.double().abs().reshape(w.shape[0], -1).amax(1).reshape(_channels_shape(w))
    tol_ref = torch.where(amax > 0, amax, torch.ones_like(amax)).expand(w.shape)
    if not _close64(got, expected, tol_ref):
        _diagnose_quant(got, w, bits, where, zero_row)
    if dtype != str(w.dtype).replace("torch.", ""):
        fail(_QUANT, f"{where}: the values are right but the dtype is {dtype}, expected "
                     f"{str(w.dtype).replace('torch.', '')} (the weight's)",
             "keep the float dtype of w: fake quantization returns floats on the integer grid")
    return got


def quant_verdict(data, inp) -> str:
    """Check ``fn(w, bits)``: symmetric per-output-channel fake quantization with a
    straight-through gradient.

    w: (C_out, ...) float; bits: int >= 2 (ValueError otherwise). qmax = 2**(bits-1) - 1,
    scale = max|w| over the other dims / qmax (an all-zero channel stays zero); returns
    clamp(round(w / scale), -qmax, qmax) * scale, same shape and dtype as w; the gradient
    with respect to w is the identity; w is not modified.
    """
    w, zero = inp["w"], inp["zero_row"]
    for b, out in paired(inp["bits"], data["plain"]):
        _check_quant(out, w, b, f"a weight of shape {tuple(w.shape)} (channel {zero} all zero), "
                                f"bits={b}", zero)
    _check_quant(data["conv"], inp["conv"], inp["conv_bits"],
                 f"a conv weight of shape {tuple(inp['conv'].shape)}, bits={inp['conv_bits']}", None)
    b = inp["grad_bits"]
    where = f"w of shape {tuple(w.shape)} with requires_grad=True, bits={b}"
    out = data["grad_call"]
    _check_quant(out, w, b, where, zero)
    if not out["value"].get("requires_grad"):
        fail(_QUANT, f"{where}: the result does not require grad: no gradient can reach w during "
                     "quantization-aware training",
             "do not detach the whole result or use torch.no_grad(); the straight-through "
             "estimator is w + (w_q - w).detach()")
    gr = data["grad"]
    if gr.get("kind") != "tensor":
        fail(_QUANT, f"{where}: no gradient reaches w ({gr.get('type', gr.get('kind'))}"
                     f"{': ' + gr['message'] if gr.get('message') else ''})",
             "use the straight-through estimator: return w + (w_q - w).detach()")
    grad = decode(gr).double()
    up = inp["upstream"].double()
    if tuple(grad.shape) != tuple(up.shape):
        fail(_QUANT, f"{where}: the gradient has shape {tuple(grad.shape)}, expected {tuple(up.shape)}")
    if bool((grad.abs() < 1e-12).all()):
        fail(_QUANT, f"{where}: the gradient with respect to w is zero everywhere: round() has "
                     "zero gradient almost everywhere, so training could not change the weights",
             "straight-through estimator: compute w_q, then return w + (w_q - w).detach(); "
             "the forward value is w_q and the gradient is the identity")
    amax_pos = (w.double().abs() == w.double().abs().reshape(w.shape[0], -1).amax(1)
                .reshape(_channels_shape(w))) & (w != 0)
    differs = ~torch.isclose(grad, up, atol=1e-5, rtol=1e-4)
    # a straight-through round followed by torch.clamp loses the gradient of the entries whose level
    # is exactly +-qmax: torch.clamp's gradient is 0 at its bounds. Harmless: accepted.
    amax_c = w.double().abs().reshape(w.shape[0], -1).amax(1).reshape(_channels_shape(w))
    qm = 2 ** (b - 1) - 1
    levels = w.double() / torch.where(amax_c > 0, amax_c / qm, torch.ones_like(amax_c))
    edge = (levels.round().abs() == qm) & (w != 0)
    differs = differs & ~(edge & (grad.abs() < 1e-12))
    if bool(differs.any()):
        bad = int(differs.sum())
        only_max = bool((differs <= amax_pos).all())
        if only_max:
            fail(_QUANT, f"{where}: the gradient is the identity except at the largest |w| of each "
                         "channel: the scale (computed from w) still carries gradient",
                 "compute the scale from w.detach(), or use w + (w_q - w).detach() with w_q "
                 "computed without gradient")
        fail(_QUANT, f"{where}: the gradient with respect to w is not the identity: {bad} of "
                     f"{grad.numel()} entries differ\n    got      {short(grad)}\n"
                     f"    expected {short(up)} (the upstream gradient, unchanged)",
             "straight-through estimator: return w + (w_q - w).detach()")
    for bad, out in paired(inp["bad"], data["bad"]):
        expects_value_error(_QUANT, out, f"bits={bad}",
                             "with bits < 2, qmax = 2**(bits-1) - 1 <= 0 leaves no level besides 0: "
                             "if bits < 2: raise ValueError(f'bits must be >= 2, got {bits}')")
    return (f"symmetric per-channel levels at bits {', '.join(map(str, inp['bits']))}, zero "
            "channel kept, conv weight, straight-through gradient, bits < 2 rejected")


check_fake_quantize = register("fake_quantize", quant_inputs, quant_probe, quant_verdict)
