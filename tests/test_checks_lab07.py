"""Mutation tests of Lab 07's checks: check_token_kd_loss and check_distill_trainer reject
common mistakes, each with its own message, and accept right answers (several styles, fresh
seeds through the grader's path)."""
import math

import pytest
import torch
import torch.nn.functional as F

import kdlab as kd
from kdlab.checks import lab07
from kdlab.checks._registry import judge, probe_data
from kdlab.grading import keys
from kdlab.grading.keys.lab07 import token_kd_loss as reference_token_kd_loss

TOKEN = lab07.check_token_kd_loss.check


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
    key = keys.make("token_kd_loss", lab07.token_kd_inputs(seed))
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
