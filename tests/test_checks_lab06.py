"""Lab 06 checks: the wrong implementations students write are rejected, each with its own
message; right ones, in their different valid forms, pass, in the notebook and on the fresh
inputs of grading."""
import functools
import random
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdlab.checks import CHECKS, check_dkd_loss, check_permute_dark_knowledge
from kdlab.checks._common import PASS_MARK
from kdlab.checks._registry import judge, probe_data


def _T(T):
    if not T > 0:
        raise ValueError(f"T must be > 0, got {T}")


def _mask(s, y):
    return torch.zeros_like(s, dtype=torch.bool).scatter_(1, y[:, None], True)


def _binary_log(z, y, T):
    log_p = F.log_softmax(z / T, 1)
    rest = torch.logsumexp(log_p.masked_fill(_mask(z, y), float("-inf")), 1)
    return torch.stack([log_p.gather(1, y[:, None]).squeeze(1), rest], 1)


def _q_log(z, y, T):
    return F.log_softmax((z / T).masked_fill(_mask(z, y), float("-inf")), 1)


def _kl(la, lb, skip=None):
    if skip is None:
        return (la.exp() * (la - lb)).sum(1)
    la, lb = la.masked_fill(skip, 0.0), lb.masked_fill(skip, 0.0)
    return (la.exp() * (la - lb)).masked_fill(skip, 0.0).sum(1)


def _parts(s, t, y, Ts, Tt):
    tckd = _kl(_binary_log(t, y, Tt), _binary_log(s, y, Ts))
    nckd = _kl(_q_log(t, y, Tt), _q_log(s, y, Ts), _mask(s, y))
    return tckd, nckd


# ------------------------------------------------------------------ dkd_loss: right


def dkd_masked(s, t, y, T, alpha, beta):
    """The lab's solution: logsumexp for log(1 - p_y), -inf for the removed class."""
    _T(T)
    tc, nc = _parts(s, t.detach(), y, T, T)
    return T**2 * (alpha * tc + beta * nc).mean()


def dkd_official_nckd(s, t, y, T, alpha, beta):
    """Zhao et al.'s code for NCKD (subtract 1000 from the true logit), kl_div 'sum' / N."""
    _T(T)
    t = t.detach()
    gt = _mask(s, y)
    tc = _kl(_binary_log(t, y, T), _binary_log(s, y, T)).mean()
    p_t2 = F.softmax(t / T - 1000.0 * gt, dim=1)
    log_s2 = F.log_softmax(s / T - 1000.0 * gt, dim=1)
    nc = F.kl_div(log_s2, p_t2, reduction="sum") / y.shape[0]
    return T**2 * (alpha * tc + beta * nc)


def dkd_cross_entropy(s, t, y, T, alpha, beta):
    """Cross-entropy form: the KL minus the teacher's entropies (same gradient)."""
    _T(T)
    t = t.detach()
    lb_s, lb_t = _binary_log(s, y, T), _binary_log(t, y, T)
    lq_s, lq_t = _q_log(s, y, T), _q_log(t, y, T)
    tc = -(lb_t.exp() * lb_s).sum(1)
    nc = -(lq_t.exp() * lq_s).masked_fill(_mask(s, y), 0.0).sum(1)
    return T * T * (alpha * tc + beta * nc).mean()


def dkd_row_loop(s, t, y, T, alpha, beta):
    """One example at a time, the wrong classes picked by index."""
    _T(T)
    losses = []
    for i in range(s.shape[0]):
        keep = [c for c in range(s.shape[1]) if c != int(y[i])]
        ls, lt = F.log_softmax(s[i] / T, 0), F.log_softmax(t[i].detach() / T, 0)
        bs = torch.stack([ls[y[i]], torch.logsumexp(ls[keep], 0)])
        bt = torch.stack([lt[y[i]], torch.logsumexp(lt[keep], 0)])
        qs, qt = F.log_softmax(s[i, keep] / T, 0), F.log_softmax(t[i, keep].detach() / T, 0)
        losses.append(alpha * (bt.exp() * (bt - bs)).sum() + beta * (qt.exp() * (qt - qs)).sum())
    return T**2 * torch.stack(losses).mean()


