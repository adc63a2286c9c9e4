"""Checks of Lab 01 (softmax temperature): softmax with T, entropy, the T-squared gradient scale.

Each check runs the student's function on small inputs (fixed in the notebook, fresh in
grading), compares the outcomes with the answer key (the right values and those of the common
mistakes on the same inputs: no temperature, wrong dimension, log-probabilities, bits, ...) and
names the mistake it recognises before falling back to a plain got-vs-expected message.
"""
from __future__ import annotations

import math

import torch

from . import _probe as _p
from ._common import (Mistake, close, cmp, fail, name_mistake, paired, rejects,
                      raised, result, short, type_name, unchanged)
from ._registry import Check

# ------------------------------------------------------------------ softmax_with_temperature

SOFTMAX_MISTAKES = [
    Mistake("no_T", "your result does not depend on T: it equals softmax(logits), the "
                    "temperature is missing",
            "divide the logits by T before the softmax: softmax(logits / T)"),
    Mistake("times_T", "your result equals softmax(logits * T): you multiplied by T",
            "a higher temperature must make the distribution softer: divide by T"),
    Mistake("T_squared", "your result equals softmax(logits / T**2): you divided by T squared",
            "divide the logits by T once; the T**2 factor belongs to the loss, not the softmax"),
    Mistake("log_probs", "your result equals log_softmax(logits / T): these are "
                         "log-probabilities (all <= 0), not probabilities",
            "return probabilities (each in [0, 1], summing to 1): exponentiate, or use F.softmax"),
    Mistake("divide_after", "your result equals softmax(logits) / T: you divided the "
                            "probabilities by T after the softmax, so they no longer sum to 1",
            "the temperature goes inside: softmax(logits / T)"),
    Mistake("dim", "your result sums to 1 along dimension {dim} of a batch of shape {shape}, "
                   "not along the last dimension (the classes)",
            "use dim=-1 (the class dimension) in softmax and in any max/sum"),
    Mistake("whole_batch", "your result sums to 1 over the whole batch of shape {shape}, not "
                           "over each row of classes",
            "reduce over the last dimension only: dim=-1, keepdim=True"),
]


