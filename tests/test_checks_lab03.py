"""Mutation tests of Lab 03's check: check_kd_loss rejects common mistakes, accepts right answers."""
import pytest
import torch
import torch.nn.functional as F

import kdlab as kd
from kdlab.checks import lab03
from kdlab.losses import kd_loss as reference_kd_loss


def _check_T(T):
    if T <= 0:
        raise ValueError(f"temperature T must be > 0, got {T}")


# ------------------------------------------------------------------ right answers

def right_kl_div(s, t, y, T, alpha):
    _check_T(T)
    soft = F.kl_div(F.log_softmax(s / T, dim=1), F.softmax(t.detach() / T, dim=1),
                    reduction="batchmean")
    return (1 - alpha) * F.cross_entropy(s, y) + alpha * T**2 * soft


def right_soft_ce(s, t, y, T, alpha):
    """Soft-target cross-entropy: the KL form plus the teacher's entropy (a constant)."""
    _check_T(T)
    with torch.no_grad():
        p_t = F.softmax(t / T, dim=1)
    soft = -(p_t * F.log_softmax(s / T, dim=1)).sum(dim=1).mean()
    return (1 - alpha) * F.cross_entropy(s, y) + alpha * T * T * soft


def right_ce_prob_targets(s, t, y, T, alpha):
    _check_T(T)
    soft = F.cross_entropy(s / T, F.softmax(t.detach() / T, dim=1))
    return (1 - alpha) * F.cross_entropy(s, y) + alpha * T * T * soft


def right_log_target(s, t, y, T, alpha):
    if not T > 0:
        raise ValueError("T must be positive")
    log_ps, log_pt = F.log_softmax(s / T, 1), F.log_softmax(t / T, 1).detach()
    soft = (log_pt.exp() * (log_pt - log_ps)).sum(1).mean()
    hard = -log_ps.new_zeros(()) + F.nll_loss(F.log_softmax(s, 1), y)
    return (1 - alpha) * hard + alpha * (T**2) * soft


@pytest.mark.parametrize("fn", [right_kl_div, right_soft_ce, right_ce_prob_targets,
                                right_log_target, reference_kd_loss])
def test_accepts_right_answers(fn, capsys):
    kd.checks.check_kd_loss(fn)
    assert capsys.readouterr().out.startswith("PASSED check_kd_loss")


# ------------------------------------------------------------------ mistakes, each with its message

def no_T2(s, t, y, T, alpha):
    _check_T(T)
    soft = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t.detach() / T, 1), reduction="batchmean")
    return (1 - alpha) * F.cross_entropy(s, y) + alpha * soft


def reversed_kl(s, t, y, T, alpha):
    _check_T(T)
    soft = F.kl_div(F.log_softmax(t.detach() / T, 1), F.softmax(s / T, 1), reduction="batchmean")
    return (1 - alpha) * F.cross_entropy(s, y) + alpha * T**2 * soft


def teacher_not_softened(s, t, y, T, alpha):
    _check_T(T)
    soft = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t.detach(), 1), reduction="batchmean")
    return (1 - alpha) * F.cross_entropy(s, y) + alpha * T**2 * soft


def student_not_softened(s, t, y, T, alpha):
    _check_T(T)
    soft = F.kl_div(F.log_softmax(s, 1), F.softmax(t.detach() / T, 1), reduction="batchmean")
    return (1 - alpha) * F.cross_entropy(s, y) + alpha * T**2 * soft


def alpha_on_hard(s, t, y, T, alpha):
    _check_T(T)
    soft = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t.detach() / T, 1), reduction="batchmean")
    return alpha * F.cross_entropy(s, y) + (1 - alpha) * T**2 * soft


def mean_over_classes(s, t, y, T, alpha):
    _check_T(T)
    soft = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t.detach() / T, 1), reduction="mean")
    return (1 - alpha) * F.cross_entropy(s, y) + alpha * T**2 * soft


def sum_over_batch(s, t, y, T, alpha):
    _check_T(T)
    soft = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t.detach() / T, 1), reduction="sum")
    return (1 - alpha) * F.cross_entropy(s, y, reduction="sum") + alpha * T**2 * soft


def sum_over_batch_soft_only(s, t, y, T, alpha):
    _check_T(T)
    soft = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t.detach() / T, 1), reduction="sum")
    return (1 - alpha) * F.cross_entropy(s, y) + alpha * T**2 * soft


def mse_probs(s, t, y, T, alpha):
    _check_T(T)
    soft = F.mse_loss(F.softmax(s / T, 1), F.softmax(t.detach() / T, 1))
    return (1 - alpha) * F.cross_entropy(s, y) + alpha * T**2 * soft


def mse_probs_summed_classes(s, t, y, T, alpha):
    _check_T(T)
    soft = ((F.softmax(s / T, 1) - F.softmax(t.detach() / T, 1)) ** 2).sum(1).mean()
    return (1 - alpha) * F.cross_entropy(s, y) + alpha * soft


def hard_ce_softened(s, t, y, T, alpha):
    _check_T(T)
    soft = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t.detach() / T, 1), reduction="batchmean")
    return (1 - alpha) * F.cross_entropy(s / T, y) + alpha * T**2 * soft


