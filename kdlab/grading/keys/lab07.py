"""Answer keys of Lab 07 (distilling a language model): token-level KD and the KD trainer.

The reference ``token_kd_loss`` (GKD's generalised Jensen-Shannon divergence per token, also
the loss of the notebook's experiments when run by the tests), the common mistakes of the
exercise as losses, and the reference trainer's loss on the check's tiny models.
"""
from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

from kdlab.checks.lab07 import (RNG_LOCK, check_distill_trainer, check_on_policy_batch,
                                check_token_kd_loss)

from ._table import key_of


def _check_args(T, beta) -> tuple:
    for name, v in (("T", T), ("beta", beta)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) and not (
                torch.is_tensor(v) and v.dim() == 0):
            raise TypeError(f"{name} must be a real number, got {type(v).__name__} {v!r}")
    T, beta = float(T), float(beta)
    if not (T > 0 and math.isfinite(T)):
        raise ValueError(f"temperature T must be a finite number > 0, got {T!r}")
    if not 0 <= beta <= 1:
        raise ValueError(f"beta must be in [0, 1], got {beta!r}")
    return T, beta


def divergence(log_q: torch.Tensor, log_p: torch.Tensor, beta: float) -> torch.Tensor:
    """GKD's divergence per position from log-probabilities (..., V) of student q, teacher p.

    beta 0: KL(p || q); beta 1: KL(q || p); else beta KL(p || m) + (1 - beta) KL(q || m) with
    m = beta p + (1 - beta) q. Returns: (...,).
    """
    def kl(log_a, log_b):  # KL(a || b), finite where a underflows to 0
        return (log_a.exp() * (log_a - log_b)).sum(-1)

    if beta == 0:
        return kl(log_p, log_q)
    if beta == 1:
        return kl(log_q, log_p)
    log_m = torch.logsumexp(torch.stack([log_p + math.log(beta), log_q + math.log(1 - beta)]), 0)
    return beta * kl(log_p, log_m) + (1 - beta) * kl(log_q, log_m)


def token_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                  attention_mask: torch.Tensor | None = None, T: float = 1.0,
                  beta: float = 0.0) -> torch.Tensor:
    """Token-level KD (GKD): T^2 x the mean divergence over the positions that count.

    Inputs: student_logits, teacher_logits (N, L, V); attention_mask (N, L) (1 real, 0
    padding; None: all real); T > 0; beta in [0, 1]. The logits at position t predict token
    t + 1 and count where attention_mask[:, t + 1] == 1. Returns: a scalar tensor.
    """
    T, beta = _check_args(T, beta)
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student_logits {tuple(student_logits.shape)} and teacher_logits "
                         f"{tuple(teacher_logits.shape)} must have the same shape (N, L, V)")
    log_q = F.log_softmax(student_logits[:, :-1] / T, dim=-1)
    log_p = F.log_softmax(teacher_logits[:, :-1].detach() / T, dim=-1)
    keep = (torch.ones(student_logits.shape[:2], device=student_logits.device)
            if attention_mask is None else attention_mask)[:, 1:].to(log_q.dtype)
    return T * T * (divergence(log_q, log_p, beta) * keep).sum() / keep.sum().clamp_min(1)


# ------------------------------------------------------------------ token_kd_loss: the mistakes

def _parts(s, t, T, Ts=None, Tt=None):
    return (F.log_softmax(s / (Ts or T), -1), F.log_softmax(t.detach() / (Tt or T), -1))


def _masked(div, mask, how="tokens"):
    """Reduce a divergence (N, L') with a weight mask (N, L')."""
    if how == "tokens":
        return (div * mask).sum() / mask.sum()
    if how == "all":
        return div.mean()
    if how == "sequences":
        return ((div * mask).sum(1) / mask.sum(1)).mean()
    if how == "batch":
        return (div * mask).sum() / div.shape[0]
    raise ValueError(how)