def _softmax_case(check, got: torch.Tensor, key: dict, where: str, **tol) -> None:
    """Fail, naming the mistake that turns softmax(z / T) into `got`, unless it is right."""
    expected = key["expected"]
    if close(got, expected, **tol):
        return
    if tuple(got.shape) != tuple(expected.shape):
        fail(check.title, f"{where}: result has shape {tuple(got.shape)}, expected "
                          f"{tuple(expected.shape)} (the same shape as the logits)",
             "softmax keeps the shape: one probability per logit; do not sum or squeeze")
    name_mistake(check, got, key["mistakes"], where)
    g = got.detach().to(expected.dtype)
    if not torch.isfinite(g).all():
        fail(check.title, f"{where}: result contains nan or inf: {short(g)}",
             "exp of a large logit overflows: subtract the max logit (along the last "
             "dimension) before exp, or use F.softmax / log_softmax")
    sums = g.sum(-1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        fail(check.title, f"{where}: the probabilities do not sum to 1 along the last dimension "
                          f"(sums: {short(sums)})",
             "normalise by the sum of exp(logits / T) over the last dimension")
    cmp(check.title, got, expected, f"{where}: the result", atol=tol.get("atol", 1e-5),
        rtol=tol.get("rtol", 1e-4), hint="expected softmax(logits / T) along the last dimension")


def softmax_inputs(seed=None, dtype: str = "float32") -> dict:
    """Inputs of the softmax check: 1-D logits, batches, logits of magnitude 1e4, bad T.

    seed None: the fixed inputs of the notebook; an int: fresh values of the same kinds.
    dtype: "float32" (default) or "float64": the dtype of every logits tensor.
    """
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    g = check_softmax_with_temperature.rng(seed)
    if seed is None:
        z1 = torch.tensor([2.0, 1.0, 0.1, -1.0, 3.0])
    else:
        z1 = (torch.randn(5, generator=g) * 2).round(decimals=1)
    batches = [(torch.randn(shape, generator=g) * 3, T) for shape, T in (((3, 5), 2.0), ((2, 3, 4), 3.0))]
    big = torch.tensor([[1e4, 1e4 - 2.0, 0.0, -1e4], [-1e4, 5e3, 5e3 + 1.0, 0.0]])
    if seed is not None:  # the same near-ties at 1e4, in other places
        big = torch.stack([row[torch.randperm(4, generator=g)] for row in big])
    dt = getattr(torch, dtype)
    return {"z1": z1.to(dt), "Ts": (2.0, 0.5, 10.0), "batches": [(z.to(dt), T) for z, T in batches],
            "big": big.to(dt), "big_Ts": (1.0, 4.0),
            "bad_Ts": (0.0, -1.0, float("nan"), float("inf")), "dtype": dt}


def softmax_probe(fn, inp) -> dict:
    """Call fn on each input of ``softmax_inputs``; record the outcomes (plain data)."""
    z1 = inp["z1"]
    one_d = [_p.call(fn, z1.clone(), T)[0] for T in inp["Ts"]]
    batch = [_p.call(fn, z.clone(), T)[0] for z, T in inp["batches"]]
    big = [_p.call(fn, inp["big"].clone(), T)[0] for T in inp["big_Ts"]]
    grad = _p.call(fn, z1.clone().requires_grad_(), 2.0)[0]
    bad = [_p.call(fn, z1.clone(), T)[0] for T in inp["bad_Ts"]]
    return {"one_d": one_d, "batch": batch, "big": big, "grad": grad, "bad": bad}


def softmax_verdict(check, data, inp, key) -> str:
    """Check ``fn(logits, T)`` = softmax(logits / T) over the last dimension.

    logits: (..., C) float tensor; T: float > 0. Returns: (..., C) probabilities.
    Also checks numerical stability for logits of magnitude 1e4, that the logits are not
    modified in place, that gradients flow, and that T <= 0, nan or inf raise ValueError.
    Parts: values (with stability), gradient, errors.
    """
    title = check.title
    z1 = inp["z1"]
    with check.part("values"):
        for T, k, out in paired(inp["Ts"], key["one_d"], data["one_d"]):
            got = result(title, out)
            unchanged(title, out, ["logits"])
            if inp["dtype"] == torch.float64 and got.dtype in (torch.float32, torch.float16, torch.bfloat16):
                fail(title, f"float64 logits gave a {str(got.dtype).replace('torch.', '')} result: "
                            "your function lowers the precision of its input",
                     "do not convert the logits (no .float()); torch operations keep the input's dtype")
            _softmax_case(check, got, k, f"logits {short(z1)}, T={T}")
        for (z, T), k, out in paired(inp["batches"], key["batch"], data["batch"]):
            got = result(title, out)
            unchanged(title, out, ["logits"])
            _softmax_case(check, got, k, f"a batch of logits of shape {tuple(z.shape)}, T={T}")
        big = inp["big"]
        for T, k, out in paired(inp["big_Ts"], key["big"], data["big"]):
            got = result(title, out)
            g_ = got.detach().double()
            if tuple(g_.shape) == tuple(big.shape) and not torch.isfinite(g_).all():
                fail(title, f"logits of magnitude 1e4 (T={T}) give nan or inf: {short(g_)}; "
                            "exp(1e4) overflows",
                     "subtract the max of logits / T along the last dimension before exp "
                     "(softmax does not change), or use F.softmax / F.log_softmax")
            # float32 rounding of logits near 1e4 costs about 1e-3 in exp(s - logsumexp(s)):
            # a tolerance of 2e-3 accepts that and is still far from every mistake named
            _softmax_case(check, got, k, f"logits of magnitude 1e4, T={T}", atol=2e-3, rtol=1e-2)
    with check.part("gradient"):
        out = data["grad"]
        result(title, out)
        if not out["value"]["requires_grad"]:
            fail(title, "the result is cut off from autograd (no gradient flows to the logits)",
                 "use torch operations only: no .detach(), .item(), .numpy() or torch.tensor(...)")
    with check.part("errors"):
        rejects(title, inp["bad_Ts"], data["bad"], "T", "not (T > 0 and math.isfinite(T))",
                "T must be a finite number > 0")
    return "correct for 1-D and batched logits, stable at 1e4, rejects bad T"


check_softmax_with_temperature = Check("softmax_with_temperature", softmax_inputs, softmax_probe,
                                       softmax_verdict, SOFTMAX_MISTAKES,
                                       parts=("values", "gradient", "errors"))


# ------------------------------------------------------------------ entropy

ENTROPY_MISTAKES = [
    Mistake("negative", "your entropy is negative: the minus sign is missing",
            "H(p) = -sum p log p, which is >= 0"),
    Mistake("bits", "your entropy is in bits (log base 2), expected nats",
            "use the natural logarithm: torch.log, not torch.log2"),
    Mistake("mean", "your result is the mean over classes, not the sum",
            "H(p) = -sum over classes of p log p: use .sum(-1), not .mean(-1)"),
]


def entropy_inputs(seed=None) -> dict:
    """Inputs of the entropy check: one distribution, a batch with zeros, a 3-D batch.

    seed None: the fixed inputs of the notebook; an int: fresh values of the same kinds
    (mixed, uniform, one-hot and zero-containing rows).
    """
    g = check_entropy.rng(seed)
    p1 = torch.tensor([0.5, 0.25, 0.125, 0.125])
    batch = torch.tensor([[0.5, 0.25, 0.125, 0.125, 0.0],
                          [0.2, 0.2, 0.2, 0.2, 0.2],
                          [1.0, 0.0, 0.0, 0.0, 0.0],
                          [0.7, 0.1, 0.1, 0.05, 0.05]])
    if seed is not None:
        p1 = torch.softmax(torch.randn(4, generator=g) * 2, dim=-1)
        batch = torch.stack([row[torch.randperm(5, generator=g)] for row in batch])
    batch3 = torch.softmax(torch.randn(2, 3, 6, generator=g) * 2, dim=-1)
    return {"cases": [(p1, "p = " + short(p1)),
                      (batch, f"a batch of shape {tuple(batch.shape)} (rows: mixed, uniform, "
                              "one-hot, with zeros)"),
                      (batch3, f"a batch of shape {tuple(batch3.shape)}")]}


def entropy_probe(fn, inp) -> dict:
    """Call fn on each distribution of ``entropy_inputs``; record the outcomes."""
    return {"cases": [_p.call(fn, p.clone())[0] for p, _ in inp["cases"]]}


def entropy_verdict(check, data, inp, key) -> str:
    """Check ``fn(p)`` = -sum p log p in nats over the last dimension, with 0 log 0 = 0.

    p: (..., C) probabilities. Returns: (...) entropies (the last dimension summed away).
    """
    for (p, where), k, out in paired(inp["cases"], key["cases"], data["cases"]):
        got = result(check.title, out)
        unchanged(check.title, out, ["probabilities"])
        expected = k["expected"]
        if close(got, expected):
            continue
        if tuple(got.shape) != tuple(expected.shape):
            if p.dim() > 1 and got.dim() == 0:
                what = "you summed over the whole batch"
            elif tuple(got.shape) == tuple(expected.shape) + (1,):
                what = "you kept the class dimension (keepdim=True)"
            else:
                what = "you summed over a dimension other than the last"
            fail(check.title, f"{where}: result has shape {tuple(got.shape)}, expected "
                              f"{tuple(expected.shape)}: {what}",
                 "sum over the last dimension only: (...).sum(dim=-1)")
        gf = got.detach().to(expected.dtype)
        if torch.isnan(gf).any():
            fail(check.title, f"{where}: result contains nan: {short(gf)}; a probability of 0 "
                              "gives 0 * log(0) = 0 * (-inf) = nan",
                 "by convention 0 log 0 = 0: use torch.xlogy(p, p), or torch.special.entr, "
                 "or replace the nan terms by 0")
        name_mistake(check, got, k["mistakes"], where)
        cmp(check.title, got, expected, f"{where}: the entropy",
            hint="H(p) = -sum_i p_i log p_i over the last dimension, in nats")
    return f"H(uniform over 5) = {math.log(5):.4f} nats, H(one-hot) = 0"


check_entropy = Check("entropy", entropy_inputs, entropy_probe, entropy_verdict,
                         ENTROPY_MISTAKES)


# ------------------------------------------------------------------ gradient scale

GRADIENT_MISTAKES = [
    Mistake("no_T", "your gradient does not change with T",
            "divide both the student's and the teacher's logits by T before the softmax", keyed=False),
    Mistake("wrt_scaled", "this is the gradient with respect to logits / T, which shrinks like "
                          "1/T, not the gradient with respect to the logits",
            "call requires_grad_() on the student logits themselves, then divide by T inside "
            "the loss"),
    Mistake("loss_value", "these are the ratios of the loss values, not of the gradient norms",
            "call loss.backward() and return the norm of the logits' .grad"),
    Mistake("ignores_scale", "scale_by_T2=True changes nothing",
            "multiply the loss by T**2 when scale_by_T2 is True", keyed=False),
    Mistake("scale_by_T", "you multiplied the loss by T, not T**2",
            "the gradient shrinks like 1/T**2, so the loss needs a factor T**2", keyed=False),
]
TS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


def gradient_inputs(seed=None) -> dict:
    """Zero-mean student and teacher logits, (8, 10) each (seed None: the notebook's)."""
    g = check_gradient_scale.rng(seed)
    s = torch.randn(8, 10, generator=g) * 2
    t = torch.randn(8, 10, generator=g) * 4
    return {"s": s - s.mean(-1, keepdim=True), "t": t - t.mean(-1, keepdim=True), "Ts": TS}


def gradient_probe(fn, inp) -> dict:
    """Call fn(student_logits, teacher_logits, T, scale_by_T2) at every T, both scalings."""
    s, t = inp["s"], inp["t"]
    return {str(scale): [_p.call(fn, s.clone(), t.clone(), T, scale)[0] for T in inp["Ts"]]
            for scale in (False, True)}


def _measure(title: str, outs, Ts, scale: bool) -> list[float]:
    """The gradient norms the student's function returned (recorded), checked one by one."""
    got = []
    for T, out in paired(Ts, outs):
        raised(title, out)
        v = out["value"]
        if v.get("kind") == "tensor":
            if len(v["values"]) != 1:
                fail(title, f"expected one number (the gradient norm), got a tensor of shape "
                            f"{tuple(v['shape'])}",
                     "return the norm of the whole gradient: logits.grad.norm().item()")
            x = v["values"][0]
        elif v.get("kind") == "number":
            x = v["value"]
        else:
            fail(title, f"expected a number (the gradient norm), got {type_name(v)}",
                 "return logits.grad.norm().item()")
        if not math.isfinite(x) or x <= 0:
            fail(title, f"T={T}, scale_by_T2={scale}: got {x}, expected a finite norm > 0",
                 "make a copy of the student logits with requires_grad_(), compute the loss, "
                 "call .backward() and return the norm of .grad")
        unchanged(title, out, ["logits", "teacher logits"])
        got.append(float(x))
    return got


def _fmt(xs) -> str:
    return "[" + ", ".join(f"{x:.4g}" for x in xs) + "]"


def _ratios(xs) -> list:
    return [x / xs[0] for x in xs]


def _same_ratios(got, ref, rtol: float = 0.02) -> bool:
    return len(got) == len(ref) and all(abs(a - b) <= rtol * abs(b) for a, b in zip(got, ref))


def gradient_verdict(check, data, inp, key) -> str:
    """Check ``fn(student_logits, teacher_logits, T, scale_by_T2)`` measures the soft-loss gradient.

    fn returns the norm of d(soft loss)/d(student_logits) (a float) for logits (N, C). The
    check measures it at T = 1..32 on fixed zero-mean logits and compares the ratios
    g(T) / g(1) with the key's: about 1/T^2 at high T without scaling, about constant with
    the loss multiplied by T^2. The batch reduction (mean or sum) is free: only ratios count.
    """
    Ts = inp["Ts"]
    r = _ratios(_measure(check.title, data["False"], Ts, False))
    want = _ratios(key["unscaled"])
    if not _same_ratios(r, want):
        head = (f"without T^2 scaling, your ratios g(T)/g(1) at T = {_fmt(Ts)} are {_fmt(r)}; "
                f"expected {_fmt(want)}")
        for name, ref in [("no_T", [1.0] * len(Ts))] + [(n, _ratios(v)) for n, v, _ in key["mistakes"]]:
            if _same_ratios(r, ref):
                fail(check.title, f"{head}: {check.mistake(name).what}", check.mistake(name).hint)
        fail(check.title, head, "soft loss = KL(softmax(teacher/T) || softmax(student/T)) "
                                "(or cross-entropy with the soft targets); take its gradient "
                                "with respect to the student logits and return its norm")
    got2 = _measure(check.title, data["True"], Ts, True)
    r2 = _ratios(got2)
    want2 = _ratios(key["scaled"])
    if not _same_ratios(r2, want2):
        head = (f"with scale_by_T2=True, your ratios g(T)/g(1) at T = {_fmt(Ts)} are "
                f"{_fmt(r2)}; expected {_fmt(want2)}")
        for name, ref in (("ignores_scale", r), ("scale_by_T", [v * T for v, T in zip(r, Ts)])):
            if _same_ratios(r2, ref):
                fail(check.title, f"{head}: {check.mistake(name).what}", check.mistake(name).hint)
        fail(check.title, head, "multiply the soft loss by T**2 before calling backward()")
    got1 = _measure(check.title, data["False"], Ts, False)
    if abs(got2[0] - got1[0]) > 1e-4 * abs(got1[0]):
        fail(check.title, f"at T=1 the scaled and unscaled gradient norms differ ({got2[0]:.6g} "
                          f"vs {got1[0]:.6g}); T**2 = 1 there",
             "scale_by_T2 should only multiply the loss by T**2")
    return (f"doubling T from {Ts[-2]:g} to {Ts[-1]:g} scales the gradient by "
            f"{r[-1] / r[-2]:.3f} (1/T^2 law: 0.25), with T^2 scaling by {r2[-1] / r2[-2]:.3f}")


check_gradient_scale = Check("gradient_scale", gradient_inputs, gradient_probe,
                                gradient_verdict, GRADIENT_MISTAKES)