def dkd_kl_div_batchmean(s, t, y, T, alpha, beta):
    """F.kl_div with log targets; q as log p - log(1 - p_y), in logs."""
    _T(T)
    t = t.detach()
    gt = _mask(s, y)
    b_s, b_t = _binary_log(s, y, T), _binary_log(t, y, T)
    tc = F.kl_div(b_s, b_t, reduction="batchmean", log_target=True)
    q_s = (F.log_softmax(s / T, 1) - b_s[:, 1:]).masked_fill(gt, -1e4)
    q_t = (F.log_softmax(t / T, 1) - b_t[:, 1:]).masked_fill(gt, -1e4)
    nc = F.kl_div(q_s, q_t, reduction="batchmean", log_target=True)
    return T * T * (alpha * tc + beta * nc)


def dkd_float64(s, t, y, T, alpha, beta):
    _T(T)
    return dkd_masked(s.double(), t.double(), y, T, alpha, beta).float()


@pytest.mark.parametrize("fn", [dkd_masked, dkd_official_nckd, dkd_cross_entropy, dkd_row_loop,
                                dkd_kl_div_batchmean, dkd_float64])
def test_dkd_accepts(fn, capsys):
    check_dkd_loss(fn)
    assert capsys.readouterr().out.startswith(PASS_MARK)


# ------------------------------------------------------------------ dkd_loss: wrong


def dkd_stub(s, t, y, T, alpha, beta):
    raise NotImplementedError


def dkd_no_T2(s, t, y, T, alpha, beta):
    _T(T)
    return dkd_masked(s, t, y, T, alpha, beta) / T**2


def dkd_no_T(s, t, y, T, alpha, beta):
    _T(T)
    tc, nc = _parts(s, t.detach(), y, 1.0, 1.0)
    return T**2 * (alpha * tc + beta * nc).mean()


def dkd_teacher_not_softened(s, t, y, T, alpha, beta):
    _T(T)
    tc, nc = _parts(s, t.detach(), y, T, 1.0)
    return T**2 * (alpha * tc + beta * nc).mean()


def dkd_student_not_softened(s, t, y, T, alpha, beta):
    _T(T)
    tc, nc = _parts(s, t.detach(), y, 1.0, T)
    return T**2 * (alpha * tc + beta * nc).mean()


def dkd_reversed(s, t, y, T, alpha, beta):
    _T(T)
    t = t.detach()
    tc = F.kl_div(_binary_log(t, y, T), _binary_log(s, y, T), reduction="batchmean",
                  log_target=True)
    nc = _kl(_q_log(s, y, T), _q_log(t, y, T), _mask(s, y)).mean()
    return T**2 * (alpha * tc + beta * nc)


def dkd_swapped(s, t, y, T, alpha, beta):
    return dkd_masked(s, t, y, T, beta, alpha)


def dkd_classic_weight(s, t, y, T, alpha, beta):
    _T(T)
    tc, nc = _parts(s, t.detach(), y, T, T)
    w = 1 - F.softmax(t.detach() / T, 1).gather(1, y[:, None]).squeeze(1)
    return T**2 * (alpha * tc + beta * w * nc).mean()


def dkd_q_not_renormalised(s, t, y, T, alpha, beta):
    _T(T)
    t = t.detach()
    tc, _ = _parts(s, t, y, T, T)
    ls, lt = F.log_softmax(s / T, 1), F.log_softmax(t / T, 1)
    nc = (lt.exp() * (lt - ls)).masked_fill(_mask(s, y), 0.0).sum(1)
    return T**2 * (alpha * tc + beta * nc).mean()


def dkd_target_logit_zero(s, t, y, T, alpha, beta):
    _T(T)
    t = t.detach()
    tc, _ = _parts(s, t, y, T, T)
    gt = _mask(s, y)
    ls = F.log_softmax((s / T).masked_fill(gt, 0.0), 1)
    lt = F.log_softmax((t / T).masked_fill(gt, 0.0), 1)
    nc = F.kl_div(ls, lt, reduction="none", log_target=True).masked_fill(gt, 0.0).sum(1)
    return T**2 * (alpha * tc + beta * nc).mean()


def dkd_tckd_target_only(s, t, y, T, alpha, beta):
    _T(T)
    t = t.detach()
    _, nc = _parts(s, t, y, T, T)
    ls = F.log_softmax(s / T, 1).gather(1, y[:, None]).squeeze(1)
    lt = F.log_softmax(t / T, 1).gather(1, y[:, None]).squeeze(1)
    return T**2 * (alpha * lt.exp() * (lt - ls) + beta * nc).mean()


def dkd_teacher_argmax(s, t, y, T, alpha, beta):
    return dkd_masked(s, t, t.argmax(1), T, alpha, beta)


