"""Checks of Lab 05 (KD meets compression): the magnitude-pruning mask and fake quantization.

Each runs the student's function on small inputs (fixed in the notebook, fresh in grading, of
the same kinds: ties at the pruning threshold, counts where int, ceil, round and quantile
differ, a count of exactly k + 0.5, channels of very different scales), compares the outcomes with the answer key (the
right values and those of the common mistakes) and names the mistake it recognises.
"""
from __future__ import annotations

import math

import torch

from . import _probe as _p
from ._common import (Mistake, recorded, expects_value_error, fail, paired, raised, rejects,
                      result, short, unchanged)
from ._registry import Check

_DTYPES = {"float32": torch.float32, "float64": torch.float64}

# ------------------------------------------------------------------ prune_mask

_COUNT_HINT = ("remove exactly k = round(sparsity * weight.numel()) entries (the count "
               "torch.nn.utils.prune uses); check the cases k = 0 and k = numel, and that a "
               "threshold comparison (< or <=) does not keep or drop one entry (or a tie) too many")
_TIES_HINT = ("when several |w| equal the threshold, still remove exactly k entries (any of the "
              "tied ones may go): pick them by position, torch.topk(weight.abs().reshape(-1), k, "
              "largest=False).indices, instead of comparing |w| with the threshold")
PRUNE_MISTAKES = [
    Mistake("inverted", "your mask is inverted: it is True at the {k} entries to remove and "
                        "False at the ones to keep",
            "the mask says what to KEEP: True for the large |w|, False for the pruned ones"),
    Mistake("largest", "you removed the {k} entries of LARGEST |w|: wrong direction",
            "magnitude pruning removes the smallest |w| (the least important weights); "
            "use torch.topk(..., largest=False) or compare |w| with the k-th smallest"),
    Mistake("values", "you removed the {k} smallest VALUES (the most negative weights), not "
                      "the smallest magnitudes", "rank by magnitude: weight.abs()"),
    Mistake("per_slice", "you pruned each slice along dimension {dim} separately (sparsity "
                         "{s:.4g} in every {slice}); the exercise asks for ONE threshold over "
                         "the whole tensor",
            "flatten first: weight.abs().reshape(-1), pick the k smallest of all of them, then "
            "reshape the mask back to weight's shape"),
    Mistake("truncate", "your mask removes {removed} of {n} entries, expected round({s:.4g} * "
                        "{n}) = {k} (= int({exact:.4g}): you truncated instead of rounding)",
            _COUNT_HINT),
    Mistake("ceil", "your mask removes {removed} of {n} entries, expected round({s:.4g} * {n}) "
                    "= {k} (= ceil({exact:.4g}): you rounded up)", _COUNT_HINT),
    Mistake("round_half_up", "your mask removes {removed} of {n} entries, expected round({s:.4g} "
                             "* {n}) = {k}: {exact:.4g} lies exactly halfway, and round() goes "
                             "to the even neighbour ({k}, as the lab says: 2.5 rounds to 2); "
                             "floor(x + 0.5) or int(x + 0.5) rounds every half up",
            "count k = round(sparsity * weight.numel()) with Python's round (the count "
            "torch.nn.utils.prune uses), not floor(x + 0.5)"),
    Mistake("quantile", "your mask keeps |w| > torch.quantile(|w|, sparsity): it removes "
                        "{removed} of {n} entries, expected round({s:.4g} * {n}) = {k}; a "
                        "quantile interpolates between the sorted |w| at position sparsity * "
                        "(numel - 1), so its count is not round(sparsity * numel)",
            "count k = round(sparsity * weight.numel()) and remove exactly the k smallest: "
            "torch.topk(weight.abs().reshape(-1), k, largest=False).indices"),
    Mistake("threshold_gt", "your mask removes {removed} of {n} entries, expected {k}: {ties} "
                            "entries share the threshold magnitude |w| = {t:.4g} (the k-th "
                            "smallest), and keeping only |w| > threshold removes every one of them",
            _TIES_HINT),
    Mistake("threshold_ge", "your mask removes {removed} of {n} entries, expected {k}: keeping "
                            "|w| >= the k-th smallest |w| ({t:.4g}) keeps that entry and every "
                            "tie with it", _TIES_HINT),
]


