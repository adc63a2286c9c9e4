"""Mutation tests of Lab 03's checks: check_kd_loss and check_distill_step reject common
mistakes, each with its own message, and accept right answers (several styles, fresh seeds)."""
import pytest
import torch
import torch.nn.functional as F

import kdlab as kd
from kdlab.checks import lab03
from kdlab.grading import keys
from kdlab.grading.keys.lab03 import kd_loss as reference_kd_loss


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
                                right_log_target])
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
    (no_T_check, "T=0.0 should raise ValueError"),
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


@pytest.mark.parametrize("seed", [None, 0, 1, 7])
def test_mistakes_are_distinguishable(seed):
    """At the diagnostic settings every known mistake has its own gradient, unlike the right
    one, and every mistake of the check's table has its gradients in the answer key."""
    key = keys.make("kd_loss", lab03.kd_loss_inputs(seed))
    grads = {"right": key["diagnostic"], **{name: g for name, g, _ in key["mistakes"]}}
    assert sorted(grads) == sorted(["right"] + [m.name for m in lab03.KD_LOSS_MISTAKES])
    names = list(grads)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not torch.allclose(grads[a], grads[b], rtol=1e-3, atol=1e-6), (a, b)


def test_reference_matches_another_formulation():
    """The answer key's kd_loss (the reference) equals an independently written right loss."""
    inp = lab03.kd_loss_inputs(1)
    s, t, y = inp["s"], inp["t"], inp["y"]
    for T, a in inp["settings"]:
        assert torch.allclose(reference_kd_loss(s, t, y, T, a), right_log_target(s, t, y, T, a),
                              atol=1e-6)


# ------------------------------------------------------------------ kd_loss as probe + verdict

from kdlab.checks import CHECKS  # noqa: E402
from kdlab.checks._registry import judge, probe_data  # noqa: E402

KD = lab03.check_kd_loss


@pytest.mark.parametrize("seed", [0, 1, 7, 12345])
@pytest.mark.parametrize("fn", [right_kl_div, right_soft_ce, right_log_target])
def test_kd_loss_right_answers_pass_on_fresh_inputs(fn, seed):
    assert "gradients match" in judge(KD, probe_data(KD, fn, seed), seed)


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
@pytest.mark.parametrize("seed", [3])
@pytest.mark.parametrize("fn,message", MISTAKES, ids=[f.__name__ for f, _ in MISTAKES])
def test_kd_loss_wrong_answers_fail_on_fresh_inputs(fn, message, seed):
    with pytest.raises(AssertionError) as err:
        judge(KD, probe_data(KD, fn, seed), seed)
    assert message in str(err.value), str(err.value)


def changes_labels(s, t, y, T, alpha):
    out = right_kl_div(s, t, y, T, alpha)
    y.zero_()
    return out


def test_kd_loss_rejects_changing_its_inputs():
    with pytest.raises(AssertionError, match="changed the labels passed to it"):
        kd.checks.check_kd_loss(changes_labels)


@pytest.mark.parametrize("seed", [None, 0, 1])
def test_the_reference_passes_its_check(seed):
    """The answer key's reference implementations are right answers (they live only there)."""
    KD = CHECKS["kd_loss"]
    assert "gradients match" in judge(KD, probe_data(KD, reference_kd_loss, seed), seed)
    step = _step(loss_fn=reference_kd_loss)
    assert "two steps equal" in judge(STEP, probe_data(STEP, step, seed), seed)


OLD_REFERENCE_NAMES = ["reference", "MISTAKES", "teacher_entropy_term", "_grad_of", "_kl",
                       "_kl_div", "_logp", "_mix", "_mse_probs", "_reference_run", "_teacher_out",
                       "_diagnose", "kd_loss", "F"]