def dkd_sum_batch(s, t, y, T, alpha, beta):
    _T(T)
    tc, nc = _parts(s, t.detach(), y, T, T)
    return T**2 * (alpha * tc + beta * nc).sum()


def dkd_mean_reduction(s, t, y, T, alpha, beta):
    _T(T)
    t = t.detach()
    tc = F.kl_div(_binary_log(s, y, T), _binary_log(t, y, T), reduction="mean", log_target=True)
    q_t = F.softmax((t / T).masked_fill(_mask(s, y), float("-inf")), 1)
    q_s = _q_log(s, y, T).masked_fill(_mask(s, y), 0.0)
    nc = F.kl_div(q_s, q_t, reduction="mean")
    return T**2 * (alpha * tc + beta * nc)


def dkd_teacher_grad(s, t, y, T, alpha, beta):
    _T(T)
    tc, nc = _parts(s, t, y, T, T)  # no detach
    return T**2 * (alpha * tc + beta * nc).mean()


def dkd_no_value_error(s, t, y, T, alpha, beta):
    tc, nc = _parts(s, t.detach(), y, T, T)
    return T**2 * (alpha * tc + beta * nc).mean()


def dkd_official_tckd(s, t, y, T, alpha, beta):
    """Zhao et al.'s code: b from summed probabilities, then torch.log (unstable)."""
    _T(T)
    t = t.detach()
    gt = _mask(s, y)

    def cat_mask(p):
        return torch.stack([(p * gt).sum(1), (p * ~gt).sum(1)], 1)

    p_s, p_t = cat_mask(F.softmax(s / T, 1)), cat_mask(F.softmax(t / T, 1))
    tc = F.kl_div(torch.log(p_s), p_t, reduction="sum") / y.shape[0]
    nc = F.kl_div(F.log_softmax(s / T - 1000.0 * gt, 1), F.softmax(t / T - 1000.0 * gt, 1),
                  reduction="sum") / y.shape[0]
    return T**2 * (alpha * tc + beta * nc)


def dkd_log1p(s, t, y, T, alpha, beta):
    _T(T)
    t = t.detach()

    def b(z):
        log_py = F.log_softmax(z / T, 1).gather(1, y[:, None]).squeeze(1)
        return torch.stack([log_py, torch.log1p(-log_py.exp())], 1)

    tc = _kl(b(t), b(s))
    _, nc = _parts(s, t, y, T, T)
    return T**2 * (alpha * tc + beta * nc).mean()


def dkd_per_example(s, t, y, T, alpha, beta):
    _T(T)
    tc, nc = _parts(s, t.detach(), y, T, T)
    return T**2 * (alpha * tc + beta * nc)


def dkd_item(s, t, y, T, alpha, beta):
    return dkd_masked(s, t, y, T, alpha, beta).item()


def dkd_detached(s, t, y, T, alpha, beta):
    return dkd_masked(s.detach(), t, y, T, alpha, beta)


def dkd_in_place(s, t, y, T, alpha, beta):
    _T(T)
    with torch.no_grad():
        t /= T
    tc, nc = _parts(s, t.detach(), y, T, 1.0)
    return T**2 * (alpha * tc + beta * nc).mean()


def dkd_nan_at_target(s, t, y, T, alpha, beta):
    """The removed class's 0 * (-inf - -inf) left in the NCKD sum: a nan loss."""
    _T(T)
    t = t.detach()
    tc, _ = _parts(s, t, y, T, T)
    lq_s, lq_t = _q_log(s, y, T), _q_log(t, y, T)
    nc = (lq_t.exp() * (lq_t - lq_s)).sum(1)
    return T**2 * (alpha * tc + beta * nc).mean()


def dkd_T_not_T2(s, t, y, T, alpha, beta):
    _T(T)
    return dkd_masked(s, t, y, T, alpha, beta) / T


def dkd_nckd_all_classes(s, t, y, T, alpha, beta):
    """NCKD as KL between the full softmaxes: the target not excluded."""
    _T(T)
    t = t.detach()
    tc, _ = _parts(s, t, y, T, T)
    nc = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="none").sum(1)
    return T**2 * (alpha * tc + beta * nc).mean()


def dkd_softmax_dim0(s, t, y, T, alpha, beta):
    _T(T)
    t = t.detach()
    gt = _mask(s, y)

    def b(z):
        log_p = F.log_softmax(z / T, dim=0)
        rest = torch.logsumexp(log_p.masked_fill(gt, float("-inf")), dim=1)
        return torch.stack([log_p.gather(1, y[:, None]).squeeze(1), rest], dim=1)

    def q(z):
        return F.log_softmax((z / T).masked_fill(gt, float("-inf")), dim=0)

    return T**2 * (alpha * _kl(b(t), b(s)) + beta * _kl(q(t), q(s), gt)).mean()