def log_target_without_flag(s, t, y, T, alpha):
    _check_T(T)
    soft = F.kl_div(F.log_softmax(s / T, 1), F.log_softmax(t.detach() / T, 1), reduction="batchmean")
    return (1 - alpha) * F.cross_entropy(s, y) + alpha * T**2 * soft


def probs_as_kl_input(s, t, y, T, alpha):
    _check_T(T)
    soft = F.kl_div(F.softmax(s / T, 1), F.softmax(t.detach() / T, 1), reduction="batchmean")
    return (1 - alpha) * F.cross_entropy(s, y) + alpha * T**2 * soft


def teacher_gets_gradient(s, t, y, T, alpha):
    _check_T(T)
    soft = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="batchmean")
    return (1 - alpha) * F.cross_entropy(s, y) + alpha * T**2 * soft


def unstable_log_softmax(s, t, y, T, alpha):
    _check_T(T)
    p_t, p_s = F.softmax(t.detach() / T, 1), F.softmax(s / T, 1)
    soft = (p_t * (torch.log(p_t) - torch.log(p_s))).sum(1).mean()
    return (1 - alpha) * F.cross_entropy(s, y) + alpha * T**2 * soft


def no_T_check(s, t, y, T, alpha):
    soft = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t.detach() / T, 1), reduction="batchmean")
    return (1 - alpha) * F.cross_entropy(s, y) + alpha * T**2 * soft


def T_check_wrong_exception(s, t, y, T, alpha):
    assert T > 0
    return right_kl_div(s, t, y, T, alpha)


def per_example(s, t, y, T, alpha):
    _check_T(T)
    soft = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t.detach() / T, 1), reduction="none").sum(1)
    return (1 - alpha) * F.cross_entropy(s, y, reduction="none") + alpha * T**2 * soft


def returns_float(s, t, y, T, alpha):
    return right_kl_div(s, t, y, T, alpha).item()


def plus_constant(s, t, y, T, alpha):
    return right_kl_div(s, t, y, T, alpha) + 1.0


def only_soft_term(s, t, y, T, alpha):
    _check_T(T)
    return alpha * T**2 * F.kl_div(F.log_softmax(s / T, 1), F.softmax(t.detach() / T, 1),
                                   reduction="batchmean")


def stub(s, t, y, T, alpha):
    # YOUR CODE HERE
    raise NotImplementedError


MISTAKES = [
    (no_T2, "missing its factor T**2"),
    (reversed_kl, "KL divergence is reversed"),
    (teacher_not_softened, "teacher's logits are not divided by T"),
    (student_not_softened, "student's logits are not divided by T"),
    (alpha_on_hard, "alpha weights the wrong term"),
    (mean_over_classes, "averaged over the classes"),
    (sum_over_batch, "summed over the batch instead of averaged"),
    (sum_over_batch_soft_only, "soft term is summed over the batch"),
    (mse_probs, "squared error between probabilities"),
    (mse_probs_summed_classes, "squared error between probabilities"),
    (hard_ce_softened, "cross-entropy is computed on the softened student logits"),
    (log_target_without_flag, "without log_target=True"),
    (probs_as_kl_input, "expects log-probabilities"),
    (teacher_gets_gradient, "teacher_logits received a gradient"),
    (unstable_log_softmax, "nan/inf for confident logits"),
    (no_T_check, "T=0.0 was accepted"),
    (T_check_wrong_exception, "expected a ValueError"),
    (per_example, "one value per example"),
    (returns_float, "should be a torch.Tensor"),
    (plus_constant, "the gradient is right but the loss value is not"),
    (only_soft_term, "gradient of your loss with respect to student_logits is wrong"),
    (stub, "not implemented yet"),
]


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")  # kl_div's own warning
@pytest.mark.parametrize("fn,message", MISTAKES, ids=[f.__name__ for f, _ in MISTAKES])
def test_rejects_mistake_with_its_message(fn, message):
    with pytest.raises(AssertionError, match="check_kd_loss") as err:
        kd.checks.check_kd_loss(fn)
    assert message in str(err.value), str(err.value)
    assert "Hint:" in str(err.value)


def test_mistakes_are_distinguishable():
    """At the diagnostic settings every known mistake has its own gradient, unlike the right one."""
    s, t, y = lab03.inputs()
    grads = {}
    for name, (loss_fn, _, _) in [("right", (lab03.reference, "", ""))] + list(lab03.MISTAKES.items()):
        grads[name] = torch.cat([lab03._grad_of(loss_fn, s, t, y, T, a).flatten()
                                 for T, a in lab03.DIAGNOSTIC])
    names = list(grads)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not torch.allclose(grads[a], grads[b], rtol=1e-3, atol=1e-6), (a, b)


def test_reference_matches_shipped_kd_loss():
    s, t, y = lab03.inputs(1)
    for T, a in lab03.DIAGNOSTIC + lab03.EXTRA:
        assert torch.allclose(lab03.reference(s, t, y, T, a), reference_kd_loss(s, t, y, T, a),
                              atol=1e-6)
