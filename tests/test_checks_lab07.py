"""Mutation tests of Lab 07's checks: check_token_kd_loss and check_distill_trainer reject
common mistakes, each with its own message, and accept right answers (several styles, fresh
seeds through the grader's path)."""
import copy
import functools
import math

import pytest
import torch
import torch.nn.functional as F

import kdlab as kd
from kdlab.checks import CHECKS, _registry, lab07
from kdlab.checks._registry import judge, probe_data
from kdlab.grading import keys
from kdlab.grading.keys.lab07 import token_kd_loss as reference_token_kd_loss

TOKEN = lab07.check_token_kd_loss


@functools.lru_cache(maxsize=None)
def _notebook_key(name):
    return keys.make(name, CHECKS[name].inputs(None))


def _key(name, seed):
    """The answer key kdlab.grading.keys makes now for check `name` on the inputs of `seed`
    (None: the notebook's, made here rather than read from the shipped file). Each is made
    once: a fresh seed's through answer_key, as the grader's path of these tests gets it
    (the suite makes a seed's key once), the notebook's once per module; a copy each time."""
    if seed is None:
        return copy.deepcopy(_notebook_key(name))
    return _registry.answer_key(CHECKS[name], seed)


def _check(T, beta):
    if T <= 0:
        raise ValueError(f"T must be > 0, got {T}")
    if not 0 <= beta <= 1:
        raise ValueError(f"beta must be in [0, 1], got {beta}")


# ------------------------------------------------------------------ right answers

def right_kl_div(s, t, mask, T, beta):
    """F.kl_div with log targets, one branch per case, as the notebook's solution."""
    _check(T, beta)
    log_q = F.log_softmax(s[:, :-1] / T, dim=-1)
    log_p = F.log_softmax(t[:, :-1].detach() / T, dim=-1)
    keep = mask[:, 1:].float()
    if beta == 0:
        div = F.kl_div(log_q, log_p, reduction="none", log_target=True).sum(-1)
    elif beta == 1:
        div = F.kl_div(log_p, log_q, reduction="none", log_target=True).sum(-1)
    else:
        log_m = torch.logsumexp(torch.stack([log_p + math.log(beta),
                                             log_q + math.log(1 - beta)]), dim=0)
        div = (beta * F.kl_div(log_m, log_p, reduction="none", log_target=True).sum(-1)
               + (1 - beta) * F.kl_div(log_m, log_q, reduction="none", log_target=True).sum(-1))
    return T**2 * (div * keep).sum() / keep.sum()


def right_flat(s, t, mask, T, beta):
    """Flattened positions selected by a boolean mask; the teacher under no_grad; the forward
    KL written as a soft-target cross-entropy (differs by the teacher's entropy, a constant)."""
    _check(T, beta)
    V = s.shape[-1]
    keep = mask[:, 1:].reshape(-1).bool()
    ls = F.log_softmax(s[:, :-1].reshape(-1, V)[keep] / T, -1)
    with torch.no_grad():
        lt = F.log_softmax(t[:, :-1].reshape(-1, V)[keep] / T, -1)
    if beta == 0:
        per = -(lt.exp() * ls).sum(-1)
    elif beta == 1:
        per = (ls.exp() * (ls - lt)).sum(-1)
    else:
        b = torch.tensor(beta)
        lm = torch.logaddexp(lt + b.log(), ls + torch.log1p(-b))
        per = b * (lt.exp() * (lt - lm)).sum(-1) + (1 - b) * (ls.exp() * (ls - lm)).sum(-1)
    return per.mean() * T * T


# ------------------------------------------------------------------ mistakes, as a student writes them

def _div(log_q, log_p, beta):
    if beta == 0:
        return (log_p.exp() * (log_p - log_q)).sum(-1)
    if beta == 1:
        return (log_q.exp() * (log_q - log_p)).sum(-1)
    log_m = torch.logsumexp(torch.stack([log_p + math.log(beta), log_q + math.log(1 - beta)]), 0)
    return beta * (log_p.exp() * (log_p - log_m)).sum(-1) + (1 - beta) * (log_q.exp() * (log_q - log_m)).sum(-1)


def _logs(s, t, T):
    return F.log_softmax(s / T, -1), F.log_softmax(t.detach() / T, -1)


def padding_counted(s, t, mask, T, beta):
    _check(T, beta)
    log_q, log_p = _logs(s[:, :-1], t[:, :-1], T)
    return T**2 * _div(log_q, log_p, beta).mean()


def mask_of_inputs(s, t, mask, T, beta):
    _check(T, beta)
    log_q, log_p = _logs(s[:, :-1], t[:, :-1], T)
    keep = mask[:, :-1].float()
    return T**2 * (_div(log_q, log_p, beta) * keep).sum() / keep.sum()