def dkd_masked_fill_zero(s, t, y, T, alpha, beta):
    """masked_fill(..., 0) where -inf belongs, the KL summed over every class."""
    _T(T)
    t = t.detach()
    tc, _ = _parts(s, t, y, T, T)
    gt = _mask(s, y)
    ls = F.log_softmax((s / T).masked_fill(gt, 0), 1)
    lt = F.log_softmax((t / T).masked_fill(gt, 0), 1)
    nc = F.kl_div(ls, lt, reduction="none", log_target=True).sum(1)
    return T**2 * (alpha * tc + beta * nc).mean()


def dkd_student_argmax(s, t, y, T, alpha, beta):
    return dkd_masked(s, t, s.detach().argmax(1), T, alpha, beta)


def dkd_student_q_unnormalised(s, t, y, T, alpha, beta):
    """The teacher's q renormalised, the student's left as softmax(s / T) at the wrong classes."""
    _T(T)
    t = t.detach()
    tc, _ = _parts(s, t, y, T, T)
    gt = _mask(s, y)
    nc = _kl(_q_log(t, y, T), F.log_softmax(s / T, 1), gt)
    return T**2 * (alpha * tc + beta * nc).mean()


def dkd_teacher_q_unnormalised(s, t, y, T, alpha, beta):
    """The teacher's q left as softmax(t / T) at the wrong classes (sums to 1 - p_t,y)."""
    _T(T)
    t = t.detach()
    tc, _ = _parts(s, t, y, T, T)
    gt = _mask(s, y)
    pt = F.softmax(t / T, 1).masked_fill(gt, 0.0)
    nc = -(pt * _q_log(s, y, T).masked_fill(gt, 0.0)).sum(1)
    return T**2 * (alpha * tc + beta * nc).mean()


@pytest.mark.parametrize("fn, message", [
    (dkd_T_not_T2, "multiplied by T, not by T**2"),
    (dkd_nckd_all_classes, "the true class is not excluded"),
    (dkd_softmax_dim0, "over dimension 0"),
    (dkd_masked_fill_zero, "(masked_fill(..., 0)) instead of removing it, and the KL sums"),
    (dkd_student_argmax, "the student's most likely class"),
    (dkd_student_q_unnormalised, "the student's non-target log-probabilities"),
    (dkd_teacher_q_unnormalised, "a teacher q left unnormalised"),
    (dkd_stub, "not implemented yet"),
    (dkd_no_T2, "missing its factor T**2"),
    (dkd_no_T, "the logits are not divided by T"),
    (dkd_teacher_not_softened, "the teacher's logits are not divided by T"),
    (dkd_student_not_softened, "the student's logits are not divided by T"),
    (dkd_reversed, "you computed KL(student || teacher)"),
    (dkd_swapped, "alpha and beta are swapped"),
    (dkd_classic_weight, "the weight classic KD gives it"),
    (dkd_q_not_renormalised, "they sum to 1 - p_y, not 1"),
    (dkd_target_logit_zero, "sets the true class's logit to 0"),
    (dkd_tckd_target_only, "the term of the wrong-class mass 1 - p_y is missing"),
    (dkd_teacher_argmax, "the teacher's most likely class"),
    (dkd_sum_batch, "summed over the batch"),
    (dkd_mean_reduction, "averaged over its classes"),
    (dkd_teacher_grad, "teacher_logits received a gradient"),
    (dkd_no_value_error, "T=0.0 should raise ValueError"),
    (dkd_official_tckd, "underflow to 0 in float32"),
    (dkd_log1p, "underflow to 0 in float32"),
    (dkd_per_example, "one value per example"),
    (dkd_item, "should be a torch.Tensor"),
    (dkd_detached, "does not depend on student_logits"),
    (dkd_in_place, "changed the teacher_logits passed to it"),
    (dkd_nan_at_target, "the gradient is right but the loss is nan"),
])
def test_dkd_rejects(fn, message):
    with pytest.raises(AssertionError) as e:
        check_dkd_loss(fn)
    assert message in str(e.value), str(e.value)
    assert "Hint:" in str(e.value)


# ------------------------------------------------------------------ permute: right


