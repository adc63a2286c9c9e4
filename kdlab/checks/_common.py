"""The verdict side of the checks: compare recorded outcomes with the answer key, name mistakes.

A verdict reads only plain data: what the probe recorded (``_probe``) and the check's answer
key (the right values and each named mistake's values on the same inputs; see
``_registry.answer_key``). It never computes an answer itself. It either returns the detail
of the one-line pass message, or raises ``AssertionError`` (``fail``) with what is wrong
(got vs expected, shapes), the mistake it recognised, and a hint. Student code that still
raises ``NotImplementedError`` fails with "not implemented yet".
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import torch

PASS_MARK = "PASSED"


@dataclass(frozen=True)
class Mistake:
    """A common wrong answer of an exercise: its key name, what it is, how to fix it.

    `what` and `hint` may hold ``{fields}`` filled from the answer key (e.g. ``{dim}``).
    keyed: True when the answer key holds this mistake's values (an entry [name, values,
    fields] that the verdict compares with the student's); False when the verdict recognises
    it from the probe's data alone (ratios, structure), with no entry in the key.
    """
    name: str
    what: str
    hint: str
    keyed: bool = True


def rng(check: str, seed=None, part: str = "") -> torch.Generator:
    """The random generator of a check's inputs: seed None gives the notebook's fixed cases,
    an int the grader's fresh ones; each check (and part) draws from its own stream.

    check: the check's name; part: a sub-stream name, for a second independent draw.
    """
    key = f"{check}/{part}" + ("" if seed is None else f"/seed={int(seed)}")
    return torch.Generator().manual_seed(zlib.crc32(key.encode()) & 0x7FFFFFFF)


def fail(check: str, what: str, hint: str = "") -> None:
    """Raise the AssertionError of a failed check: '<check>: <what>' and an optional hint."""
    msg = f"{check}: {what}"
    if hint:
        msg += f"\n  Hint: {hint}"
    raise AssertionError(msg)


def passed(check: str, detail: str = "") -> None:
    """Print the one-line pass message of a check."""
    print(f"{PASS_MARK} {check}" + (f": {detail}" if detail else ""))


def close(got: torch.Tensor, ref: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    """True when `got` has the shape of `ref` and finite values close to it (ref's dtype)."""
    if not torch.is_tensor(got) or tuple(got.shape) != tuple(ref.shape):
        return False
    got = got.detach().to(ref.dtype)
    return bool(torch.isfinite(got).all()) and bool(torch.allclose(got, ref, atol=atol, rtol=rtol))


def short(t: torch.Tensor, n: int = 6) -> str:
    """The first n values of a tensor, rounded, for messages."""
    flat = t.detach().flatten()
    vals = ", ".join(f"{v:.4g}" for v in flat[:n].tolist())
    return f"[{vals}{', ...' if flat.numel() > n else ''}] (shape {tuple(t.shape)})"


def cmp(check: str, got: torch.Tensor, expected: torch.Tensor, what: str = "the result",
        atol: float = 1e-5, rtol: float = 1e-4, hint: str = "") -> None:
    """Fail unless `got` matches `expected`: shape first, then values (got vs expected, maxdiff)."""
    if tuple(got.shape) != tuple(expected.shape):
        fail(check, f"{what} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}",
             hint or "check which dimension you reduce or sum over")
    g = got.detach().to(expected.dtype)
    if not torch.isfinite(g).all() and torch.isfinite(expected).all():
        fail(check, f"{what} contains nan or inf: {short(g)}",
             hint or "look for an overflow (exp of a large number) or a log of zero")
    if not torch.allclose(g, expected, atol=atol, rtol=rtol):
        maxdiff = (g - expected).abs().max().item()
        fail(check, f"{what} is wrong: max abs difference {maxdiff:.3g}\n"
                    f"    got      {short(g)}\n    expected {short(expected)}", hint)


def name_mistake(check, got: torch.Tensor, candidates, where: str = "", **tol) -> None:
    """Fail with the first mistake of `candidates` whose values `got` matches, if any.

    check: the Check (its title and its mistakes table); candidates: the answer key's list of
    [mistake name, values, {fields}]; where: which input, prefixed to the message.
    """
    for name, ref, fields in candidates:
        if close(got, ref, **tol):
            m = check.mistake(name)
            fail(check.title, (f"{where}: " if where else "") + m.what.format(**fields),
                 m.hint.format(**fields))


# ------------------------------------------------------------------ reading probe data

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
           "float64": torch.float64, "int64": torch.int64, "int32": torch.int32,
           "int16": torch.int16, "int8": torch.int8, "uint8": torch.uint8, "bool": torch.bool}


def type_name(v: dict) -> str:
    """The Python type name of a value recorded by ``_probe.value``."""
    kind = v.get("kind")
    return {"tensor": "Tensor", "bool": "bool", "none": "NoneType", "list": "list",
            "tuple": "tuple"}.get(kind) or str(v.get("type", kind))


def recorded(v: dict) -> torch.Tensor:
    """The tensor recorded by ``_probe.tensor``: its values, shape and dtype (float64 if unknown)."""
    vals = torch.tensor([float(x) for x in v["values"]], dtype=torch.float64)
    out = vals.reshape([int(s) for s in v["shape"]])
    dtype = _DTYPES.get(str(v.get("dtype")))
    return out.to(dtype) if dtype is not None else out