def _mistake(s, t, mask, T, beta, *, div=divergence, sl=slice(None, -1), tl=None, msl=None,
             how="tokens", t2=True, Ts=None, Tt=None, scale=1.0):
    """A wrong token_kd_loss, described by what it does differently from the reference."""
    tl = sl if tl is None else tl
    msl = slice(1, None) if msl is None else msl
    log_q, log_p = _parts(s[:, sl], t[:, tl], T, Ts, Tt)
    m = mask[:, msl].to(s.dtype)
    return (T * T if t2 else 1.0) * scale * _masked(div(log_q, log_p, beta), m, how)


def _div_swapped(log_q, log_p, beta):
    return divergence(log_p, log_q, 1 - beta) if 0 < beta < 1 else divergence(log_p, log_q, beta)


def _kl(log_a, log_b):
    return (log_a.exp() * (log_a - log_b)).sum(-1)


def _jsd_with(mix):
    """A divergence whose interior (0 < beta < 1) mixture is mix(log_p, log_q, beta)."""
    def div(log_q, log_p, beta):
        if beta in (0, 1):
            return divergence(log_q, log_p, beta)
        log_m = mix(log_p, log_q, beta)
        return beta * _kl(log_p, log_m) + (1 - beta) * _kl(log_q, log_m)
    return div


def _jsd_weights_swapped(log_q, log_p, beta):
    if beta in (0, 1):
        return divergence(log_q, log_p, beta)
    log_m = torch.logsumexp(torch.stack([log_p + math.log(beta), log_q + math.log(1 - beta)]), 0)
    return (1 - beta) * _kl(log_p, log_m) + beta * _kl(log_q, log_m)


TOKEN_WRONG_LOSSES = {  # name -> loss(s, t, mask, T, beta); names as in kdlab.checks.lab07
    "padding_counted": lambda s, t, m, T, b: _mistake(s, t, m, T, b, how="all"),
    "mask_of_inputs": lambda s, t, m, T, b: _mistake(s, t, m, T, b, msl=slice(None, -1)),
    "last_position_kept": lambda s, t, m, T, b: _mistake(s, t, m, T, b, sl=slice(None),
                                                         msl=slice(None)),
    "teacher_shifted": lambda s, t, m, T, b: _mistake(s, t, m, T, b, tl=slice(1, None)),
    "mean_over_vocab": lambda s, t, m, T, b: _mistake(s, t, m, T, b, scale=1 / s.shape[-1]),
    "per_sequence_mean": lambda s, t, m, T, b: _mistake(s, t, m, T, b, how="sequences"),
    "divided_by_batch": lambda s, t, m, T, b: _mistake(s, t, m, T, b, how="batch"),
    "direction_swapped": lambda s, t, m, T, b: _mistake(s, t, m, T, b, div=_div_swapped),
    "mixture_weights_swapped": lambda s, t, m, T, b: _mistake(s, t, m, T, b, div=_jsd_with(
        lambda lp, lq, b_: torch.logsumexp(torch.stack([lp + math.log(1 - b_), lq + math.log(b_)]), 0))),
    "mixture_of_logs": lambda s, t, m, T, b: _mistake(s, t, m, T, b, div=_jsd_with(
        lambda lp, lq, b_: b_ * lp + (1 - b_) * lq)),
    "mixture_of_logs_renormalised": lambda s, t, m, T, b: _mistake(s, t, m, T, b, div=_jsd_with(
        lambda lp, lq, b_: F.log_softmax(b_ * lp + (1 - b_) * lq, -1))),
    "jsd_weights_swapped": lambda s, t, m, T, b: _mistake(s, t, m, T, b, div=_jsd_weights_swapped),
    "no_T2": lambda s, t, m, T, b: _mistake(s, t, m, T, b, t2=False),
    "teacher_not_softened": lambda s, t, m, T, b: _mistake(s, t, m, T, b, Tt=1.0),
    "student_not_softened": lambda s, t, m, T, b: _mistake(s, t, m, T, b, Ts=1.0),
}


def _grad(loss_fn, s, t, mask, T, beta) -> torch.Tensor:
    s = s.clone().requires_grad_(True)
    return torch.autograd.grad(loss_fn(s, t.detach(), mask, T, beta), s)[0]