def perm_argsort(p, labels, generator):
    """The lab's solution: sort random keys, the true class's key last."""
    N, C = p.shape
    rows = torch.arange(N)
    keys = torch.rand(N, C, generator=generator)
    keys[rows, labels] = 2.0
    order = keys.argsort(dim=1)[:, :C - 1]
    wrong = torch.ones(N, C, dtype=torch.bool)
    wrong[rows, labels] = False
    out = p.clone()
    out[rows[:, None], wrong.nonzero()[:, 1].view(N, C - 1)] = p.gather(1, order)
    return out


def perm_loop_randperm(p, labels, generator):
    """Row by row, on Python lists: a randperm of each row's C - 1 wrong classes."""
    rows, C = p.tolist(), p.shape[1]
    for row, y in zip(rows, labels.tolist()):
        others = [c for c in range(C) if c != y]
        values = [row[c] for c in others]
        for c, j in zip(others, torch.randperm(C - 1, generator=generator).tolist()):
            row[c] = values[j]
    return torch.tensor(rows, dtype=p.dtype)


def perm_multinomial(p, labels, generator):
    N, C = p.shape
    out = p.clone()
    w = torch.ones(N, C)
    w[torch.arange(N), labels] = 0
    pick = torch.multinomial(w, C - 1, replacement=False, generator=generator)  # shuffled others
    mask = w.bool()
    out[mask] = p.gather(1, pick).reshape(-1)
    return out


def perm_swap_back(p, labels, generator):
    """Shuffle the whole row, then swap the true class's value back into its column."""
    C = p.shape[1]
    out = []
    for row, y in zip(p.tolist(), labels.tolist()):
        new = [row[k] for k in torch.randperm(C, generator=generator).tolist()]
        j = new.index(row[y])
        new[j], new[y] = new[y], new[j]
        out.append(new)
    return torch.tensor(out, dtype=p.dtype)


@pytest.mark.parametrize("fn", [perm_argsort, perm_loop_randperm, perm_multinomial,
                                perm_swap_back])
def test_permute_accepts(fn, capsys):
    check_permute_dark_knowledge(fn)
    assert capsys.readouterr().out.startswith(PASS_MARK)


# ------------------------------------------------------------------ permute: wrong


def perm_stub(p, labels, generator):
    raise NotImplementedError


def perm_identity(p, labels, generator):
    return p.clone()


def perm_whole_row(p, labels, generator):
    keys = torch.rand(p.shape, generator=generator)
    return p.gather(1, keys.argsort(1))


def perm_one_order(p, labels, generator):
    C = p.shape[1]
    order = torch.randperm(C - 1, generator=generator).tolist()
    rows = p.tolist()
    for row, y in zip(rows, labels.tolist()):
        others = [c for c in range(C) if c != y]
        values = [row[others[k]] for k in order]
        for c, v in zip(others, values):
            row[c] = v
    return torch.tensor(rows, dtype=p.dtype)


def perm_global_torch(p, labels, generator):
    rows, C = p.tolist(), p.shape[1]
    for row, y in zip(rows, labels.tolist()):
        others = [c for c in range(C) if c != y]
        values = [row[c] for c in others]
        for c, j in zip(others, torch.randperm(len(others)).tolist()):
            row[c] = values[j]
    return torch.tensor(rows, dtype=p.dtype)


def perm_global_numpy(p, labels, generator):
    rows, C = p.tolist(), p.shape[1]
    for row, y in zip(rows, labels.tolist()):
        others = [c for c in range(C) if c != y]
        old = list(row)
        for c, k in zip(others, np.random.permutation(others).tolist()):
            row[c] = old[k]
    return torch.tensor(rows, dtype=p.dtype)


def perm_clock(p, labels, generator):
    return perm_argsort(p, labels, torch.Generator().manual_seed(time.perf_counter_ns()))


def perm_in_place(p, labels, generator):
    out = perm_argsort(p, labels, generator)
    p.copy_(out)
    return p


def perm_across_rows(p, labels, generator):
    N, C = p.shape
    wrong = torch.ones(N, C, dtype=torch.bool)
    wrong[torch.arange(N), labels] = False
    vals = p[wrong]
    out = p.clone()
    out[wrong] = vals[torch.randperm(len(vals), generator=generator)]
    return out


def perm_with_replacement(p, labels, generator):
    N, C = p.shape
    w = torch.ones(N, C)
    w[torch.arange(N), labels] = 0
    pick = torch.multinomial(w, C - 1, replacement=True, generator=generator)
    out = p.clone()
    out[w.bool()] = p.gather(1, pick).reshape(-1)
    return out