def test_public_modules_hold_no_answer():
    """No reference loss or step in the public package: the old names are gone from
    kdlab.checks.lab03, it does no loss arithmetic (no torch.nn.functional), and the course's
    public KD loss, kd.distill.loss, refuses to stand in for either exercise."""
    import ast
    import inspect
    for name in OLD_REFERENCE_NAMES:
        assert not hasattr(lab03, name), name
    tree = ast.parse(inspect.getsource(lab03))  # the code's names, not its messages
    used = {n.attr if isinstance(n, ast.Attribute) else n.id for n in ast.walk(tree)
            if isinstance(n, (ast.Attribute, ast.Name))}
    used |= {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
             for a in n.names} | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    for word in ("functional", "F", "kl_div", "log_softmax", "softmax", "cross_entropy",
                 "backward", "step", "zero_grad"):
        assert word not in used, word
    helper = kd.distill.loss(T=4.0, alpha=0.7)
    with pytest.raises(AssertionError, match="calls a course helper"):
        kd.checks.check_kd_loss(lambda s, t, y, T, a: kd.distill.loss(T, a)(s, t, y))
    with pytest.raises(AssertionError, match="calls a course helper"):
        kd.checks.check_distill_step(_step(loss_fn=lambda s, t, y, T, a: helper(s, t, y)))


KD_PARAMS = [dict(N=64, C=10), dict(N=3, C=3), dict(C=100)]


@pytest.mark.parametrize("params", KD_PARAMS)
def test_kd_loss_params_override(params, capsys):
    kd.checks.check_kd_loss(right_kl_div, **params)
    assert capsys.readouterr().out.startswith("PASSED check_kd_loss")
    inp = lab03.kd_loss_inputs(None, **params)
    assert inp["s"].shape == (params.get("N", 6), params.get("C", 5))
    with pytest.raises(AssertionError, match="summed over the batch"):
        kd.checks.check_kd_loss(sum_over_batch, **params)


def test_kd_loss_bad_params_are_named():
    with pytest.raises(ValueError, match="N >= 2 examples and C >= 3"):
        lab03.kd_loss_inputs(None, N=1)


# ------------------------------------------------------------------ distill_step

def _kd(s, t, y, T, alpha):
    """A right kd_loss, as the notebook's exercise 1 defines it."""
    return right_kl_div(s, t, y, T, alpha)


def step_right(student, teacher, x, y, optimizer, T, alpha):
    student.train()
    teacher.eval()
    with torch.no_grad():
        t_logits = teacher(x)
    s_logits = student(x)
    loss = _kd(s_logits, t_logits, y, T, alpha)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def step_right_other_order(student, teacher, x, y, optimizer, T, alpha):
    """zero_grad(set_to_none=False) first, student before teacher, soft-target CE, float()."""
    optimizer.zero_grad(set_to_none=False)
    teacher.eval()
    student.train()
    out = student(x)
    with torch.inference_mode():
        t = teacher(x)
    t = t.clone()
    loss = right_soft_ce(out, t, y, T, alpha)
    loss.backward()
    optimizer.step()
    return float(loss)


def step_right_restore(student, teacher, x, y, optimizer, T, alpha):
    """The teacher's mode restored afterwards, zero_grad after the step, loss.detach().item()."""
    was = teacher.training
    teacher.eval()
    with torch.no_grad():
        t = teacher(x)
    teacher.train(was)
    student.train()
    loss = _kd(student(x), t, y, T, alpha)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()  # zeroed after the step: the next call starts clean too
    return loss.detach().item()


def _step(teacher_eval=True, no_grad=True, zero_grad=True, do_step=True, student_eval=False,
          swap=False, ret="item", loss_fn=_kd, zero_between=False):
    def fn(student, teacher, x, y, optimizer, T, alpha):
        student.eval() if student_eval else student.train()
        if teacher_eval:
            teacher.eval()
        if no_grad:
            with torch.no_grad():
                t = teacher(x)
        else:
            t = teacher(x)
        s = student(x)
        loss = loss_fn(t, s, y, T, alpha) if swap else loss_fn(s, t, y, T, alpha)
        if zero_grad and not zero_between:
            optimizer.zero_grad()
        loss.backward()
        if zero_between:
            optimizer.zero_grad()
        if do_step:
            optimizer.step()
        return {"item": loss.item(), "tensor": loss, "detached": loss.detach(), "none": None}[ret]
    return fn


def _kd_no_detach(s, t, y, T, alpha):
    soft = -(F.softmax(t / T, 1) * F.log_softmax(s / T, 1)).sum(1).mean()
    return (1 - alpha) * F.cross_entropy(s, y) + alpha * T * T * soft


