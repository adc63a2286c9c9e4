"""Shared machinery of the autograder checks: calling student code, comparing, reporting.

A check either prints one pass line (``passed``) or raises ``AssertionError`` with what is
wrong (got vs expected, shapes) and a hint. Student code that still raises
``NotImplementedError`` fails with "not implemented yet".
"""
from __future__ import annotations

import torch

PASS_MARK = "PASSED"


def fail(check: str, what: str, hint: str = "") -> None:
    """Raise the AssertionError of a failed check: '<check>: <what>' and an optional hint."""
    msg = f"{check}: {what}"
    if hint:
        msg += f"\n  Hint: {hint}"
    raise AssertionError(msg)


def call(check: str, fn, *args, **kwargs):
    """Call the student's `fn`; turn NotImplementedError and crashes into clear failures."""
    if not callable(fn):
        fail(check, f"expected a function, got {type(fn).__name__}",
             "pass the function itself, e.g. check(my_fn), not check(my_fn(...))")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        fail(check, "not implemented yet",
             "write your code in the exercise cell above and remove `raise NotImplementedError`")
    except AssertionError:
        raise
    except Exception as e:  # the student's code crashed: say where and with what
        shapes = ", ".join(f"{tuple(a.shape)}" for a in args if torch.is_tensor(a))
        fail(check, f"your function raised {type(e).__name__}: {e}"
             + (f" (called with tensors of shapes {shapes})" if shapes else ""),
             "run the exercise cell again and read the traceback of a small example")


def as_tensor(check: str, value, what: str = "the result") -> torch.Tensor:
    """Insist on a tensor (not a float, list or numpy array)."""
    if not torch.is_tensor(value):
        fail(check, f"{what} should be a torch.Tensor, got {type(value).__name__}",
             "use torch operations all the way and return the tensor")
    return value


def cmp(check: str, got, expected: torch.Tensor, what: str = "the result",
        atol: float = 1e-5, rtol: float = 1e-4, hint: str = "") -> None:
    """Compare a student tensor with the expected one: shape first, then values.

    On a mismatch the message shows got vs expected shapes, or the max abs difference and
    the first few values of each (Karpathy's cmp: exact / approx / maxdiff).
    """
    got = as_tensor(check, got, what)
    expected = expected.detach()
    if tuple(got.shape) != tuple(expected.shape):
        fail(check, f"{what} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}",
             hint or "check which dimension you reduce or sum over")
    got = got.detach().to(expected.dtype)
    if not torch.isfinite(got).all() and torch.isfinite(expected).all():
        fail(check, f"{what} contains nan or inf: {short(got)}",
             hint or "look for an overflow (exp of a large number) or a log of zero")
    if not torch.allclose(got, expected, atol=atol, rtol=rtol):
        maxdiff = (got - expected).abs().max().item()
        fail(check, f"{what} is wrong: max abs difference {maxdiff:.3g}\n"
                    f"    got      {short(got)}\n    expected {short(expected)}", hint)


def short(t: torch.Tensor, n: int = 6) -> str:
    """The first n values of a tensor, rounded, for messages."""
    flat = t.detach().flatten()
    vals = ", ".join(f"{v:.4g}" for v in flat[:n].tolist())
    return f"[{vals}{', ...' if flat.numel() > n else ''}] (shape {tuple(t.shape)})"


def passed(check: str, detail: str = "") -> None:
    """Print the one-line pass message of a check."""
    print(f"{PASS_MARK} {check}" + (f": {detail}" if detail else ""))