def perm_rotation(p, labels, generator):
    rows, C = p.tolist(), p.shape[1]
    for row, y in zip(rows, labels.tolist()):
        others = [c for c in range(C) if c != y]
        n = len(others)
        k = int(torch.randint(0, n, (1,), generator=generator))
        values = [row[others[(m - k) % n]] for m in range(n)]  # others rolled by k
        for c, v in zip(others, values):
            row[c] = v
    return torch.tensor(rows, dtype=p.dtype)


def perm_naive_swaps(p, labels, generator):
    """Swap each wrong-class entry with one at any random position: a biased shuffle."""
    rows, C = p.tolist(), p.shape[1]
    n = C - 1
    for row, y in zip(rows, labels.tolist()):
        others = [c for c in range(C) if c != y]
        idx = list(others)
        for a in range(n):
            b = int(torch.randint(0, n, (1,), generator=generator))
            idx[a], idx[b] = idx[b], idx[a]
        values = [row[k] for k in idx]
        for c, v in zip(others, values):
            row[c] = v
    return torch.tensor(rows, dtype=p.dtype)


def perm_to_float32(p, labels, generator):
    return perm_argsort(p.float(), labels, generator)


def perm_sorted(p, labels, generator):
    """Deterministic: the wrong-class values in decreasing order."""
    rows, C = p.tolist(), p.shape[1]
    for row, y in zip(rows, labels.tolist()):
        others = [c for c in range(C) if c != y]
        for c, v in zip(others, sorted((row[c] for c in others), reverse=True)):
            row[c] = v
    return torch.tensor(rows, dtype=p.dtype)


def perm_numpy_out(p, labels, generator):
    return perm_argsort(p, labels, generator).numpy()


def perm_others_only(p, labels, generator):
    out = perm_argsort(p, labels, generator)
    keep = torch.ones_like(p, dtype=torch.bool)
    keep[torch.arange(len(labels)), labels] = False
    return out[keep].view(p.shape[0], -1)


def perm_put_back_overwrite(p, labels, generator):
    """Shuffle the whole row, then write p_y into its column over the value that was there."""
    out = p.gather(1, torch.rand(p.shape, generator=generator).argsort(1))
    rows = torch.arange(len(labels))
    out[rows, labels] = p[rows, labels]
    return out


def perm_batch_rows(p, labels, generator):
    return p[torch.randperm(p.shape[0], generator=generator)]


def perm_one_column_order(p, labels, generator):
    return p[:, torch.randperm(p.shape[1], generator=generator)]


def perm_argsort_gather(p, labels, generator):
    """argsort of p taken for a random order."""
    return p.gather(1, p.argsort(dim=1))


def perm_argsort_indices(p, labels, generator):
    return torch.rand(p.shape, generator=generator).argsort(dim=1)


def perm_sattolo(p, labels, generator):
    """Fisher-Yates with j drawn in 0..i-1: only cyclic orders."""
    rows, C = p.tolist(), p.shape[1]
    for row, y in zip(rows, labels.tolist()):
        others = [c for c in range(C) if c != y]
        idx = list(others)
        for a in range(len(idx) - 1, 0, -1):
            b = int(torch.randint(0, a, (1,), generator=generator))
            idx[a], idx[b] = idx[b], idx[a]
        values = [row[k] for k in idx]
        for c, v in zip(others, values):
            row[c] = v
    return torch.tensor(rows, dtype=p.dtype)


def perm_global_python(p, labels, generator):
    rows, C = p.tolist(), p.shape[1]
    for row, y in zip(rows, labels.tolist()):
        others = [c for c in range(C) if c != y]
        shuffled = list(others)
        random.shuffle(shuffled)
        values = [row[k] for k in shuffled]
        for c, v in zip(others, values):
            row[c] = v
    return torch.tensor(rows, dtype=p.dtype)


def perm_fixed_seed(p, labels, generator):
    return perm_argsort(p, labels, torch.Generator().manual_seed(0))


def perm_renormalised(p, labels, generator):
    out = perm_argsort(p, labels, generator)
    return out / out.sum(dim=1, keepdim=True)


def perm_noise(p, labels, generator):
    out = perm_argsort(p, labels, generator) + 1e-3 * torch.rand(p.shape, generator=generator)
    return out / out.sum(dim=1, keepdim=True)


def perm_argmax_kept(p, labels, generator):
    return perm_argsort(p, p.argmax(dim=1), generator)


