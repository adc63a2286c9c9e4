"""The probe side of the checks: call the student's object and return plain data only.

A check is a *probe* and a *verdict* (see ``_registry``). The probe runs where the student's
code runs (the notebook's kernel; in grading, a sandboxed one that holds no answer key and
no reference implementation): it calls the student's object on given inputs and records
what happened as plain data (dicts, lists, str, int, float, bool, None): returned values as
float64 lists with dtype and shape, raised exception types, gradients, whether the inputs
were changed. The verdict reads only that data, so nothing the student's code patches or
returns (a patched ``torch.allclose``, a tensor subclass that lies) can do more than produce
numbers, and only correct numbers pass.

Every call of student code goes through ``call``: while it runs the course's own helpers
refuse to work (``kdlab.runtime.checking``), and whatever it raises, ``BaseException``
subclasses included, is recorded rather than let through (a ``KeyboardInterrupt`` from the
grader's time limit still stops the cell).

``encode`` / ``decode`` turn inputs and answer keys (tensors with their dtype, tuples, dtypes)
into JSON-safe data and back.
"""
from __future__ import annotations

import json

import torch

from ..runtime import checking

MIME = "application/vnd.kdlab.probe+json"
MAX_TEXT = 500  # characters kept of an exception message or a repr


def text(s, limit: int = MAX_TEXT) -> str:
    """A string cut to `limit` characters (for exception messages and reprs); never raises."""
    try:
        s = str(s)
    except BaseException:  # noqa: BLE001 - a hostile __str__
        return "?"
    return s if len(s) <= limit else s[:limit] + " ..."


def tensor(t) -> dict:
    """Plain data of a tensor: dtype, shape, requires_grad, values (float64 list, flattened).

    Reads the tensor's own storage with torch functions disabled, so a subclass's
    ``__torch_function__`` cannot change what is recorded.
    """
    with torch._C.DisableTorchFunction():
        base = torch.Tensor.detach(t)
        dtype = str(base.dtype).replace("torch.", "")
        shape = list(base.shape)
        if base.is_complex():
            base = torch.view_as_real(base)
        vals = base.to("cpu", torch.float64).reshape(-1).tolist() if base.numel() <= 1_000_000 else []
        return {"kind": "tensor", "dtype": dtype, "shape": shape, "values": vals,
                "requires_grad": bool(t.requires_grad), "subclass": type(t).__name__
                if type(t) is not torch.Tensor and not isinstance(t, torch.nn.Parameter) else ""}


def value(x) -> dict:
    """Plain data of any value a student's function may return."""
    if torch.is_tensor(x):
        return tensor(x)
    if isinstance(x, bool):
        return {"kind": "bool", "value": x}
    if isinstance(x, (int, float)):
        return {"kind": "number", "value": float(x), "type": type(x).__name__}
    if x is None:
        return {"kind": "none"}
    if isinstance(x, (tuple, list)) and len(x) <= 16:
        return {"kind": type(x).__name__, "items": [value(v) for v in x]}
    return {"kind": "other", "type": text(type(x).__name__, 100), "repr": text(_repr(x), 200)}


def _repr(x) -> str:
    try:
        return repr(x)
    except BaseException:  # noqa: BLE001 - a hostile __repr__
        return "?"


def call(fn, *args, **kwargs) -> tuple[dict, object]:
    """Call student code; return (plain outcome, the raw result or None).

    outcome: {"callable": bool, "raised": None | {"type", "message", "bases"}, "value":
    value(result), "changed": [[argument index, what], ...]} where "changed" lists the tensor
    arguments the call modified (their values, requires_grad flag or .grad). The raw result
    is for the probe's own further use (autograd, calling a returned module); it never
    reaches a verdict.
    """
    out = {"callable": callable(fn), "raised": None, "value": {"kind": "none"}}
    if not callable(fn):
        out["type"] = text(type(fn).__name__, 100)
        return out, None
    result = None
    before = [(i, a, snapshot(a)) for i, a in enumerate(args) if torch.is_tensor(a)]
    try:
        with checking():
            result = fn(*args, **kwargs)
            out["value"] = value(result)
    except BaseException as e:  # noqa: BLE001 - the student's code may raise anything
        if type(e) is KeyboardInterrupt:  # the grader's time limit: stop the cell
            raise
        out["raised"] = raised(e)
        result = None
    out["changed"] = [[i, w] for i, a, snap in before for w in changes(snap, a)]
    return out, result