def _teacher_entropy(t, mask, T):
    """T^2 x the mean entropy of the softened teacher over the kept positions (a constant)."""
    log_p = F.log_softmax(t[:, :-1] / T, -1)
    keep = mask[:, 1:].to(t.dtype)
    return T * T * ((-(log_p.exp() * log_p).sum(-1)) * keep).sum() / keep.sum()


@key_of(check_token_kd_loss)
def token_kd_key(inp: dict) -> dict:
    """Right values and gradients at every setting (and, at beta = 0, the cross-entropy form's
    value), every mistake's gradients at the diagnostic settings, the confident gradients."""
    s, t, m = inp["s"], inp["t"], inp["mask"]
    diag = inp["settings"][:inp["n_diagnostic"]]

    def stacked(fn):
        return torch.stack([_grad(fn, s, t, m, T, b) for T, b in diag])

    settings = []
    for T, b in inp["settings"]:
        row = {"grad": _grad(token_kd_loss, s, t, m, T, b),
               "value": token_kd_loss(s, t, m, T, b).detach()}
        if b == 0:
            row["ce"] = row["value"] + _teacher_entropy(t, m, T)
        settings.append(row)
    return {"diagnostic": stacked(token_kd_loss), "settings": settings,
            "mistakes": [[name, stacked(fn), {}] for name, fn in TOKEN_WRONG_LOSSES.items()],
            "confident": [_grad(token_kd_loss, inp["s_conf"], inp["t_conf"], m, T, b)
                          for T, b in inp["conf_settings"]]}




# ------------------------------------------------------------------ distill_trainer

def trainer_loss(student, teacher, batch: dict, alpha: float, T: float, beta: float,
                 how: str = "right") -> torch.Tensor:
    """The reference trainer's loss on a batch (or one of its mistakes, `how`: the names of
    kdlab.checks.lab07.TRAINER_MISTAKES, "mask_ignored_teacher_unmasked" a second form)."""
    teacher.eval()
    with torch.no_grad():  # "..._teacher_unmasked": the teacher ran without the attention_mask
        t = teacher(input_ids=batch["input_ids"], attention_mask=None if how.endswith(
            "_teacher_unmasked") else batch["attention_mask"]).logits
    how = how.removesuffix("_teacher_unmasked")
    out = student(**batch)
    s, mask, ids = out.logits, batch["attention_mask"], batch["input_ids"]
    lm = out.loss
    if how == "lm_loss_unshifted":
        lm = F.cross_entropy(s.reshape(-1, s.shape[-1]), batch["labels"].reshape(-1),
                             ignore_index=-100)
    if how == "lm_loss_padding":
        lm = F.cross_entropy(s[:, :-1].reshape(-1, s.shape[-1]), ids[:, 1:].reshape(-1))
    kd_mask = torch.ones_like(mask) if how == "mask_ignored" else mask
    kT = 1.0 if how == "T_ignored" else T
    kb = 0.0 if how == "beta_ignored" else beta
    kd = token_kd_loss(s, t, kd_mask, kT, kb)
    if how == "kd_args_swapped":
        kd = token_kd_loss(t, s, mask, T, beta)  # detaches its second argument: the student
    a = 1 - alpha if how == "alpha_swapped" else alpha
    if how == "labels_only":
        return lm
    if how == "kd_only":
        return kd
    return (1 - a) * lm + a * kd


TRAINER_HOWS = ("alpha_swapped", "labels_only", "kd_only", "kd_args_swapped", "mask_ignored",
                "mask_ignored_teacher_unmasked", "T_ignored", "beta_ignored", "lm_loss_unshifted",
                "lm_loss_padding")


@key_of(check_distill_trainer)
def trainer_key(inp: dict) -> dict:
    """The reference loss and its gradient for the student's weights (one vector), and every
    mistake's gradient."""
    from kdlab.checks.lab07 import _batch, trainer_models

    def grad(how):
        student, teacher = trainer_models(inp)
        loss = trainer_loss(student, teacher, _batch(inp), inp["alpha"], inp["T"], inp["beta"], how)
        gs = torch.autograd.grad(loss, list(student.parameters()), allow_unused=True)
        flat = torch.cat([(g if g is not None else torch.zeros_like(p)).flatten().double()
                          for g, p in zip(gs, student.parameters())])
        return loss.detach(), flat

    loss, g = grad("right")
    return {"loss": loss, "grad": g, "mistakes": [[h.removesuffix("_teacher_unmasked"), grad(h)[1], {}]
                                                  for h in TRAINER_HOWS]}