def perm_randint_keys(p, labels, generator):
    """Random keys with ties (argsort keeps the original order among equal keys): biased."""
    N, C = p.shape
    rows = torch.arange(N)
    keys = torch.randint(0, 6, (N, C), generator=generator).double()
    keys[rows, labels] = 99.0
    order = keys.argsort(dim=1, stable=True)[:, :C - 1]
    wrong = torch.ones(N, C, dtype=torch.bool)
    wrong[rows, labels] = False
    out = p.clone()
    out[rows[:, None], wrong.nonzero()[:, 1].view(N, C - 1)] = p.gather(1, order)
    return out


PERMUTE_WRONG = [
    (perm_stub, "not implemented yet"),
    (perm_identity, "nothing was shuffled"),
    (perm_whole_row, "you shuffled all C columns of each row"),
    (perm_put_back_overwrite, "appears twice in row"),
    (perm_batch_rows, "you shuffled the batch (dimension 0)"),
    (perm_one_order, "you drew one order and applied it to every row"),
    (perm_one_column_order, "ONE order of all C columns for the whole batch"),
    (perm_global_torch, "you drew from torch's global random generator"),
    (perm_global_numpy, "you drew from numpy's global random generator"),
    (perm_global_python, "you drew from Python's random module"),
    (perm_clock, "not reproducible"),
    (perm_fixed_seed, "a generator of your own with a fixed seed"),
    (perm_in_place, "changed the p passed to it"),
    (perm_across_rows, "values moved from one row to another"),
    (perm_with_replacement, "with replacement"),
    (perm_rotation, "a rotation is not a shuffle"),
    (perm_naive_swaps, "the frequencies of the naive swap shuffle"),
    (perm_sattolo, "Sattolo"),
    (perm_randint_keys, "are not equally likely"),
    (perm_to_float32, "p is float64 but your result is float32"),
    (perm_sorted, "you sorted them instead of shuffling them"),
    (perm_argsort_gather, "every row of your result is sorted (ascending)"),
    (perm_argsort_indices, "you returned column indices"),
    (perm_numpy_out, "should be a torch.Tensor"),
    (perm_others_only, "you returned only the C - 1 shuffled wrong-class columns"),
    (perm_renormalised, "renormalised the row"),
    (perm_noise, "changed the values (added noise"),
    (perm_argmax_kept, "you kept p.argmax(dim=1) fixed"),
]


@pytest.mark.parametrize("fn, message", PERMUTE_WRONG)
def test_permute_rejects(fn, message):
    with pytest.raises(AssertionError) as e:
        check_permute_dark_knowledge(fn)
    assert message in str(e.value), str(e.value)
    assert "Hint:" in str(e.value)


def test_permute_probe_leaves_the_global_random_state_alone():
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    before = (torch.rand(3), np.random.rand(), random.random())
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    check_permute_dark_knowledge(perm_argsort)
    assert torch.equal(torch.rand(3), before[0]) and np.random.rand() == before[1]
    assert random.random() == before[2]


# ------------------------------------------------------------------ the grader's path: fresh inputs


@functools.lru_cache(maxsize=None)
def _graded(name, fn, seed):
    """The grader's verdict on `fn` at `seed` (the pass detail, or the AssertionError it
    raised), worked out once in this module: two tests judge some answers at the same seed,
    and an answer that loops over the 10,000 identical rows takes half a second."""
    check = CHECKS[name]
    try:
        return judge(check, probe_data(check, fn, seed), seed)
    except AssertionError as e:
        return e


def _grade(name, fn, seed):
    """``judge(check, probe_data(check, fn, seed), seed)``, as ``_graded`` recorded it."""
    out = _graded(name, fn, seed)
    if isinstance(out, AssertionError):
        raise out
    return out


@pytest.mark.parametrize("seed", [0, 1, 7, 12345])
@pytest.mark.parametrize("name, fn", [("dkd_loss", dkd_masked), ("dkd_loss", dkd_cross_entropy),
                                      ("dkd_loss", dkd_official_nckd),
                                      ("permute_dark_knowledge", perm_argsort),
                                      ("permute_dark_knowledge", perm_loop_randperm),
                                      ("permute_dark_knowledge", perm_swap_back)])
def test_right_answers_pass_on_fresh_inputs(name, fn, seed):
    """The grader draws inputs from a secret seed and computes their key: right answers pass."""
    check = CHECKS[name]
    assert judge(check, probe_data(check, fn, seed), seed)