def call_with_grads(fn, s: torch.Tensor, t: torch.Tensor, *rest) -> dict:
    """fn(s, t, *rest) on fresh leaves of s and t (both require grad; tensors of `rest` are
    cloned): the outcome of ``call``, plus under "grads" the gradients of a scalar result
    with respect to s and t (the student's and the teacher's logits)."""
    s, t = s.clone().requires_grad_(True), t.clone().requires_grad_(True)
    out, res = call(fn, s, t, *[a.clone() if torch.is_tensor(a) else a for a in rest])
    if torch.is_tensor(res) and res.dim() == 0 and res.requires_grad:
        out["grads"] = grads(res, [s, t])
    return out


def raised(e: BaseException) -> dict:
    """Plain data of an exception: its type's name, message and the names of its bases."""
    return {"type": text(type(e).__name__, 100), "message": text(e),
            "bases": [text(c.__name__, 100) for c in type(e).__mro__]}


def grads(outputs, inputs) -> list:
    """Gradients of the scalar tensor `outputs` w.r.t. each of `inputs` (None if unused)."""
    try:
        with checking():
            gs = torch.autograd.grad(outputs, inputs, allow_unused=True)
    except BaseException as e:  # noqa: BLE001 - a graph the student broke
        if type(e) is KeyboardInterrupt:
            raise
        return [{"kind": "error", "type": text(type(e).__name__, 100), "message": text(e)}] * len(inputs)
    return [tensor(g) if g is not None else {"kind": "none"} for g in gs]


def snapshot(t: torch.Tensor) -> dict:
    """What a check needs to see whether student code changed an input tensor: a copy."""
    return {"values": t.detach().clone(), "requires_grad": t.requires_grad, "grad": t.grad}


def changes(before: dict, t: torch.Tensor) -> list:
    """How student code changed an input tensor since `snapshot`: a list of words."""
    out = []
    now = t.detach()
    if now.shape != before["values"].shape or not torch.equal(now, before["values"]):
        out.append("values")
    if t.requires_grad != before["requires_grad"]:
        out.append("requires_grad")
    if t.grad is not before["grad"]:
        out.append("grad")
    return out


# ------------------------------------------------------------------ inputs and keys as JSON

_TAG = "__kd__"


def encode(x):
    """JSON-safe data of inputs or an answer key: tensors keep dtype, shape and exact values.

    Handles tensors, dtypes, tuples, lists, dicts with string keys, numbers, str, bool, None.
    """
    if torch.is_tensor(x):
        t = x.detach().cpu()
        return {_TAG: "tensor", "dtype": str(t.dtype).replace("torch.", ""),
                "shape": list(t.shape), "values": t.reshape(-1).tolist()}
    if isinstance(x, torch.dtype):
        return {_TAG: "dtype", "name": str(x).replace("torch.", "")}
    if isinstance(x, tuple):
        return {_TAG: "tuple", "items": [encode(v) for v in x]}
    if isinstance(x, list):
        return [encode(v) for v in x]
    if isinstance(x, dict):
        if not all(isinstance(k, str) for k in x):
            raise TypeError(f"encode: dict keys must be str, got {[type(k).__name__ for k in x]}")
        return {k: encode(v) for k, v in x.items()}
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    raise TypeError(f"encode: cannot encode a {type(x).__name__}")


def decode(x):
    """The inverse of ``encode``."""
    if isinstance(x, list):
        return [decode(v) for v in x]
    if isinstance(x, dict):
        tag = x.get(_TAG)
        if tag == "tensor":
            dtype = getattr(torch, str(x["dtype"]))
            return torch.tensor(x["values"], dtype=dtype).reshape([int(s) for s in x["shape"]])
        if tag == "dtype":
            return getattr(torch, str(x["name"]))
        if tag == "tuple":
            return tuple(decode(v) for v in x["items"])
        return {k: decode(v) for k, v in x.items()}
    return x


def to_json(data) -> str:
    """The JSON text of probe data (nan and inf allowed)."""
    return json.dumps(data, allow_nan=True)


def from_json(text_: str):
    """Plain data back from JSON text."""
    return json.loads(text_)