# ------------------------------------------------------------------ on_policy_batch

def on_policy_batch(student, batch: dict, lam: float, prompt_len: int, seed: int,
                    how: str = "right") -> dict:
    """GKD's mixed batch: the first round(lam * N) rows continued by the student's samples.

    Inputs: student a causal LM; batch {"input_ids", "attention_mask", "labels"} (N, L),
    right-padded, each row with at least prompt_len real tokens; lam in [0, 1]; seed for
    torch.manual_seed right before sampling (inside fork_rng). how: "right" or one of the
    sampling mistakes of kdlab.checks.lab07.ON_POLICY_MISTAKES. Returns: a new batch; rows
    < k: prompt then L - prompt_len sampled tokens, mask 1, labels -100 on the samples.
    """
    if not 0 <= lam <= 1:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    ids, mask, labels = (batch[k].clone() for k in ("input_ids", "attention_mask", "labels"))
    N, L = ids.shape
    k = round(lam * N)
    if k == 0:
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}
    was = student.training
    student.eval()
    rows = N if how == "all_rows_sampled" else k
    prompts = ids[:rows, :prompt_len]
    kw = dict(do_sample=how != "greedy", max_new_tokens=L - prompt_len, pad_token_id=0)
    if how != "top_k_default":
        kw["top_k"] = 0
    with RNG_LOCK, torch.random.fork_rng(devices=[]):  # grader threads: see RNG_LOCK
        torch.manual_seed(seed)
        if how == "row_by_row":
            out = torch.cat([student.generate(p[None], attention_mask=torch.ones_like(p[None]),
                                              **kw) for p in prompts])
        else:
            out = student.generate(prompts, attention_mask=torch.ones_like(prompts), **kw)
    student.train(was)
    ids[:k] = out[:k]
    mask[:k] = 1
    labels[:k] = out[:k]
    labels[:k, prompt_len:] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


OP_HOWS = ("greedy", "top_k_default", "all_rows_sampled", "row_by_row")


def _sampling(how: str, k: int, N: int, seed: int) -> tuple:
    """What ``on_policy_batch(..., how)`` samples for k of N rows with `seed`, named so that
    two ways that do the very same generate calls get the same name: the calls repeat a
    (lam, seed), a greedy decoding draws nothing (its seed does not matter), sampling all
    rows when k = N is the right call, and so is one row per call when k = 1."""
    if k == 0:
        return ("nothing",)
    if (how == "all_rows_sampled" and k == N) or (how == "row_by_row" and k == 1):
        how = "right"
    return (how, k, None if how == "greedy" else seed)


@key_of(check_on_policy_batch)
def on_policy_key(inp: dict) -> dict:
    """For each (lam, seed) call: the number of on-policy rows, the right sampled tokens
    (k, L - prompt_len) and each sampling mistake's. Each distinct sampling is done once
    (``_sampling``): the same generate calls on the same model give the same tokens."""
    from kdlab.checks.lab07 import _op_batch, on_policy_model

    student = on_policy_model(inp)
    P, N = inp["prompt_len"], len(inp["input_ids"])
    drawn: dict = {}
    calls = []
    for lam, seed in inp["calls"]:
        k = round(lam * N)

        def tokens(how):
            name = _sampling(how, k, N, seed)
            if name not in drawn:
                drawn[name] = on_policy_batch(student, _op_batch(inp), lam, P, seed, how)[
                    "input_ids"][:k, P:]
            return drawn[name].clone()
        calls.append({"k": k, "tokens": tokens("right"),
                      "mistakes": [[h, tokens(h), {}] for h in OP_HOWS]})
    return {"calls": calls}