def last_position_kept(s, t, mask, T, beta):
    _check(T, beta)
    log_q, log_p = _logs(s, t, T)
    keep = mask.float()
    return T**2 * (_div(log_q, log_p, beta) * keep).sum() / keep.sum()


def teacher_shifted(s, t, mask, T, beta):
    _check(T, beta)
    log_q, log_p = _logs(s[:, :-1], t[:, 1:], T)
    keep = mask[:, 1:].float()
    return T**2 * (_div(log_q, log_p, beta) * keep).sum() / keep.sum()


def mean_over_vocab(s, t, mask, T, beta):
    _check(T, beta)
    log_q, log_p = _logs(s[:, :-1], t[:, :-1], T)
    keep = mask[:, 1:].float()
    return T**2 * (_div(log_q, log_p, beta) / s.shape[-1] * keep).sum() / keep.sum()


def per_sequence_mean(s, t, mask, T, beta):
    _check(T, beta)
    log_q, log_p = _logs(s[:, :-1], t[:, :-1], T)
    keep = mask[:, 1:].float()
    return T**2 * ((_div(log_q, log_p, beta) * keep).sum(1) / keep.sum(1)).mean()


def kl_div_batchmean(s, t, mask, T, beta):
    """Forward KL with F.kl_div(reduction='batchmean') after zeroing the padding."""
    _check(T, beta)
    log_q, log_p = _logs(s[:, :-1], t[:, :-1], T)
    keep = mask[:, 1:, None].float()
    if beta == 0:
        return T**2 * F.kl_div(log_q * keep, log_p * keep, reduction="batchmean", log_target=True)
    return T**2 * (_div(log_q, log_p, beta) * keep[..., 0]).sum() / s.shape[0]


def direction_swapped(s, t, mask, T, beta):
    _check(T, beta)
    log_q, log_p = _logs(s[:, :-1], t[:, :-1], T)
    keep = mask[:, 1:].float()
    if beta == 0:  # F.kl_div(input, target) read as KL(input || target)
        div = F.kl_div(log_p, log_q, reduction="none", log_target=True).sum(-1)
    elif beta == 1:
        div = F.kl_div(log_q, log_p, reduction="none", log_target=True).sum(-1)
    else:
        div = _div(log_q, log_p, beta)
    return T**2 * (div * keep).sum() / keep.sum()


def _jsd_with_mixture(mix):
    def fn(s, t, mask, T, beta):
        _check(T, beta)
        log_q, log_p = _logs(s[:, :-1], t[:, :-1], T)
        keep = mask[:, 1:].float()
        if beta in (0, 1):
            div = _div(log_q, log_p, beta)
        else:
            log_m = mix(log_p, log_q, beta)
            div = beta * (log_p.exp() * (log_p - log_m)).sum(-1) + (1 - beta) * (log_q.exp() * (log_q - log_m)).sum(-1)
        return T**2 * (div * keep).sum() / keep.sum()
    return fn


mixture_weights_swapped = _jsd_with_mixture(
    lambda lp, lq, b: torch.log((1 - b) * lp.exp() + b * lq.exp()))
mixture_of_log_probs = _jsd_with_mixture(lambda lp, lq, b: b * lp + (1 - b) * lq)
mixture_of_logits = _jsd_with_mixture(lambda lp, lq, b: F.log_softmax(b * lp + (1 - b) * lq, -1))


def jsd_weights_swapped(s, t, mask, T, beta):
    _check(T, beta)
    log_q, log_p = _logs(s[:, :-1], t[:, :-1], T)
    keep = mask[:, 1:].float()
    if beta in (0, 1):
        div = _div(log_q, log_p, beta)
    else:
        log_m = torch.log(beta * log_p.exp() + (1 - beta) * log_q.exp())
        div = (1 - beta) * (log_p.exp() * (log_p - log_m)).sum(-1) + beta * (log_q.exp() * (log_q - log_m)).sum(-1)
    return T**2 * (div * keep).sum() / keep.sum()


def no_T2(s, t, mask, T, beta):
    return right_kl_div(s, t, mask, T, beta) / T**2


def teacher_not_softened(s, t, mask, T, beta):
    _check(T, beta)
    log_q, log_p = F.log_softmax(s[:, :-1] / T, -1), F.log_softmax(t[:, :-1].detach(), -1)
    keep = mask[:, 1:].float()
    return T**2 * (_div(log_q, log_p, beta) * keep).sum() / keep.sum()


def teacher_gets_gradient(s, t, mask, T, beta):
    _check(T, beta)
    log_q, log_p = F.log_softmax(s[:, :-1] / T, -1), F.log_softmax(t[:, :-1] / T, -1)
    keep = mask[:, 1:].float()
    return T**2 * (_div(log_q, log_p, beta) * keep).sum() / keep.sum()