@pytest.mark.parametrize("seed", [0, 3, 99])
@pytest.mark.parametrize("name, fn, message", [
    ("dkd_loss", dkd_classic_weight, "the weight classic KD gives it"),
    ("dkd_loss", dkd_teacher_argmax, "the teacher's most likely class"),
    ("dkd_loss", dkd_official_tckd, "underflow to 0"),
    ("dkd_loss", dkd_q_not_renormalised, "they sum to 1 - p_y"),
    ("dkd_loss", dkd_T_not_T2, "multiplied by T, not by T"),
    ("dkd_loss", dkd_mean_reduction, "averaged over its classes"),
    ("dkd_loss", dkd_nckd_all_classes, "the true class is not excluded"),
    ("dkd_loss", dkd_softmax_dim0, "over dimension 0"),
    ("dkd_loss", dkd_masked_fill_zero, "and the KL sums over every class"),
    ("dkd_loss", dkd_student_argmax, "the student's most likely class"),
    ("dkd_loss", dkd_student_q_unnormalised, "the student's non-target log-probabilities"),
    ("permute_dark_knowledge", perm_one_order, "one order"),
    ("permute_dark_knowledge", perm_global_torch, "global random generator"),
    ("permute_dark_knowledge", perm_whole_row, "moved"),
    ("permute_dark_knowledge", perm_naive_swaps, "naive swap shuffle"),
])
def test_wrong_answers_fail_on_fresh_inputs_with_their_message(name, fn, message, seed):
    with pytest.raises(AssertionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _grade(name, fn, seed)


@pytest.mark.parametrize("fn, message", PERMUTE_WRONG)
def test_permute_mistakes_are_named_on_fresh_inputs(fn, message):
    """The grader's fresh inputs get the same message as the notebook's."""
    with pytest.raises(AssertionError) as e:
        _grade("permute_dark_knowledge", fn, 3)
    assert message in str(e.value), str(e.value)


def perm_naive_swaps_vectorised(p, labels, generator):
    """The naive swap shuffle of every row at once: swap position a with any position."""
    N, C = p.shape
    rows = torch.arange(N)
    wrong = torch.ones(N, C, dtype=torch.bool)
    wrong[rows, labels] = False
    cols = wrong.nonzero()[:, 1].view(N, C - 1)
    idx = cols.clone()
    for a in range(C - 1):
        b = torch.randint(0, C - 1, (N,), generator=generator)
        ia, ib = idx[:, a].clone(), idx[rows, b].clone()
        idx[:, a], idx[rows, b] = ib, ia
    out = p.clone()
    out[rows[:, None], cols] = p.gather(1, idx)
    return out


FRESH_SEEDS = range(1000, 1020)


@pytest.mark.parametrize("fn, passes", [(perm_argsort, True), (perm_naive_swaps_vectorised, False)])
def test_uniformity_on_20_fresh_seeds(fn, passes):
    """A biased shuffle never passes and a right one never fails on 20 fresh grading seeds
    (the limit's false rejection is 1e-9 per grading, a naive swap's pass 2e-51)."""
    check = CHECKS["permute_dark_knowledge"]
    for seed in FRESH_SEEDS:
        if passes:
            assert judge(check, probe_data(check, fn, seed), seed)
        else:
            with pytest.raises(AssertionError, match="naive swap shuffle"):
                judge(check, probe_data(check, fn, seed), seed)


def test_fresh_inputs_are_of_the_notebooks_kinds():
    """The grader's cases have the notebook's shapes, settings and kinds (confident rows, a
    teacher right and wrong, identical rows), with other values."""
    for name in ("dkd_loss", "permute_dark_knowledge"):
        check = CHECKS[name]
        fixed, fresh = check.inputs(None), check.inputs(42)
        assert fixed.keys() == fresh.keys()
        for k in fixed:
            a, b = fixed[k], fresh[k]
            if torch.is_tensor(a):
                assert a.shape == b.shape and a.dtype == b.dtype and not torch.equal(a, b)
    d = CHECKS["dkd_loss"].inputs(42)
    right = d["t"].argmax(1) == d["y"]
    assert right.any() and not right.all()
    margin = d["s_conf"].max(1).values - d["s_conf"].topk(2, 1).values[:, 1]
    assert (margin > 95).all()
    row, label, _ = CHECKS["permute_dark_knowledge"].inputs(42)["same"]
    assert row.shape == (5,) and len(set(row.tolist())) == 5 and 0 <= label < 5