def _weight(shape, g, dtype, levels: int = 0) -> torch.Tensor:
    """Mixed signs and either distinct magnitudes, rows of different scales (per-row pruning
    then differs from global), or only `levels` magnitudes (ties)."""
    n = math.prod(shape)
    mags = (torch.randint(1, levels + 1, (n,), generator=g).double() / levels if levels
            else (torch.randperm(n, generator=g).double() + 1) / n)
    w = (mags * (torch.randint(0, 2, (n,), generator=g).double() * 2 - 1)).reshape(shape)
    if len(shape) > 1 and not levels:
        scale = torch.linspace(0.2, 3.0, shape[0], dtype=torch.float64)
        w = w * scale[torch.randperm(shape[0], generator=g)].reshape(-1, *([1] * (len(shape) - 1)))
    w = w.to(dtype)
    if not levels and w.abs().unique().numel() != n:  # float rounding made a tie: nudge
        w = w * (1 + 1e-3 * torch.arange(n, dtype=torch.float64).reshape(shape).to(dtype) / n)
    return w


def prune_inputs(seed=None, shape=(8, 10), dtype="float32") -> dict:
    """Inputs of the pruning check (seed None: the notebook's; an int: fresh ones of the same kinds).

    params: shape of the main weight (at least 4 entries), dtype "float32" or "float64".
    The main weight has distinct magnitudes; its sparsities are 0.5, 0, 1, four where
    sparsity * numel is not whole (k - 0.3 and k + 0.3 for a small k and a large k), so that
    int, ceil, round and quantile counts differ, and one where it is exactly j + 0.5 for an
    even j (round gives j, floor(x + 0.5) j + 1; e.g. 80 weights at sparsity 0.03125). A weight whose |w| repeat is pruned with the
    threshold inside a group of ties; a conv weight (4, 3, 3, 3); an nn.Parameter.
    """
    shape = tuple(int(s) for s in shape)
    if math.prod(shape) < 4 or dtype not in _DTYPES:
        raise ValueError(f"shape needs at least 4 entries and dtype one of {sorted(_DTYPES)}; "
                         f"got shape={shape}, dtype={dtype!r}")
    g, dt = check_prune_mask.rng(seed), _DTYPES[dtype]
    w = _weight(shape, g, dt)
    n = w.numel()
    lo, hi = (int(torch.randint(1, max(1, n // 4) + 1, (1,), generator=g)) for _ in range(2))
    tied = _weight(shape, g, dt, levels=max(2, n // 6))
    _, counts = tied.abs().reshape(-1).unique(return_counts=True)  # k ends inside a group of ties:
    groups = (counts >= 2).nonzero().reshape(-1)
    j = int(groups[torch.randint(0, len(groups), (1,), generator=g)])
    k_tied = int(counts[:j].sum()) + int(torch.randint(1, int(counts[j]), (1,), generator=g))
    conv = _weight((4, 3, 3, 3), g, dt)
    # an exact half: s * n = j + 0.5 with j even (round gives j, floor(x + 0.5) gives j + 1)
    halves = [j for j in range(0, n - 1, 2) if (j + 0.5) / n * n == j + 0.5]
    half = halves[int(torch.randint(0, len(halves), (1,), generator=g))] if halves else None
    if seed is None and 2 in halves:
        half = 2                      # the lab's own example: 2.5 rounds to 2
    cases = [(w, 0.5, "main"), (w, (lo - 0.3) / n, "main"), (w, (lo + 0.3) / n, "main"),
             (w, (n - hi - 0.3) / n, "main"), (w, (n - hi + 0.3) / n, "main"), (w, 0.0, "main"),
             (w, 1.0, "main"), (conv, 0.6, "conv"), (tied, k_tied / n, "ties"), (w, 0.8, "param")]
    if half is not None:
        cases.append((w, (half + 0.5) / n, "main"))
    return {"cases": cases, "bad": (-0.1, 1.5)}


def prune_probe(fn, inp) -> dict:
    """Call fn(weight, sparsity) on each case (the last on an nn.Parameter) and bad sparsities."""
    outs = [_p.call(fn, torch.nn.Parameter(w.clone()) if kind == "param" else w.clone(), s)[0]
            for w, s, kind in inp["cases"]]
    w0 = inp["cases"][0][0]
    return {"cases": outs, "bad": [_p.call(fn, w0.clone(), s)[0] for s in inp["bad"]]}


def _describe(w: torch.Tensor, s: float, kind: str) -> str:
    """Which case, for messages: the kind of weight, its shape and the sparsity."""
    what = {"conv": "a conv weight", "param": "an nn.Parameter (requires_grad=True)",
            "ties": "a weight whose |w| repeat (ties at the threshold)"}.get(kind, "a weight")
    return f"{what} of shape {tuple(w.shape)}, sparsity={s:.4g}"


def _fits(got: torch.Tensor, sel: dict) -> bool:
    """True if the mask `got` is one the key's selection allows: it removes sel["count"]
    entries, all of sel["remove"] among them, none of sel["keep"]."""
    return (int((~got).sum()) == sel["count"] and not bool((got & sel["remove"]).any())
            and not bool((~got & sel["keep"]).any()))


def _judge_masks(check, inp, key, masks) -> None:
    """Fail unless every mask is right, naming the mistake that explains the wrong ones.

    The named mistake is one whose masks match every wrong mask, the one matching the most
    masks overall (a single wrong case can look like two mistakes: quantile and ceil counts
    agree on some sparsities); else the only mistake matching the first wrong mask.
    """
    cases = list(zip(inp["cases"], key["cases"], masks))
    wrong = [i for i, (_, k, got) in enumerate(cases) if not _fits(got, k["right"])]
    if not wrong:
        return
    hits = {}  # (mistake, dim) -> the cases whose mask it matches
    for i, (_, k, got) in enumerate(cases):
        for name, sel, f in k["mistakes"]:
            if _fits(got, sel):
                hits.setdefault((name, f.get("dim")), []).append(i)
    whole = [ident for ident, h in hits.items() if set(wrong) <= set(h)]
    here = [ident for ident, h in hits.items() if wrong[0] in h]
    ident = (max(whole, key=lambda x: len(hits[x])) if whole
             else here[0] if len({name for name, _ in here}) == 1 else None)
    (w, s, kind), k, got = cases[wrong[0]]
    where = _describe(w, s, kind)
    if ident is not None:
        f = next(f for name, _, f in k["mistakes"] if (name, f.get("dim")) == ident)
        m = next(m for m in check.mistakes if m.name == ident[0])
        fail(check.title, f"{where}: {m.what.format(**f)}", m.hint.format(**f))
    removed, n = int((~got).sum()), got.numel()
    if removed != k["k"]:
        fail(check.title, f"{where}: your mask removes {removed} of {n} entries, expected "
                          f"round({s:.4g} * {n}) = {k['k']}", _COUNT_HINT)
    off = int((got & k["right"]["remove"]).sum() + (~got & k["right"]["keep"]).sum())
    fail(check.title, f"{where}: your mask removes the right number of entries ({k['k']}) but not "
                      f"the smallest |w|: {off} of {n} entries are on the wrong side of the threshold",
         "find the k smallest of weight.abs() over the whole tensor (torch.topk(..., "
         "largest=False)) and set exactly those to False")


def prune_verdict(check, data, inp, key) -> str:
    """Check ``fn(weight, sparsity)``: a bool mask of weight's shape, False at exactly
    round(sparsity * numel) entries of smallest |w| over the whole tensor, True elsewhere.

    weight: any shape; sparsity in [0, 1], ValueError outside; weight is not modified.
    """
    title, masks = check.title, []
    for (w, s, kind), k, out in paired(inp["cases"], key["cases"], data["cases"]):
        where = _describe(w, s, kind)
        r = out.get("raised")
        if r and s in (0.0, 1.0) and r["type"] not in ("NotImplementedError", "AssertionError",
                                                       "HelperInCheck"):
            if "kthvalue" in r["message"]:
                how = "torch.kthvalue needs 1 <= k <= numel"
            elif r["type"] == "IndexError":
                how = (f"the sorted |w| have indices 0 .. {w.numel() - 1}, so sorted[k] does not "
                       "exist for k = numel; the k-th smallest is sorted[k - 1], which does not "
                       "exist for k = 0")
            else:
                how = "no k-th smallest |w| exists for k = 0, and every entry goes for k = numel"
            fail(title, f"{where}: your function raised {r['type']}: {r['message']}",
                 f"sparsity {s:g} means k = {k['k']} entries to remove: {how}; handle k = 0 "
                 "(keep everything) and k = numel (remove everything) first, or use torch.topk, "
                 "which accepts k = 0")
        raised(title, out, where=where)
        got = result(title, out, "the mask")
        unchanged(title, out, ["weight"])
        if tuple(got.shape) != tuple(w.shape):
            fail(title, f"{where}: your mask has shape {tuple(got.shape)}, expected "
                        f"{tuple(w.shape)} (the weight's shape)",
                 "reshape the flat mask back: mask.reshape(weight.shape)")
        dtype = out["value"].get("dtype")
        if dtype != "bool":
            g, nz = got.double(), got != 0
            if _fits(nz, k["right"]) and bool((g[nz] == 1).all()):
                fail(title, f"{where}: your mask has the right 0s and 1s but dtype {dtype}, "
                            "expected torch.bool",
                     "a comparison (weight.abs() > threshold) gives a bool tensor; or call .bool()")
            if _fits(nz, k["right"]) and torch.allclose(g[nz], w.double()[nz]):
                fail(title, f"{where}: you returned the pruned weight (weight * mask), not the mask",
                     "return the bool mask itself; torch.nn.utils.prune multiplies it in")
            fail(title, f"{where}: your mask has dtype {dtype}, expected torch.bool (got {short(got)})",
                 "return a bool tensor: True = keep, False = prune")
        masks.append(got.bool())
    _judge_masks(check, inp, key, masks)
    rejects(title, inp["bad"], data["bad"], "sparsity", "not 0 <= sparsity <= 1",
            "sparsity must be in [0, 1]")
    n = inp["cases"][0][0].numel()
    return (f"global magnitude mask, exact counts (round(s * {n})), ties at the threshold, "
            "sparsity 0 and 1, a conv weight, the weight left alone, ValueError outside [0, 1]")


check_prune_mask = Check("prune_mask", prune_inputs, prune_probe, prune_verdict, PRUNE_MISTAKES)


# ------------------------------------------------------------------ fake_quantize

QUANT_MISTAKES = [
    Mistake("no_quant", "your result equals the weight: nothing was quantized",
            "round w / scale to integer levels and multiply back: "
            "torch.clamp(torch.round(w / scale), -qmax, qmax) * scale"),
    Mistake("levels", "you returned the integer levels round(w / scale), not the "
                      "fake-quantized weight",
            "multiply the clamped integers back by the scale: q * scale"),
    Mistake("per_tensor", "you used ONE scale for the whole tensor (per-tensor); the exercise "
                          "asks for one scale per output channel (dim 0)",
            "max|w| per channel: w.abs().reshape(w.shape[0], -1).amax(dim=1), reshaped to "
            "(C_out, 1, ...) to broadcast"),
    Mistake("dim1", "your scales are per input column (dimension 1), not per output channel "
                    "(dimension 0)",
            "reduce |w| over every dimension except 0: w.abs().reshape(w.shape[0], -1).amax(dim=1)"),
    Mistake("qmax_pow2", "you used qmax = 2**(bits-1) = {p}; a symmetric signed range has "
                         "qmax = 2**(bits-1) - 1 = {qmax} (levels -{qmax}..{qmax})",
            "qmax = 2 ** (bits - 1) - 1, scale = max|w| / qmax, clamp to [-qmax, qmax]"),
    Mistake("asym_range", "you used the asymmetric integer range [-{p}, {qmax}] with scale = "
                          "max|w| / {p}: the largest weights are clipped",
            "symmetric quantization uses [-qmax, qmax] with qmax = 2**(bits-1) - 1 = {qmax} and "
            "scale = max|w| / qmax"),
    Mistake("unsigned", "you used qmax = 2**bits - 1 = {u}: that is the count of an UNSIGNED "
                        "range; with a sign bit there are only {levels} levels",
            "qmax = 2 ** (bits - 1) - 1"),
    Mistake("two_pow_b", "you used 2**bits levels each side of zero: the wrong level count for "
                         "{bits} bits", "qmax = 2 ** (bits - 1) - 1"),
    Mistake("asymmetric", "your quantization is asymmetric (min-max range with a zero point); "
                          "the exercise asks for symmetric quantization around 0",
            "scale = max|w| / qmax with qmax = 2**(bits-1) - 1, no zero point"),
    Mistake("asymmetric_tensor", "your quantization is asymmetric (min-max with a zero point) "
                                 "AND per tensor",
            "symmetric, per output channel: scale = max|w| of the channel / (2**(bits-1) - 1)"),
    Mistake("no_abs", "your scale is the largest VALUE of each channel, max(w), not the largest "
                      "magnitude max|w|: where the largest |w| is negative, weights are clipped",
            "scale = w.abs().reshape(w.shape[0], -1).amax(dim=1) / qmax, reshaped to broadcast"),
    Mistake("mean_scale", "your scale comes from the MEAN |w| of each channel, not the largest: "
                          "every weight above qmax * scale is clipped to the top level",
            "scale = max|w| of the channel / qmax: .amax(dim=1), not .mean(dim=1), so that no "
            "weight is clipped"),
    Mistake("floor", "you rounded down (floor) instead of to the nearest level",
            "torch.round(w / scale)"),
    Mistake("trunc", "you truncated toward zero (int conversion) instead of rounding to the "
                     "nearest level", "torch.round(w / scale); .int() or .long() truncate"),
]


def _quant_weight(shape, g, dtype, zero_row: int | None, bits_list) -> torch.Tensor:
    """Random weight whose channels (dim 0) differ in scale up to 1000x, one channel all zero,
    the largest |w| positive in some channels and negative in others, and no w / (max|w| / d)
    within 1e-3 of a rounding tie (x.5) for the scales of every bit width (d = 2**(b-1) - 1,
    2**(b-1), 2**b - 1), per channel, tensor and column."""
    ones = (1,) * (len(shape) - 1)
    for _ in range(100):
        scales = 10 ** (torch.rand(shape[0], generator=g, dtype=torch.float64) * 3 - 2)
        w = torch.randn(shape, generator=g, dtype=torch.float64) * scales.reshape(-1, *ones)
        if zero_row is not None:
            w[zero_row] = 0
        w = w.to(dtype)
        a = w.double().abs()
        amaxes = [a.reshape(shape[0], -1).amax(1).reshape(-1, *ones), a.max(),
                  a.amax(dim=[i for i in range(a.dim()) if i != 1], keepdim=True)]
        x = torch.stack([w.double() / torch.where(m > 0, m / d, torch.ones_like(m)) for m in amaxes
                         for b in bits_list for d in (2 ** (b - 1) - 1, 2 ** (b - 1), 2 ** b - 1)])
        flat = w.reshape(shape[0], -1)
        lead = flat.gather(1, flat.abs().argmax(1, keepdim=True))  # each channel's max-|w| entry
        if (lead > 0).any() and (lead < 0).any() and not ((x - x.floor() - 0.5).abs() < 1e-3).any():
            return w
    raise RuntimeError("could not draw a weight without rounding ties")  # pragma: no cover


def quant_inputs(seed=None, shape=(6, 8), bits=(8, 4, 3, 2), dtype="float32") -> dict:
    """Inputs of the fake-quantization check (seed None: the notebook's; an int: fresh ones).

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
    g = check_fake_quantize.rng(seed)
    zero = int(torch.randint(0, shape[0], (1,), generator=g))
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
            grad = _p.grads((res * inp["upstream"]).sum(), [leaf])[0]
        except Exception as e:  # noqa: BLE001 - a result autograd cannot use
            grad = {"kind": "error", "type": type(e).__name__, "message": _p.text(e)}
    bad = [_p.call(fn, w.clone(), b)[0] for b in inp["bad"]]
    return {"plain": plain, "conv": conv, "grad_call": out, "grad": grad, "bad": bad}


def _close_q(got: torch.Tensor, ref: torch.Tensor, tol: torch.Tensor) -> bool:
    """Equal up to float32 rounding, relative to each channel's size (tol: per entry)."""
    if tuple(got.shape) != tuple(ref.shape):
        return False
    g = got.double()
    return bool(torch.isfinite(g).all()) and bool(((g - ref).abs() <= tol).all())


def _quant_result(check, out: dict, w: torch.Tensor, case: dict, where: str, zero_row,
                  bits: int) -> None:
    """Fail unless the recorded call returned the key's fake quantization, naming the mistake."""
    title, expected = check.title, case["expected"]
    r = out.get("raised")
    if r and "ValueError" in r.get("bases", []) and bits >= 2:
        fail(title, f"{where}: your function raised {r['type']}: {r['message']}; {bits} bits is "
                    f"valid: qmax = 2**({bits}-1) - 1 = {2 ** (bits - 1) - 1}, levels "
                    f"-{2 ** (bits - 1) - 1} .. {2 ** (bits - 1) - 1}"
                    + (" (ternary weights)" if bits == 2 else ""),
             "reject only bits < 2 (no level besides 0): if bits < 2: raise ValueError(...); "
             "check that your test is not bits <= 2 or bits < 3")
    raised(title, out, where=where)
    got = result(title, out, "the result")
    unchanged(title, out, ["weight"])
    if not _close_q(got, expected, case["tol"]):
        if tuple(got.shape) != tuple(w.shape):
            fail(title, f"{where}: result has shape {tuple(got.shape)}, expected {tuple(w.shape)} "
                        "(the weight's shape)",
                 "keep the shape: compute one scale per output channel with keepdim or reshape "
                 "and broadcast it")
        g = got.double()
        if not bool(torch.isfinite(g).all()):
            rows = sorted({int(i) for i in (~torch.isfinite(g)).reshape(w.shape[0], -1).any(1)
                           .nonzero().reshape(-1)})
            if zero_row is not None and rows == [zero_row]:
                fail(title, f"{where}: channel {zero_row} is all zeros and your result there is "
                            "nan or inf: its scale is 0 and 0 / 0 = nan",
                     "an all-zero channel must stay zero: use a scale of 1 (or any nonzero value) "
                     "where max|w| is 0, e.g. torch.where(amax > 0, amax / qmax, 1)")
            fail(title, f"{where}: result contains nan or inf in channels {rows}: {short(got)}",
                 "look for a division by a zero scale")
        for name, ref, fields in case["mistakes"]:
            if _close_q(got, ref, case["tol"]):
                m = check.mistake(name)
                fail(title, f"{where}: {m.what.format(**fields)}", m.hint.format(**fields))
        fail(title, f"{where}: the result is wrong: max abs difference "
                    f"{(g - expected).abs().max().item():.3g}\n    got      {short(got)}\n"
                    f"    expected {short(expected)}",
             "scale = max|w| per output channel / qmax, qmax = 2**(bits-1) - 1; "
             "result = clamp(round(w / scale), -qmax, qmax) * scale")
    want = str(w.dtype).replace("torch.", "")
    if out["value"].get("dtype") != want:
        fail(title, f"{where}: the values are right but the dtype is {out['value'].get('dtype')}, "
                    f"expected {want} (the weight's)",
             "keep the float dtype of w: fake quantization returns floats on the integer grid")


def _backwards_ste(title: str, data: dict, inp: dict, key: dict) -> None:
    """Fail if the result has w's values but not w's gradient: the straight-through estimator
    written the wrong way round, w_q + (w - w_q).detach(), whose value is w."""
    out, gr = data["grad_call"], data["grad"]
    v = out.get("value", {})
    if out.get("raised") or v.get("kind") != "tensor" or gr.get("kind") != "tensor":
        return
    got, w = recorded(v).double(), inp["w"]
    case = key["grad_case"]
    grad = recorded(gr).double()
    if (tuple(got.shape) == tuple(w.shape) and _close_q(got, w.double(), case["tol"])
            and not _close_q(got, case["expected"], case["tol"])
            and tuple(grad.shape) == tuple(w.shape)
            and not torch.allclose(grad, key["grad"], atol=1e-5, rtol=1e-4)):
        fail(title, f"w with requires_grad=True, bits={inp['grad_bits']}: your result has the "
                    "values of w (nothing quantized) and a gradient that is not the identity: "
                    "the straight-through estimator is written the wrong way round, "
                    "w_q + (w - w_q).detach(), whose value is w and whose gradient is w_q's"
                    f"\n    gradient got      {short(grad)}\n    gradient expected "
                    f"{short(key['grad'])} (the upstream gradient, unchanged)",
             "the forward value must be w_q and the gradient w's: return w + (w_q - w).detach()")


def quant_verdict(check, data, inp, key) -> str:
    """Check ``fn(w, bits)``: symmetric per-output-channel fake quantization with a
    straight-through gradient.

    w: (C_out, ...) float; bits: int >= 2 (ValueError otherwise). qmax = 2**(bits-1) - 1,
    scale = max|w| over the other dims / qmax (an all-zero channel stays zero); returns
    clamp(round(w / scale), -qmax, qmax) * scale, same shape and dtype as w; the gradient
    with respect to w is the identity; w is not modified.
    """
    title = check.title
    w, zero = inp["w"], inp["zero_row"]
    _backwards_ste(title, data, inp, key)
    for b, case, out in paired(inp["bits"], key["plain"], data["plain"]):
        _quant_result(check, out, w, case, f"a weight of shape {tuple(w.shape)} (channel {zero} all "
                                    f"zero), bits={b}", zero, b)
    _quant_result(check, data["conv"], inp["conv"], key["conv"], f"a conv weight of shape "
                  f"{tuple(inp['conv'].shape)}, bits={inp['conv_bits']}", None, inp["conv_bits"])
    where = f"w of shape {tuple(w.shape)} with requires_grad=True, bits={inp['grad_bits']}"
    out = data["grad_call"]
    _quant_result(check, out, w, key["grad_case"], where, zero, inp["grad_bits"])
    if not out["value"].get("requires_grad"):
        fail(title, f"{where}: the result does not require grad: no gradient can reach w during "
                    "quantization-aware training",
             "do not detach the whole result or use torch.no_grad(); the straight-through "
             "estimator is w + (w_q - w).detach()")
    gr = data["grad"]
    if gr.get("kind") != "tensor":
        fail(title, f"{where}: no gradient reaches w ({gr.get('type', gr.get('kind'))}"
                    f"{': ' + gr['message'] if gr.get('message') else ''})",
             "use the straight-through estimator: return w + (w_q - w).detach()")
    grad, up = recorded(gr).double(), key["grad"]
    if tuple(grad.shape) != tuple(up.shape):
        fail(title, f"{where}: the gradient has shape {tuple(grad.shape)}, expected {tuple(up.shape)}",
             "return a tensor of w's shape computed from w: w + (w_q - w).detach()")
    if bool((grad.abs() < 1e-12).all()):
        fail(title, f"{where}: the gradient with respect to w is zero everywhere: round() has "
                    "zero gradient almost everywhere, so training could not change the weights",
             "straight-through estimator: compute w_q, then return w + (w_q - w).detach(); "
             "the forward value is w_q and the gradient is the identity")
    # a straight-through round followed by torch.clamp loses the gradient of the entries whose
    # level is exactly +-qmax: torch.clamp's gradient is 0 at its bounds. Harmless: accepted.
    differs = ~torch.isclose(grad, up, atol=1e-5, rtol=1e-4) & ~(key["edge"] & (grad.abs() < 1e-12))
    if bool(differs.any()):
        if bool((differs <= key["amax_pos"]).all()):
            fail(title, f"{where}: the gradient is the identity except at the largest |w| of each "
                        "channel: the scale (computed from w) still carries gradient",
                 "compute the scale from w.detach(), or use w + (w_q - w).detach() with w_q "
                 "computed without gradient")
        fail(title, f"{where}: the gradient with respect to w is not the identity: "
                    f"{int(differs.sum())} of {grad.numel()} entries differ\n    got      "
                    f"{short(grad)}\n    expected {short(up)} (the upstream gradient, unchanged)",
             "straight-through estimator: return w + (w_q - w).detach()")
    for bad, out in paired(inp["bad"], data["bad"]):
        expects_value_error(title, out, f"bits={bad}",
                            "with bits < 2, qmax = 2**(bits-1) - 1 <= 0 leaves no level besides 0: "
                            "if bits < 2: raise ValueError(f'bits must be >= 2, got {bits}')")
    return (f"symmetric per-channel levels at bits {', '.join(map(str, inp['bits']))}, zero "
            "channel kept, conv weight, straight-through gradient, bits < 2 rejected")


check_fake_quantize = Check("fake_quantize", quant_inputs, quant_probe, quant_verdict,
                               QUANT_MISTAKES)