def log_of_softmax(s, t, mask, T, beta):
    """torch.log(softmax): -inf where a probability underflows, 0 * -inf = nan."""
    _check(T, beta)
    p, q = F.softmax(t[:, :-1].detach() / T, -1), F.softmax(s[:, :-1] / T, -1)
    keep = mask[:, 1:].float()
    if beta == 0:
        div = (p * (torch.log(p) - torch.log(q))).sum(-1)
    elif beta == 1:
        div = (q * (torch.log(q) - torch.log(p))).sum(-1)
    else:
        m = beta * p + (1 - beta) * q
        div = beta * (p * torch.log(p / m)).sum(-1) + (1 - beta) * (q * torch.log(q / m)).sum(-1)
    return T**2 * (div * keep).sum() / keep.sum()


def accepts_any_T(s, t, mask, T, beta):
    if not 0 <= beta <= 1:
        raise ValueError("beta must be in [0, 1]")
    with torch.no_grad():
        pass
    log_q, log_p = _logs(s[:, :-1], t[:, :-1], T if T > 0 else 1.0)
    keep = mask[:, 1:].float()
    return T**2 * (_div(log_q, log_p, beta) * keep).sum() / keep.sum()


def accepts_any_beta(s, t, mask, T, beta):
    if T <= 0:
        raise ValueError("T must be > 0")
    return right_kl_div(s, t, mask, T, min(max(beta, 0.0), 1.0))


def returns_float(s, t, mask, T, beta):
    return right_kl_div(s, t, mask, T, beta).item()


def plus_constant(s, t, mask, T, beta):
    return right_kl_div(s, t, mask, T, beta) + 0.5


def per_token(s, t, mask, T, beta):
    _check(T, beta)
    log_q, log_p = _logs(s[:, :-1], t[:, :-1], T)
    return T**2 * _div(log_q, log_p, beta) * mask[:, 1:]


def stub(s, t, mask, T, beta):
    # YOUR CODE HERE
    raise NotImplementedError


MISTAKES = [
    (padding_counted, "padding positions are counted"),
    (mask_of_inputs, "misaligned by one position"),
    (last_position_kept, "the last position is counted"),
    (teacher_shifted, "shifted by one position against the student's"),
    (mean_over_vocab, "averaged over the vocabulary"),
    (per_sequence_mean, "averaged within each sequence"),
    (kl_div_batchmean, "divided by the number of sequences"),
    (direction_swapped, "the KL direction is swapped"),
    (mixture_weights_swapped, "the mixture's weights are swapped"),
    (mixture_of_log_probs, "the mixture m is taken in log space"),
    (mixture_of_logits, "a geometric mixture"),
    (jsd_weights_swapped, "the two KL terms of the JSD have swapped weights"),
    (no_T2, "missing its factor T**2"),
    (teacher_not_softened, "the teacher's logits are not divided by T"),
    (teacher_gets_gradient, "teacher_logits received a gradient"),
    (log_of_softmax, "nan/inf for a confident model"),
    (accepts_any_T, "T=0.0 should raise ValueError"),
    (accepts_any_beta, "beta=-0.1 should raise ValueError"),
    (returns_float, "should be a torch.Tensor"),
    (plus_constant, "the gradient is right but the loss value is not"),
    (per_token, "expected a scalar"),
    (stub, "not implemented yet"),
]


@pytest.mark.parametrize("fn", [right_kl_div, right_flat, reference_token_kd_loss])
def test_token_kd_accepts_right_answers(fn, capsys):
    kd.checks.check_token_kd_loss(fn)
    assert capsys.readouterr().out.startswith("PASSED check_token_kd_loss")


@pytest.mark.parametrize("fn,message", MISTAKES, ids=[f.__name__ for f, _ in MISTAKES])
def test_token_kd_rejects_mistake_with_its_message(fn, message):
    with pytest.raises(AssertionError, match="check_token_kd_loss") as err:
        kd.checks.check_token_kd_loss(fn)
    assert message in str(err.value), str(err.value)
    assert "Hint:" in str(err.value)


@pytest.mark.parametrize("seed", [0, 1, 7, 12345])
@pytest.mark.parametrize("fn", [right_kl_div, right_flat])
def test_token_kd_right_answers_pass_on_fresh_inputs(fn, seed):
    assert "value and gradient match" in judge(TOKEN, probe_data(TOKEN, fn, seed), seed)


@pytest.mark.parametrize("fn,message", MISTAKES, ids=[f.__name__ for f, _ in MISTAKES])
def test_token_kd_wrong_answers_fail_on_fresh_inputs(fn, message):
    with pytest.raises(AssertionError) as err:
        judge(TOKEN, probe_data(TOKEN, fn, 3), 3)
    assert message in str(err.value), str(err.value)


