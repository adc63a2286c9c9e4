"""A scalar loss judged against its key: one verdict for the loss exercises of every lab.

A loss exercise (``kd_loss``, ``hint_loss``, ``dkd_loss``, ``token_kd_loss``) returns a scalar
tensor whose value, and whose gradient with respect to the student's side, the answer key
holds; the teacher's side must get no gradient. ``ScalarLoss`` carries the words one exercise
uses in its messages; its methods are the steps of the verdict, each failing with the message
of the first thing wrong:

- ``outcome``: the call returned a scalar tensor (not one value per example) that the
  student's side reaches through autograd, without changing its arguments;
- ``named``: the mistake whose key values (gradients or values) the student's match;
- ``gradient``: the gradient with respect to the student's side equals the key's;
- ``no_teacher_gradient``: the teacher's side got no gradient;
- ``value_in``: the value is one of the key's forms (KL, cross-entropy, ...);
- ``confident``: on confident logits (a softmax that underflows) the value and the gradient
  stay finite and the gradient is the key's.

A lab's verdict calls them in the order its messages need (e.g. a wrong gradient is named
before the value is judged), so no lab writes the steps again.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ._common import close, cmp, fail, name_mistake, raised, recorded, type_name, unchanged

# the parts a scalar-loss verdict judges one by one (Check.part), in this order: the student's
# gradient (the mistake named), no gradient into the teacher, the value, confident logits,
# bad arguments rejected; a call that raises or returns no scalar fails them all
SCALAR_LOSS_PARTS = ("gradient", "teacher", "value", "stable", "errors")
TENSOR_HINT = "use torch operations all the way and return the tensor"
DETACHED_HINT = "do not call .detach(), .item() or torch.no_grad() on the student's side"


@dataclass(frozen=True)
class ScalarLoss:
    """The words of one scalar-loss exercise's messages.

    The exercise's function is named as its check (``check.name``, e.g. "kd_loss").
    args: its tensor arguments' names, in call order; scalar_hint:
    the hint for a result that is not a scalar; student: what the student's gradient flows
    to ("student_logits"); per_example: the hint for a result of one value per example, if
    that has a message of its own; tensor_hint: the hint for a result that is no
    tensor; no_gradient: the message for a loss cut off from the student's side.
    """
    args: tuple
    scalar_hint: str
    per_example: str | None = None
    tensor_hint: str = TENSOR_HINT
    no_gradient: str = "the loss does not depend on student_logits (no gradient flows back)"
    per_example_words: bool = False  # "returned one value per example for ..." (else "shape (N,)")

    def outcome(self, check, out: dict, of: str, shapes: str = "", where: str = "",
                grads=None, batch: int | None = None) -> tuple:
        """(value (), gradient w.r.t. the student's side, gradient w.r.t. the teacher's or
        None) of a recorded call, or fail.

        of: the inputs, for the shape message ("for logits of shape (6, 5)"); shapes: the
        argument shapes, for a call that raised; where: a prefix naming the setting; grads:
        the recorded gradients (default: the call's own "grads"; False: only require that
        the result requires grad); batch: N, to tell one value per example apart.
        """
        title, fn, at = check.title, check.name, (f"{where}: " if where else "")
        raised(title, out, shapes, where)
        unchanged(title, out, list(self.args))
        v = out["value"]
        if v.get("kind") != "tensor":
            fail(title, f"{at}{fn}(...) should be a torch.Tensor, got {type_name(v)}",
                 self.tensor_hint)
        shape = tuple(v["shape"])
        if self.per_example and shape == (batch,):
            fail(title, f"{at}{fn} returned one value per example, shape {shape}; "
                        "expected a scalar, shape ()", self.per_example)
        if shape != ():
            what = ("one value per example" if self.per_example_words and shape == (batch,)
                    else f"shape {shape}")
            fail(title, f"{at}{fn} returned {what} {of}; expected a scalar, shape ()",
                 self.scalar_hint)
        grads = out.get("grads") if grads is None else grads
        if not v.get("requires_grad") or (grads is not False and (
                not grads or grads[0].get("kind") != "tensor")):
            fail(title, at + self.no_gradient, DETACHED_HINT)
        if grads is False:
            return recorded(v), None, None
        gt = recorded(grads[1]) if grads[1].get("kind") == "tensor" else None
        return recorded(v), recorded(grads[0]), gt

    @staticmethod
    def named(check, got: torch.Tensor, right: torch.Tensor, mistakes, where: str = "",
              **tol) -> None:
        """Fail with the mistake of the key whose values `got` matches, if `got` is not right."""
        if not close(got, right, **tol):
            name_mistake(check, got, mistakes, where, **tol)

    @staticmethod
    def gradient(check, got: torch.Tensor, right: torch.Tensor, what: str, hint: str, **tol) -> None:
        """Fail unless the student's gradient `got` is the key's (shape, finite, values)."""
        cmp(check.title, got, right, what, hint=hint, **tol)

    @staticmethod
    def no_teacher_gradient(check, gt: torch.Tensor | None, what: str, hint: str) -> None:
        """Fail if the teacher's side received a non-zero gradient."""
        if gt is not None and gt.abs().max().item() > 0:
            fail(check.title, what, hint)

    @staticmethod
    def value_in(got: torch.Tensor, forms, **tol) -> bool:
        """True when the value is one of the key's right forms (KL, cross-entropy, ...)."""
        return any(close(got, f, **tol) for f in forms)

    @classmethod
    def value(cls, check, got: torch.Tensor, forms, what: str, hint: str, **tol) -> None:
        """Fail with (what, hint) unless the value is one of the key's right forms."""
        if not cls.value_in(got, forms, **tol):
            fail(check.title, what, hint)

    @staticmethod
    def confident(check, val: torch.Tensor, gs: torch.Tensor, nonfinite: tuple,
                  right: torch.Tensor | None = None, wrong: tuple = (), **tol) -> None:
        """Fail with nonfinite = (what, hint) if the value or the gradient on confident logits
        is nan or inf; with wrong = (what, hint) if the gradient is not `right` (if given)."""
        if not (bool(torch.isfinite(val).all()) and bool(torch.isfinite(gs).all())):
            fail(check.title, *nonfinite)
        if right is not None and not close(gs, right, **tol):
            fail(check.title, *wrong)