def step_changes_x(student, teacher, x, y, optimizer, T, alpha):
    x.mul_(1.0 + 1e-3)
    return step_right(student, teacher, x, y, optimizer, T, alpha)


def step_stub(student, teacher, x, y, optimizer, T, alpha):
    # YOUR CODE HERE
    raise NotImplementedError


def step_labels_only(student, teacher, x, y, optimizer, T, alpha):
    return _step(loss_fn=lambda s, t, y_, T_, a: F.cross_entropy(s, y_))(
        student, teacher, x, y, optimizer, T, alpha)


def step_wrong_kd_loss(student, teacher, x, y, optimizer, T, alpha):
    return _step(loss_fn=no_T2)(student, teacher, x, y, optimizer, T, alpha)


def step_two_updates(student, teacher, x, y, optimizer, T, alpha):
    loss = step_right(student, teacher, x, y, optimizer, T, alpha)
    optimizer.step()
    return loss


def step_detached_teacher(student, teacher, x, y, optimizer, T, alpha):
    """The teacher's logits detached after a forward pass with gradient tracking on."""
    student.train()
    teacher.eval()
    t = teacher(x).detach()
    loss = _kd(student(x), t, y, T, alpha)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def step_never_train(student, teacher, x, y, optimizer, T, alpha):
    """Never calls student.train(): right only if the student happens to be in train mode."""
    teacher.eval()
    with torch.no_grad():
        t = teacher(x)
    loss = _kd(student(x), t, y, T, alpha)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def step_swapped_no_detach(student, teacher, x, y, optimizer, T, alpha):
    """A kd_loss that detaches nothing: the swapped call trains the student through the target."""
    student.train()
    teacher.eval()
    with torch.no_grad():
        t = teacher(x)
    loss = _kd_no_detach(t, student(x), y, T, alpha)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def step_returns_other_loss(student, teacher, x, y, optimizer, T, alpha):
    step_right(student, teacher, x, y, optimizer, T, alpha)
    return 0.5


STEP_MISTAKES = [
    (_step(teacher_eval=False), "teacher was run in train mode"),
    (_step(no_grad=False, loss_fn=_kd_no_detach), "gradients reached the teacher"),
    (_step(zero_grad=False), "optimizer.zero_grad() is missing"),
    (_step(do_step=False), "did not change the student's weights"),
    (_step(zero_between=True), "did not change the student's weights"),
    (_step(student_eval=True), "student was left in eval mode"),
    (step_never_train, "your step did not call student.train()"),
    (step_detached_teacher, "forward pass ran with gradient tracking on"),
    (_step(no_grad=False), "forward pass ran with gradient tracking on"),
    (_step(swap=True), "the loss does not depend on the student's weights"),
    (_step(swap=True, no_grad=False, loss_fn=_kd_no_detach), "gradients reached the teacher"),
    (_step(ret="tensor"), "still holds the autograd graph"),
    (_step(ret="detached"), "expected a Python float"),
    (_step(ret="none"), "expected the loss as a Python float, got NoneType"),
    (step_labels_only, "not the distillation loss"),
    (step_wrong_kd_loss, "make check_kd_loss pass first"),
    (step_two_updates, "differ from a reference step"),
    (step_returns_other_loss, "the update is right but the returned loss is 0.5"),
    (step_changes_x, "changed the x passed to it"),
    (step_stub, "not implemented yet"),
]


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")
@pytest.mark.parametrize("fn", [step_right, step_right_other_order, step_right_restore])
def test_distill_step_accepts_right_answers(fn, capsys):
    kd.checks.check_distill_step(fn)
    assert capsys.readouterr().out.startswith("PASSED check_distill_step")


@pytest.mark.parametrize("fn,message", STEP_MISTAKES, ids=[f"{i}-{m[:24]}" for i, (_, m) in enumerate(STEP_MISTAKES)])
def test_distill_step_rejects_mistake_with_its_message(fn, message):
    with pytest.raises(AssertionError, match="check_distill_step") as err:
        kd.checks.check_distill_step(fn)
    assert message in str(err.value), str(err.value)
    assert "Hint:" in str(err.value)