@pytest.mark.parametrize("seed", [None, 0, 1, 7])
def test_token_kd_mistakes_are_distinguishable(seed):
    """At the diagnostic settings every named mistake has its own gradient, unlike the right
    one, and every mistake of the check's table has its gradients in the answer key."""
    key = _key("token_kd_loss", seed)
    grads = {"right": key["diagnostic"], **{name: g for name, g, _ in key["mistakes"]}}
    assert sorted(grads) == sorted(["right"] + [m.name for m in lab07.TOKEN_MISTAKES])
    names = list(grads)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not torch.allclose(grads[a], grads[b], rtol=1e-3, atol=1e-6), (a, b)


def test_token_kd_reference_matches_another_formulation():
    inp = lab07.token_kd_inputs(5)
    for T, b in inp["settings"]:
        a = reference_token_kd_loss(inp["s"], inp["t"], inp["mask"], T, b)
        r = right_kl_div(inp["s"], inp["t"], inp["mask"], T, b)
        assert torch.allclose(a, r, atol=1e-6), (T, b)


def test_token_kd_limits_of_the_jsd():
    """GKD's JSD(beta) vanishes at beta -> 0 and 1 (the ends are defined as the two KLs), is
    symmetric, JSD(beta)(p || q) = JSD(1 - beta)(q || p), and is at most ln 2 at beta = 0.5."""
    inp = lab07.token_kd_inputs(2)
    s, t, m = inp["s"], inp["t"], inp["mask"]
    assert reference_token_kd_loss(s, t, m, 1.0, 1e-6).item() < 1e-4
    assert reference_token_kd_loss(s, t, m, 1.0, 1 - 1e-6).item() < 1e-4
    assert torch.allclose(reference_token_kd_loss(s, t, m, 1.0, 0.3),
                          reference_token_kd_loss(t, s, m, 1.0, 0.7), atol=1e-6)
    assert reference_token_kd_loss(s, t, m, 1.0, 0.5).item() <= math.log(2)


def changes_mask(s, t, mask, T, beta):
    out = right_kl_div(s, t, mask, T, beta)
    mask.zero_()
    return out


def test_token_kd_rejects_changing_its_inputs():
    with pytest.raises(AssertionError, match="changed the attention_mask passed to it"):
        kd.checks.check_token_kd_loss(changes_mask)


@pytest.mark.parametrize("params", [dict(N=8, L=16, V=65), dict(N=3, L=5, V=3)])
def test_token_kd_params_override(params, capsys):
    kd.checks.check_token_kd_loss(right_kl_div, **params)
    assert capsys.readouterr().out.startswith("PASSED check_token_kd_loss")
    with pytest.raises(AssertionError, match="padding positions are counted"):
        kd.checks.check_token_kd_loss(padding_counted, **params)


def test_token_kd_bad_params_are_named():
    with pytest.raises(ValueError, match="N >= 3, L >= 5 and V >= 3"):
        lab07.token_kd_inputs(None, L=2)


def test_token_kd_public_module_holds_no_answer():
    """The check module does no loss arithmetic: no torch.nn.functional, softmax or KL."""
    import ast
    import inspect
    tree = ast.parse(inspect.getsource(lab07))
    used = {n.attr if isinstance(n, ast.Attribute) else n.id for n in ast.walk(tree)
            if isinstance(n, (ast.Attribute, ast.Name))}
    used |= {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
             for a in n.names} | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    for word in ("functional", "F", "kl_div", "log_softmax", "softmax", "logsumexp",
                 "cross_entropy", "backward"):
        assert word not in used, word


# ------------------------------------------------------------------ distill_trainer

from transformers import Trainer  # noqa: E402

TRAINER = lab07.check_distill_trainer