def raised(check: str, out: dict, shapes: str = "", where: str = "") -> None:
    """Fail if the recorded call was not possible or raised.

    shapes: the argument shapes, for the message; where: which input (prefixes the message).
    """
    if not out.get("callable", True):
        fail(check, f"expected a function, got {out.get('type', '?')}",
             "pass the function itself, e.g. check(my_fn), not check(my_fn(...))")
    r = out.get("raised")
    if not r:
        return
    if r["type"] == "NotImplementedError":
        fail(check, "not implemented yet",
             "write your code in the exercise cell above and remove `raise NotImplementedError`")
    if r["type"] == "HelperInCheck":
        fail(check, f"your function calls a course helper: {r['message']}",
             "an exercise must be your own code: write its steps with torch operations")
    if r["type"] == "AssertionError":
        fail(check, f"your function raised AssertionError: {r['message']}",
             "an assert in your code failed on the check's inputs: read its message")
    if where:
        fail(check, f"{where}: your function raised {r['type']}: {r['message']}",
             "run the exercise cell again on a small example of this kind and read the traceback")
    fail(check, f"your function raised {r['type']}: {r['message']}"
         + (f" (called with tensors of shapes {shapes})" if shapes else ""),
         "run the exercise cell again and read the traceback of a small example")


def expects_value_error(check: str, out: dict, what: str, hint: str,
                        returned_hint: str | None = None) -> None:
    """Fail unless the recorded call raised ValueError (or a subclass).

    what: the bad input, for the message ("T=0.0"); hint: for another exception (and, unless
    returned_hint is given, for a call that returned instead of raising).
    """
    r = out.get("raised")
    if r and "ValueError" in r.get("bases", []):
        return
    if r and r["type"] == "NotImplementedError":
        fail(check, "not implemented yet", "write your code in the exercise cell above")
    if r:
        fail(check, f"{what} raised {r['type']}: {r['message']}; expected a ValueError", hint)
    v = out.get("value", {})
    shown = short(recorded(v)) if v.get("kind") == "tensor" else v.get("repr", type_name(v))
    fail(check, f"{what} should raise ValueError, but your function returned {shown}",
         returned_hint or hint)


def rejects(check: str, bads, outs, name: str, guard: str, must: str) -> None:
    """Fail unless every call with a bad value of the argument `name` raised ValueError.

    bads: the bad values, in the order of outs (their recorded calls); guard: the test to start
    with ("T <= 0"); must: what the argument must be ("T must be > 0"), for the hints.
    """
    for bad, out in paired(bads, outs):
        expects_value_error(check, out, f"{name}={bad}",
                            f"start with: if {guard}: raise ValueError(...)",
                            f"{must}; start with: if {guard}: "
                            f"raise ValueError(f'{must}, got {{{name}}}')")


def result(check: str, out: dict, what: str = "the result", shapes: str = "") -> torch.Tensor:
    """The tensor a recorded call returned; fail if the call raised or returned no tensor."""
    raised(check, out, shapes)
    v = out["value"]
    if v.get("kind") != "tensor":
        fail(check, f"{what} should be a torch.Tensor, got {type_name(v)}",
             "use torch operations all the way and return the tensor")
    return recorded(v)


_CHANGE_HINTS = {
    "values": "an in-place operation (such as /=, +=, .div_(), .clamp_() or x[...] = ...) "
              "changed it: compute a new tensor instead",
    "requires_grad": "you called requires_grad_() on the caller's tensor: work on a copy, "
                     "e.g. z = x.detach().clone().requires_grad_()",
    "grad": "its .grad was set or changed (backward() reached the caller's tensor): work on a "
            "copy, e.g. z = x.detach().clone().requires_grad_()",
}


def unchanged(check: str, out: dict, names) -> None:
    """Fail if the recorded call changed one of its tensor arguments (values, flag or .grad).

    names: the argument names in call order, for the message.
    """
    for i, what in out.get("changed", []):
        arg = names[i] if 0 <= int(i) < len(names) else f"argument {i}"
        label = {"values": "its values", "requires_grad": "its requires_grad flag",
                 "grad": "its .grad"}.get(what, str(what))
        fail(check, f"your function changed the {arg} passed to it ({label})",
             _CHANGE_HINTS.get(what, "leave the caller's tensors as they are"))


def paired(*columns):
    """zip(...) of expected cases, key entries and recorded outcomes, failing unless every
    column has the same length.

    A verdict must never pass on probe data with cases left out (a probe or its output that
    was tampered with), so it pairs inputs, keys and outcomes through this, never through zip.
    """
    cols = [list(c) if isinstance(c, (list, tuple)) else None for c in columns]
    n = len(cols[0]) if cols[0] is not None else 0
    if any(c is None or len(c) != n for c in cols):
        got = [None if c is None else len(c) for c in cols]
        fail("check", f"the probe's data is incomplete (lengths {got} for {n} cases): the check "
                      "cell or its output was tampered with", "run the check cell as it is in the lab")
    return zip(*cols)