STEP = lab03.check_distill_step


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")
@pytest.mark.parametrize("seed", [0, 1, 7, 12345])
@pytest.mark.parametrize("fn", [step_right, step_right_other_order, step_right_restore])
def test_distill_step_right_answers_pass_on_fresh_inputs(fn, seed):
    assert "two steps equal the reference" in judge(STEP, probe_data(STEP, fn, seed), seed)


@pytest.mark.parametrize("seed", [5])
@pytest.mark.parametrize("fn,message", STEP_MISTAKES, ids=[f"{i}-{m[:24]}" for i, (_, m) in enumerate(STEP_MISTAKES)])
def test_distill_step_wrong_answers_fail_on_fresh_inputs(fn, message, seed):
    with pytest.raises(AssertionError) as err:
        judge(STEP, probe_data(STEP, fn, seed), seed)
    assert message in str(err.value), str(err.value)


def test_distill_step_swapped_without_detach_is_named():
    with pytest.raises(AssertionError, match="teacher and the student swapped"):
        kd.checks.check_distill_step(step_swapped_no_detach)


def test_distill_step_gaps_of_the_old_check_are_closed():
    """Two steps the check used to accept: the teacher run with gradient tracking on (its
    logits detached afterwards), and no student.train() (the probe used to hand the student
    over in train mode). Both are now rejected, each naming its fix."""
    with pytest.raises(AssertionError) as err:
        kd.checks.check_distill_step(step_detached_teacher)
    assert "kept every activation of the teacher in memory" in str(err.value)
    assert "under torch.no_grad()" in str(err.value)
    with pytest.raises(AssertionError) as err:
        kd.checks.check_distill_step(step_never_train)
    assert "Hint: call student.train()" in str(err.value)


STEP_PARAMS = [dict(N=64, C=10), dict(T=1.0, alpha=0.0), dict(N=4, T=20.0)]


@pytest.mark.parametrize("params", STEP_PARAMS)
def test_distill_step_params_override(params, capsys):
    kd.checks.check_distill_step(step_right, **params)
    assert capsys.readouterr().out.startswith("PASSED check_distill_step")
    with pytest.raises(AssertionError, match="zero_grad"):
        kd.checks.check_distill_step(_step(zero_grad=False), **params)


def test_distill_step_bad_params_are_named():
    with pytest.raises(ValueError, match="N >= 4, C >= 3, T > 0"):
        lab03.distill_step_inputs(None, T=0.0)


# ------------------------------------------------------------------ PASSED in the notebook predicts the grade

KD_RIGHT = [right_kl_div, right_soft_ce, right_ce_prob_targets, right_log_target]
STEP_RIGHT = [step_right, step_right_other_order, step_right_restore]
# (check, mutant, message, params): every mutant this file shows the notebook rejecting
GRADED_MUTANTS = (
    [("kd_loss", fn, m, {}) for fn, m in MISTAKES]
    + [("kd_loss", changes_labels, "changed the labels passed to it", {})]
    + [("kd_loss", sum_over_batch, "summed over the batch", p) for p in KD_PARAMS]
    + [("distill_step", fn, m, {}) for fn, m in STEP_MISTAKES]
    + [("distill_step", step_swapped_no_detach, "teacher and the student swapped", {})]
    + [("distill_step", _step(zero_grad=False), "zero_grad", p) for p in STEP_PARAMS])
GRADE_SEEDS = [11, 2024]


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")
@pytest.mark.parametrize("seed", GRADE_SEEDS)
def test_notebook_verdict_predicts_the_grade(seed):
    """Every mutant the notebook rejects is rejected on fresh seeds through the grader's path
    (probe data as JSON, the key computed for the seed), with the same message; every right
    answer passes there."""
    for name, fn, message, params in GRADED_MUTANTS:  # each rejected in the notebook above
        check = CHECKS[name]
        with pytest.raises(AssertionError) as err:
            judge(check, probe_data(check, fn, seed, params), seed, params)
        assert message in str(err.value), (fn, seed, params, str(err.value))
    for name, fns in (("kd_loss", KD_RIGHT), ("distill_step", STEP_RIGHT)):
        for fn in fns:
            assert judge(CHECKS[name], probe_data(CHECKS[name], fn, seed), seed)