class Base(Trainer):
    """The lab's given part: __init__ stores the teacher and the loss's settings."""

    def __init__(self, *args, teacher=None, alpha=0.5, T=1.0, beta=0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.teacher, self.alpha, self.T, self.beta = teacher, alpha, T, beta


class RightTrainer(Base):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        self.teacher.eval()
        with torch.no_grad():
            t = self.teacher(input_ids=inputs["input_ids"],
                             attention_mask=inputs["attention_mask"]).logits
        kd_term = right_kl_div(outputs.logits, t, inputs["attention_mask"], self.T, self.beta)
        loss = (1 - self.alpha) * outputs.loss + self.alpha * kd_term
        return (loss, outputs) if return_outputs else loss


class RightTrainerManual(Base):
    """Its own shifted cross-entropy with ignore_index, the teacher under inference_mode."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs["labels"]
        outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        logits = outputs.logits
        ce = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                             labels[:, 1:].reshape(-1), ignore_index=-100)
        self.teacher.eval()
        with torch.inference_mode():
            t = self.teacher(input_ids=inputs["input_ids"]).logits
        loss = self.alpha * right_flat(logits, t.clone(), inputs["attention_mask"], self.T,
                                       self.beta) + (1 - self.alpha) * ce
        return (loss, outputs) if return_outputs else loss


def _trainer(**wrong):
    """A trainer written with one slip (names as in the answer key's mistakes)."""
    class Wrong(Base):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            outputs = model(**inputs)
            if wrong.get("eval", True):
                self.teacher.eval()
            if wrong.get("no_grad", True):
                with torch.no_grad():
                    t = self.teacher(input_ids=inputs["input_ids"]).logits
            else:
                t = self.teacher(input_ids=inputs["input_ids"]).logits.detach()
            s, mask = outputs.logits, inputs["attention_mask"]
            T = 1.0 if wrong.get("T_ignored") else self.T
            beta = 0.0 if wrong.get("beta_ignored") else self.beta
            if wrong.get("mask_ignored"):
                mask = torch.ones_like(mask)
            kd_term = right_kl_div(t, s, mask, T, beta) if wrong.get("swap") else \
                right_kl_div(s, t, mask, T, beta)
            lm = outputs.loss
            V = s.shape[-1]
            if wrong.get("unshifted"):
                lm = F.cross_entropy(s.reshape(-1, V), inputs["labels"].reshape(-1))
            if wrong.get("padding"):
                lm = F.cross_entropy(s[:, :-1].reshape(-1, V), inputs["input_ids"][:, 1:].reshape(-1))
            a = self.alpha
            loss = {"right": (1 - a) * lm + a * kd_term, "swapped": a * lm + (1 - a) * kd_term,
                    "lm": lm, "kd": kd_term}[wrong.get("mix", "right")]
            if wrong.get("plus"):
                loss = loss + 1.0
            if wrong.get("loss_only"):
                return loss
            return (loss, outputs) if return_outputs else loss
    return Wrong


class NoInit(Trainer):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        return model(**inputs).loss


class StubTrainer(Base):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # YOUR CODE HERE
        raise NotImplementedError


TRAINER_WRONG = [
    (_trainer(mix="swapped"), "alpha weights the wrong term"),
    (_trainer(mix="lm"), "next-token loss only"),
    (_trainer(mix="kd"), "the distillation term only"),
    (_trainer(swap=True), "token_kd_loss(teacher_logits, student_logits"),
    (_trainer(mask_ignored=True), "counts the padding"),
    (_trainer(T_ignored=True), "computed at T = 1"),
    (_trainer(beta_ignored=True), "not the trainer's beta"),
    (_trainer(unshifted=True), "not t + 1"),
    (_trainer(padding=True), "next-token loss counts the padding"),
    (_trainer(eval=False), "the teacher ran in train mode"),
    (_trainer(no_grad=False), "gradient tracking on"),
    (_trainer(plus=True), "the gradient is right but the loss value is not"),
    (_trainer(loss_only=True), "expects (loss, outputs)"),
    (NoInit, "building the trainer raised TypeError"),
    (StubTrainer, "not implemented yet"),
]


@pytest.mark.parametrize("cls", [RightTrainer, RightTrainerManual])
def test_trainer_accepts_right_answers(cls, capsys):
    kd.checks.check_distill_trainer(cls)
    assert capsys.readouterr().out.startswith("PASSED check_distill_trainer")


@pytest.mark.parametrize("cls,message", TRAINER_WRONG, ids=[str(i) for i in range(len(TRAINER_WRONG))])
def test_trainer_rejects_mistake_with_its_message(cls, message):
    with pytest.raises(AssertionError, match="check_distill_trainer") as err:
        kd.checks.check_distill_trainer(cls)
    assert message in str(err.value), str(err.value)
    assert "Hint:" in str(err.value)


@pytest.mark.parametrize("seed", [0, 12345])
@pytest.mark.parametrize("cls", [RightTrainer, RightTrainerManual])
def test_trainer_right_answers_pass_on_fresh_inputs(cls, seed):
    assert "equal the recipe's" in judge(TRAINER, probe_data(TRAINER, cls, seed), seed)


@pytest.mark.parametrize("cls,message", TRAINER_WRONG[:9], ids=[str(i) for i in range(9)])
def test_trainer_wrong_answers_fail_on_fresh_inputs(cls, message):
    with pytest.raises(AssertionError) as err:
        judge(TRAINER, probe_data(TRAINER, cls, 3), 3)
    assert message in str(err.value), str(err.value)


@pytest.mark.parametrize("seed", [None, 0, 1])
def test_trainer_mistakes_are_distinguishable(seed):
    key = _key("distill_trainer", seed)
    grads = [("right", key["grad"])] + [(name, g) for name, g, _ in key["mistakes"]]
    assert sorted({n for n, _ in grads}) == sorted(["right"] + [m.name for m in lab07.TRAINER_MISTAKES])
    for i, (a, ga) in enumerate(grads):
        for b, gb in grads[i + 1:]:
            if a != b:  # two forms of one mistake may coincide
                assert not torch.allclose(ga, gb, **lab07.TRAINER_TOL), (a, b)


# ------------------------------------------------------------------ on_policy_batch

from kdlab.grading.keys.lab07 import on_policy_batch as reference_on_policy_batch  # noqa: E402

ON_POLICY = lab07.check_on_policy_batch


def _lam_ok(lam):
    if not 0 <= lam <= 1:
        raise ValueError(f"lam must be in [0, 1], got {lam}")


def right_on_policy(student, batch, lam, prompt_len, seed):
    """As the notebook's solution: clones, one generate call for the k rows, fork_rng."""
    _lam_ok(lam)
    ids, mask, labels = (batch[k].clone() for k in ("input_ids", "attention_mask", "labels"))
    N, L = ids.shape
    k = round(lam * N)
    if k > 0:
        was = student.training
        student.eval()
        prompts = ids[:k, :prompt_len]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            out = student.generate(prompts, attention_mask=torch.ones_like(prompts),
                                   do_sample=True, top_k=0, max_new_tokens=L - prompt_len,
                                   pad_token_id=0)
        student.train(was)
        ids[:k], mask[:k], labels[:k] = out, 1, out
        labels[:k, prompt_len:] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def right_on_policy_cat(student, batch, lam, prompt_len, seed):
    """torch.cat of new rows and kept rows, the RNG state saved and restored by hand, a
    GenerationConfig, the mode restored in a finally block."""
    from transformers import GenerationConfig
    _lam_ok(lam)
    ids = batch["input_ids"]
    n, length = ids.shape
    k = int(round(lam * n))
    if k == 0:
        return {name: t.clone() for name, t in batch.items()}
    cfg = GenerationConfig(do_sample=True, top_k=0, max_new_tokens=length - prompt_len,
                           pad_token_id=0)
    was = student.training
    state = torch.get_rng_state()
    try:
        student.eval()
        torch.manual_seed(seed)
        with torch.no_grad():
            new = student.generate(ids[:k, :prompt_len], attention_mask=torch.ones(
                k, prompt_len, dtype=torch.long), generation_config=cfg)
    finally:
        torch.set_rng_state(state)
        student.train(was)
    new_labels = torch.where(torch.arange(length) < prompt_len, new, torch.full_like(new, -100))
    return {"input_ids": torch.cat([new, ids[k:]]),
            "attention_mask": torch.cat([torch.ones_like(new), batch["attention_mask"][k:]]),
            "labels": torch.cat([new_labels, batch["labels"][k:]])}


def _on_policy(**wrong):
    """on_policy_batch written with one slip (as a student would)."""
    def fn(student, batch, lam, prompt_len, seed):
        if not wrong.get("any_lam"):
            _lam_ok(lam)
        src = batch if wrong.get("in_place") else {k: v.clone() for k, v in batch.items()}
        ids, mask, labels = src["input_ids"], src["attention_mask"], src["labels"]
        N, L = ids.shape
        k = {"round": lambda: round(lam * N), "int": lambda: int(lam * N),
             "inverted": lambda: round((1 - lam) * N),
             "random": lambda: int((torch.rand(N, generator=torch.Generator().manual_seed(seed)) < lam).sum())}[wrong.get("count", "round")]()
        if k == 0:
            return {"input_ids": ids, "attention_mask": mask, "labels": labels}
        model = wrong.get("model", student)
        was = model.training
        if wrong.get("eval", True):
            model.eval()
        prompts = ids[:k, :prompt_len]
        kw = dict(do_sample=not wrong.get("greedy"), max_new_tokens=L - prompt_len, pad_token_id=0)
        if not wrong.get("top_k_default"):
            kw["top_k"] = 0
        if wrong.get("no_seed"):
            out = model.generate(prompts, attention_mask=torch.ones_like(prompts), **kw)
        elif wrong.get("global_seed"):
            torch.manual_seed(seed)
            out = model.generate(prompts, attention_mask=torch.ones_like(prompts), **kw)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(wrong.get("fixed_seed", seed))
                if wrong.get("all_rows"):
                    p = ids[:, :prompt_len]
                    out = model.generate(p, attention_mask=torch.ones_like(p), **kw)[:k]
                elif wrong.get("manual_grad"):  # own sampling loop, gradients on
                    out = prompts
                    for _ in range(L - prompt_len):
                        probs = torch.softmax(model(input_ids=out).logits[:, -1], -1)
                        out = torch.cat([out, torch.multinomial(probs, 1)], 1)
                else:
                    out = model.generate(prompts, attention_mask=torch.ones_like(prompts), **kw)
        if wrong.get("restore", True):
            model.train(was)
        if wrong.get("new_only"):  # the new tokens written after the prompt's place
            out = torch.cat([out[:, prompt_len:], out[:, :prompt_len]], 1)
        ids[:k] = out
        if not wrong.get("mask_kept"):
            mask[:k] = 1
        if wrong.get("labels_all_real"):  # labels rebuilt for every row from input_ids
            labels = ids.clone()
        else:
            labels[:k] = out
        if not wrong.get("labels_self"):
            labels[:k, prompt_len:] = -100
        if wrong.get("prompt_labels_dropped"):
            labels[:k, :prompt_len] = -100
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}
    return fn


def _other_model():
    m = lab07.on_policy_model(lab07.on_policy_inputs(99))
    return m.eval()


def stub_on_policy(student, batch, lam, prompt_len, seed):
    # YOUR CODE HERE
    raise NotImplementedError


def returns_ids_only(student, batch, lam, prompt_len, seed):
    return right_on_policy(student, batch, lam, prompt_len, seed)["input_ids"]


ON_POLICY_WRONG = [
    (_on_policy(model=_other_model()), "the student passed in never ran"),
    (_on_policy(count="inverted"), "lambda is inverted"),
    (_on_policy(count="int"), "you rounded lam * N down"),
    (_on_policy(count="random"), "is not round(lam * N)"),
    (_on_policy(eval=False), "sampled in train mode"),
    (_on_policy(restore=False), "left in eval mode"),
    (_on_policy(manual_grad=True), "gradient tracking on"),
    (_on_policy(new_only=True), "do not start with their prompt"),
    (_on_policy(no_seed=True), "ignores the seed"),
    (_on_policy(fixed_seed=0), "the seed passed in is not the one used"),
    (_on_policy(global_seed=True), "global random state was left reseeded"),
    (_on_policy(greedy=True), "greedy (argmax)"),
    (_on_policy(top_k_default=True), "50 likeliest tokens"),
    (_on_policy(all_rows=True), "for all N rows and kept the first k"),
    (_on_policy(mask_kept=True), "old padding was kept"),
    (_on_policy(labels_self=True), "imitate its own samples"),
    (_on_policy(prompt_labels_dropped=True), "labels of the prompts"),
    (_on_policy(labels_all_real=True), "the dataset rows"),
    (_on_policy(in_place=True), "changed batch['input_ids'] passed to it"),
    (_on_policy(any_lam=True), "lam=-0.2 should raise ValueError"),
    (returns_ids_only, "expected a dict"),
    (stub_on_policy, "not implemented yet"),
]


@pytest.mark.parametrize("fn", [right_on_policy, right_on_policy_cat, reference_on_policy_batch])
def test_on_policy_accepts_right_answers(fn, capsys):
    kd.checks.check_on_policy_batch(fn)
    assert capsys.readouterr().out.startswith("PASSED check_on_policy_batch")


@pytest.mark.parametrize("fn,message", ON_POLICY_WRONG, ids=[str(i) for i in range(len(ON_POLICY_WRONG))])
def test_on_policy_rejects_mistake_with_its_message(fn, message):
    with pytest.raises(AssertionError, match="check_on_policy_batch") as err:
        kd.checks.check_on_policy_batch(fn)
    assert message in str(err.value), str(err.value)
    assert "Hint:" in str(err.value)


@pytest.mark.parametrize("seed", [0, 12345])
@pytest.mark.parametrize("fn", [right_on_policy, right_on_policy_cat])
def test_on_policy_right_answers_pass_on_fresh_inputs(fn, seed):
    assert "keep their prompt" in judge(ON_POLICY, probe_data(ON_POLICY, fn, seed), seed)


@pytest.mark.parametrize("fn,message", ON_POLICY_WRONG[1:4] + ON_POLICY_WRONG[11:14],
                         ids=[str(i) for i in range(6)])
def test_on_policy_wrong_answers_fail_on_fresh_inputs(fn, message):
    with pytest.raises(AssertionError) as err:
        judge(ON_POLICY, probe_data(ON_POLICY, fn, 3), 3)
    assert message in str(err.value), str(err.value)


def _key_drawn_elsewhere(seed):
    """The answer key of on_policy_batch's inputs at `seed` as another CPU kind might draw it:
    one token of every call's right samples differs from this machine's."""
    key = _key("on_policy_batch", seed)
    for k in key["calls"]:
        if k["k"]:
            k["tokens"] = k["tokens"].clone()
            k["tokens"][0, -1] = (k["tokens"][0, -1] + 1) % 65
    return key


def test_on_policy_notebook_cases_compare_with_samples_drawn_here():
    """The notebook's cases judge the sampled tokens against the samples the probe draws on
    the machine that runs it, never against a shipped key's (a token drawn from a softmax can
    differ between CPU kinds): a right answer passes even when the key's tokens differ."""
    inp = lab07.on_policy_inputs(None)
    assert inp["local_reference"] is True
    data = probe_data(ON_POLICY, right_on_policy, None)
    assert all(("reference" in r) for r in data["calls"])
    assert "keep their prompt" in judge(ON_POLICY, data, None, key=_key_drawn_elsewhere(None))
    with pytest.raises(AssertionError, match="the seed passed in is not the one used"):
        judge(ON_POLICY, probe_data(ON_POLICY, _on_policy(fixed_seed=0), None), None,
              key=_key_drawn_elsewhere(None))


def test_on_policy_graded_inputs_ignore_a_reference_in_the_record():
    """Grading's inputs come with a seed: the probe draws no reference, and one forged into the
    record (the student controls the kernel) is ignored: the key made by the grader decides."""
    inp = lab07.on_policy_inputs(5)
    assert inp["local_reference"] is False
    data = probe_data(ON_POLICY, right_on_policy, 5)
    assert not any("reference" in r for r in data["calls"])
    with pytest.raises(AssertionError, match="the continuations are not the student's samples"):
        judge(ON_POLICY, data, 5, key=_key_drawn_elsewhere(5))
    from kdlab.checks import _probe
    from kdlab.checks._common import recorded
    wrong = probe_data(ON_POLICY, _on_policy(fixed_seed=0), 5)
    N, P = inp["input_ids"].shape[0], inp["prompt_len"]
    for r, (lam, _) in zip(wrong["calls"], inp["calls"]):  # forged: the wrong answer's own samples
        k = round(lam * N)
        ids = recorded(r["returned"]["input_ids"])
        r["reference"] = _probe.from_json(_probe.to_json(_probe.value(ids[:k, P:]))) if k else None
    with pytest.raises(AssertionError, match="the seed passed in is not the one used"):
        judge(ON_POLICY, wrong, 5)
    # the same forgery on the notebook's inputs is what the check trusts there (and only there)
    nb = probe_data(ON_POLICY, _on_policy(fixed_seed=0), None)
    inp0 = lab07.on_policy_inputs(None)
    for r, (lam, _) in zip(nb["calls"], inp0["calls"]):
        k = round(lam * N)
        ids = recorded(r["returned"]["input_ids"])
        r["reference"] = _probe.from_json(_probe.to_json(_probe.value(ids[:k, P:]))) if k else None
    judge(ON_POLICY, nb, None)  # passes: a kernel the student controls can fool its own notebook


@pytest.mark.parametrize("seed", [None, 0, 1, 7])
def test_on_policy_sampling_mistakes_are_distinguishable(seed):
    """On the first call (k = N - 1 rows) every sampling mistake gives other tokens than the
    right ones and than each other; the answer key has every mistake of the check's table."""
    key = _key("on_policy_batch", seed)
    first = key["calls"][0]
    toks = {"right": first["tokens"], **{n: t for n, t, _ in first["mistakes"]}}
    assert sorted(toks) == sorted(["right"] + [m.name for m in lab07.ON_POLICY_MISTAKES])
    names = list(toks)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not torch.equal(toks[a], toks[b]), (a, b)


@pytest.mark.parametrize("N", [3, 5, 8])
def test_on_policy_counts_tell_the_rules_apart(N):
    """round, int, ceil and 1 - lam give different numbers of rows over the two lams."""
    a, b = lab07.on_policy_settings(N)
    rules = [lambda x: round(x * N), lambda x: int(x * N), lambda x: math.ceil(x * N - 1e-9),
             lambda x: round((1 - x) * N)]
    got = [(r(a), r(b)) for r in rules]
    assert len(set(got)) == len(got), got


def test_on_policy_params_override(capsys):
    kd.checks.check_on_policy_batch(right_on_policy, N=6)
    assert capsys.readouterr().out.startswith("PASSED check_on_policy_batch")
    with pytest.raises(AssertionError, match="lambda is inverted"):
        kd.checks.check_on_policy_batch(_on_policy(count="inverted"), N=6)
    with pytest.raises(ValueError, match="3 <= N <= 12"):
        lab07.on_policy_inputs(None, N=2)
