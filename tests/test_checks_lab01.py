"""Lab 01 checks: common mistakes are rejected with their own message, right answers pass."""
import math

import pytest
import torch
import torch.nn.functional as F

from kdlab.checks import check_entropy, check_gradient_scale, check_softmax_with_temperature
from kdlab.checks._common import PASS_MARK


def _valid_T(T):
    if not (isinstance(T, (int, float)) and T > 0 and math.isfinite(T)):
        raise ValueError(f"T must be a finite number > 0, got {T}")


# ------------------------------------------------------------------ softmax: right


def sm_functional(z, T):
    _valid_T(T)
    return F.softmax(z / T, -1)


def sm_manual_stable(z, T):
    if not T > 0 or math.isinf(T):  # nan > 0 is False
        raise ValueError("T must be > 0 and finite")
    s = z / T
    e = torch.exp(s - s.max(dim=-1, keepdim=True).values)
    return e / e.sum(dim=-1, keepdim=True)


def sm_log_softmax_exp(z, T):
    _valid_T(T)
    return F.log_softmax(z / T, dim=-1).exp()


def sm_float64(z, T):
    _valid_T(T)
    return torch.softmax(z.double() / T, dim=z.dim() - 1)


@pytest.mark.parametrize("fn", [sm_functional, sm_manual_stable, sm_log_softmax_exp, sm_float64])
def test_softmax_accepts(fn, capsys):
    check_softmax_with_temperature(fn)
    assert capsys.readouterr().out.startswith(PASS_MARK)


# ------------------------------------------------------------------ softmax: wrong


def sm_stub(z, T):
    raise NotImplementedError


def sm_no_temperature(z, T):
    _valid_T(T)
    return F.softmax(z, -1)


def sm_times_T(z, T):
    _valid_T(T)
    return F.softmax(z * T, -1)


def sm_dim0(z, T):
    _valid_T(T)
    return F.softmax(z / T, dim=0)


def sm_implicit_dim(z, T):  # what F.softmax(z / T) without dim does: dim 0 for 1-D and 3-D
    _valid_T(T)
    return F.softmax(z / T, dim=0 if z.dim() in (0, 1, 3) else 1)


def sm_whole_batch(z, T):
    _valid_T(T)
    return F.softmax(z.flatten() / T, 0).view_as(z)


def sm_unstable(z, T):
    _valid_T(T)
    e = torch.exp(z / T)
    return e / e.sum(-1, keepdim=True)


def sm_log_probs(z, T):
    _valid_T(T)
    return F.log_softmax(z / T, -1)


def sm_divide_after(z, T):
    _valid_T(T)
    return F.softmax(z, -1) / T


def sm_T_squared(z, T):
    _valid_T(T)
    return F.softmax(z / T ** 2, -1)


def sm_no_validation(z, T):
    return F.softmax(z / T, -1)


def sm_only_nonpositive(z, T):
    if T <= 0:
        raise ValueError("T must be > 0")
    return F.softmax(z / T, -1)


def sm_assert_instead(z, T):
    assert T > 0 and math.isfinite(T), "bad T"
    return F.softmax(z / T, -1)


def sm_type_error(z, T):
    if not (T > 0 and math.isfinite(T)):
        raise TypeError("bad T")
    return F.softmax(z / T, -1)


def sm_in_place(z, T):
    _valid_T(T)
    z /= T
    return F.softmax(z, -1)


def sm_detached(z, T):
    _valid_T(T)
    return F.softmax(z.detach() / T, -1)


def sm_numpy(z, T):
    _valid_T(T)
    return F.softmax(z / T, -1).detach().numpy()


def sm_keep_logits_shape_wrong(z, T):
    _valid_T(T)
    return F.softmax(z / T, -1).max(-1).values


def sm_crash(z, T):
    return z.view(-1, 7)


@pytest.mark.parametrize("fn, message", [
    (sm_stub, "not implemented yet"),
    (sm_no_temperature, "the temperature is missing"),
    (sm_times_T, "you multiplied by T"),
    (sm_dim0, "not along the last dimension"),
    (sm_implicit_dim, "sums to 1 along dimension 0 of a batch of shape (2, 3, 4)"),
    (sm_whole_batch, "over the whole batch"),
    (sm_unstable, "exp(1e4) overflows"),
    (sm_log_probs, "log-probabilities"),
    (sm_divide_after, "divided the probabilities by T after the softmax"),
    (sm_T_squared, "you divided by T squared"),
    (sm_no_validation, "T=0.0 should raise ValueError"),
    (sm_only_nonpositive, "T=nan should raise ValueError"),
    (sm_assert_instead, "expected a ValueError"),  # an assert is not a ValueError
    (sm_type_error, "T=0.0 raised TypeError"),
    (sm_in_place, "changed the logits passed to it"),
    (sm_detached, "cut off from autograd"),
    (sm_numpy, "should be a torch.Tensor"),
    (sm_keep_logits_shape_wrong, "expected (5,)"),
    (sm_crash, "your function raised RuntimeError"),
])
def test_softmax_rejects(fn, message):
    with pytest.raises(AssertionError) as e:
        check_softmax_with_temperature(fn)
    assert message in str(e.value), str(e.value)
    assert "Hint:" in str(e.value)


def test_softmax_rejects_non_function():
    with pytest.raises(AssertionError, match="expected a function"):
        check_softmax_with_temperature(F.softmax(torch.zeros(3), -1))


# ------------------------------------------------------------------ entropy: right


def ent_xlogy(p):
    return -torch.xlogy(p, p).sum(-1)


def ent_entr(p):
    return torch.special.entr(p).sum(dim=-1)


def ent_nansum(p):
    return -(p * p.log()).nansum(-1)


def ent_clamp(p):
    return -(p * p.clamp_min(1e-12).log()).sum(-1)


def ent_where(p):
    return -torch.where(p > 0, p * torch.log(p), torch.zeros_like(p)).sum(-1)


def ent_categorical(p):
    return torch.distributions.Categorical(probs=p).entropy()


@pytest.mark.parametrize("fn", [ent_xlogy, ent_entr, ent_nansum, ent_clamp, ent_where,
                                ent_categorical])
def test_entropy_accepts(fn, capsys):
    check_entropy(fn)
    assert capsys.readouterr().out.startswith(PASS_MARK)


# ------------------------------------------------------------------ entropy: wrong


def ent_stub(p):
    raise NotImplementedError


def ent_nan_at_zero(p):
    return -(p * p.log()).sum(-1)


def ent_no_minus(p):
    return torch.xlogy(p, p).sum(-1)


def ent_bits(p):
    return -(p * torch.log2(p)).nan_to_num(0.0).sum(-1)


def ent_mean(p):
    return -torch.xlogy(p, p).mean(-1)


def ent_sum_all(p):
    return -torch.xlogy(p, p).sum()


def ent_dim0(p):
    return -torch.xlogy(p, p).sum(0)


def ent_keepdim(p):
    return -torch.xlogy(p, p).sum(-1, keepdim=True)


def ent_item(p):
    return -torch.xlogy(p, p).sum().item()


def ent_big_eps(p):
    return -(p * (p + 1e-2).log()).sum(-1)


def ent_in_place(p):
    p.clamp_(min=1e-12)
    return -(p * p.log()).sum(-1)


@pytest.mark.parametrize("fn, message", [
    (ent_stub, "not implemented yet"),
    (ent_nan_at_zero, "0 * log(0) = 0 * (-inf) = nan"),
    (ent_no_minus, "the minus sign is missing"),
    (ent_bits, "in bits"),
    (ent_mean, "the mean over classes"),
    (ent_sum_all, "you summed over the whole batch"),
    (ent_dim0, "you summed over a dimension other than the last"),
    (ent_keepdim, "keepdim=True"),
    (ent_item, "should be a torch.Tensor"),
    (ent_big_eps, "the entropy is wrong: max abs difference"),
    (ent_in_place, "changed the probabilities passed to it"),
])
def test_entropy_rejects(fn, message):
    with pytest.raises(AssertionError) as e:
        check_entropy(fn)
    assert message in str(e.value), str(e.value)
    assert "Hint:" in str(e.value)


# ------------------------------------------------------------------ gradient scale: right


def _kl(s, t, T):
    return F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1),
                    reduction="batchmean", log_target=True)


def gs_kl_backward(student_logits, teacher_logits, T, scale_by_T2=False):
    z = student_logits.detach().clone().requires_grad_()
    loss = _kl(z, teacher_logits, T) * (T * T if scale_by_T2 else 1.0)
    loss.backward()
    return z.grad.norm().item()


def gs_soft_ce_sum_autograd_grad(student_logits, teacher_logits, T, scale_by_T2=False):
    z = student_logits.clone().requires_grad_(True)
    q = F.softmax(teacher_logits / T, dim=-1)
    loss = -(q * F.log_softmax(z / T, dim=-1)).sum()  # sum, not mean: ratios do not care
    if scale_by_T2:
        loss = loss * T ** 2
    (g,) = torch.autograd.grad(loss, z)
    return g.norm()  # a 0-d tensor is fine


def gs_kl_mean_elements(student_logits, teacher_logits, T, scale_by_T2=False):
    z = student_logits.clone().requires_grad_()
    p_t = F.softmax(teacher_logits / T, -1)
    loss = (torch.xlogy(p_t, p_t) - p_t * F.log_softmax(z / T, -1)).mean()  # mean over N*C
    (loss * (T ** 2 if scale_by_T2 else 1)).backward()
    return float(torch.linalg.vector_norm(z.grad))


@pytest.mark.parametrize("fn", [gs_kl_backward, gs_soft_ce_sum_autograd_grad,
                                gs_kl_mean_elements])
def test_gradient_scale_accepts(fn, capsys):
    check_gradient_scale(fn)
    out = capsys.readouterr().out
    assert out.startswith(PASS_MARK) and "(1/T^2 law: 0.25)" in out


# ------------------------------------------------------------------ gradient scale: wrong


def gs_stub(student_logits, teacher_logits, T, scale_by_T2=False):
    raise NotImplementedError


def gs_no_T(student_logits, teacher_logits, T, scale_by_T2=False):
    z = student_logits.clone().requires_grad_()
    _kl(z, teacher_logits, 1.0).backward()
    return z.grad.norm().item() * (T * T if scale_by_T2 else 1.0)


def gs_wrt_scaled(student_logits, teacher_logits, T, scale_by_T2=False):
    z = (student_logits / T).requires_grad_()
    loss = _kl(z, teacher_logits / T, 1.0) * (T * T if scale_by_T2 else 1.0)
    loss.backward()
    return z.grad.norm().item()


def gs_loss_value(student_logits, teacher_logits, T, scale_by_T2=False):
    return (_kl(student_logits, teacher_logits, T) * (T * T if scale_by_T2 else 1.0)).item()


def gs_ignores_scale(student_logits, teacher_logits, T, scale_by_T2=False):
    return gs_kl_backward(student_logits, teacher_logits, T, False)


def gs_scale_by_T(student_logits, teacher_logits, T, scale_by_T2=False):
    z = student_logits.clone().requires_grad_()
    (_kl(z, teacher_logits, T) * (T if scale_by_T2 else 1.0)).backward()
    return z.grad.norm().item()


def gs_teacher_not_softened(student_logits, teacher_logits, T, scale_by_T2=False):
    z = student_logits.clone().requires_grad_()
    loss = F.kl_div(F.log_softmax(z / T, -1), F.softmax(teacher_logits, -1),
                    reduction="batchmean")
    (loss * (T * T if scale_by_T2 else 1.0)).backward()
    return z.grad.norm().item()


def gs_returns_grad(student_logits, teacher_logits, T, scale_by_T2=False):
    z = student_logits.clone().requires_grad_()
    _kl(z, teacher_logits, T).backward()
    return z.grad


def gs_zero(student_logits, teacher_logits, T, scale_by_T2=False):
    return 0.0


def gs_in_place(student_logits, teacher_logits, T, scale_by_T2=False):
    student_logits /= T
    z = student_logits.requires_grad_()
    _kl(z, teacher_logits / T, 1.0).backward()
    return z.grad.norm().item()


@pytest.mark.parametrize("fn, message", [
    (gs_stub, "not implemented yet"),
    (gs_no_T, "your gradient does not change with T"),
    (gs_wrt_scaled, "the gradient with respect to logits / T"),
    (gs_loss_value, "ratios of the loss values"),
    (gs_ignores_scale, "scale_by_T2=True changes nothing"),
    (gs_scale_by_T, "you multiplied the loss by T, not T**2"),
    (gs_teacher_not_softened, "without T^2 scaling, your ratios"),
    (gs_returns_grad, "got a tensor of shape (8, 10)"),
    (gs_zero, "expected a finite norm > 0"),
    (gs_in_place, "changed the logits passed to it"),
])
def test_gradient_scale_rejects(fn, message):
    with pytest.raises(AssertionError) as e:
        check_gradient_scale(fn)
    assert message in str(e.value), str(e.value)
    assert "Hint:" in str(e.value)


# ------------------------------------------------------------------ probe/verdict: fresh inputs, inputs left alone, references

from kdlab.checks._registry import judge, probe_data  # noqa: E402


@pytest.mark.parametrize("seed", [0, 1, 7, 12345])
@pytest.mark.parametrize("name,fn", [("softmax_with_temperature", sm_functional),
                                     ("softmax_with_temperature", sm_manual_stable),
                                     ("entropy", lambda p: -torch.xlogy(p, p).sum(-1))])
def test_right_answers_pass_on_fresh_inputs(name, fn, seed):
    """The grader draws inputs from a secret seed: right answers pass on any of them."""
    from kdlab.checks import CHECKS
    check = CHECKS[name]
    assert judge(check, probe_data(check, fn, seed), seed)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_wrong_answers_fail_on_fresh_inputs(seed):
    from kdlab.checks import CHECKS
    for name, fn in (("softmax_with_temperature", sm_no_temperature),
                     ("entropy", lambda p: -(p * torch.log2(p)).nan_to_num().sum(-1))):
        with pytest.raises(AssertionError):
            judge(CHECKS[name], probe_data(CHECKS[name], fn, seed), seed)


def test_softmax_logsumexp_form_is_accepted_at_1e4():
    """exp(s - logsumexp(s)) loses about 1e-3 to float32 rounding at 1e4: still right."""
    def sm_logsumexp(z, T):
        _valid_T(T)
        s = z / T
        return torch.exp(s - torch.logsumexp(s, dim=-1, keepdim=True))
    check_softmax_with_temperature(sm_logsumexp)


def test_gradient_scale_rejects_reading_the_callers_grad():
    """A function that turns on requires_grad of the caller's logits and reads their .grad."""
    def sneaky(s, t, T, scale_by_T2=False):
        s.requires_grad_()
        loss = F.kl_div(F.log_softmax(s / T, -1), F.softmax(t / T, -1), reduction="batchmean")
        (loss * (T * T if scale_by_T2 else 1)).backward()
        return s.grad.norm().item()
    with pytest.raises(AssertionError, match="changed the logits passed to it"):
        check_gradient_scale(sneaky)


def test_public_modules_hold_no_lab01_answer():
    """The course's softmax-with-temperature and entropy are not in the public package (the
    figures use private, numpy-valued versions): there is no reference to hand in."""
    import kdlab
    assert not hasattr(kdlab, "losses")
    for mod in (kdlab.plot, kdlab.widgets, kdlab.train, kdlab.distill, kdlab.evaluation, kdlab.checks.lab01):
        for name in ("soft_targets", "softmax_with_temperature", "entropy", "_ref_entropy",
                     "reference_soft_loss_grad_norm"):
            assert not callable(getattr(mod, name, None)), f"{mod.__name__}.{name}"


def test_failed_check_in_a_notebook_shows_the_message_not_the_checker():
    """In a kernel a failed check is an AssertionError (nbval sees the cell fail) whose
    traceback shows the student's cell and the message, without the checker's frames."""
    import re

    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook
    nb = new_notebook(cells=[new_code_cell(
        "import kdlab as kd\ndef entropy(p):\n    return (p * p.log()).sum(-1)\n"
        "kd.checks.check_entropy(entropy)")])
    NotebookClient(nb, kernel_name="python3", allow_errors=True, timeout=300).execute()
    err = [o for o in nb.cells[0].outputs if o.output_type == "error"][0]
    tb = "\n".join(re.sub(r"\x1b\[[0-9;]*m", "", ln) for ln in err.traceback)
    assert err.ename == "AssertionError"
    assert "the minus sign is missing" in tb and "kd.checks.check_entropy(entropy)" in tb
    assert "kdlab/checks" not in tb and "_registry" not in tb and len(tb.splitlines()) <= 8, tb


def _cases(test) -> list:
    """The (fn, message) or fn cases of a parametrized test of this file."""
    return [c if isinstance(c, tuple) else (c, None) for c in test.pytestmark[0].args[1]]


_LAB01 = [("softmax_with_temperature", test_softmax_accepts, test_softmax_rejects),
          ("entropy", test_entropy_accepts, test_entropy_rejects),
          ("gradient_scale", test_gradient_scale_accepts, test_gradient_scale_rejects)]


@pytest.mark.parametrize("name, accepts, rejects", _LAB01, ids=[n for n, _, _ in _LAB01])
def test_the_notebook_predicts_the_grade(name, accepts, rejects):
    """Every answer the notebook's check rejects is rejected on fresh seeds through the
    grader's path, with the same message; every answer it accepts passes them."""
    from kdlab.checks import CHECKS
    check = CHECKS[name]
    for seed in (1, 2, 3):
        for fn, _ in _cases(accepts):
            assert judge(check, probe_data(check, fn, seed), seed)
        for fn, message in _cases(rejects):
            with pytest.raises(AssertionError) as e:
                judge(check, probe_data(check, fn, seed), seed)
            assert message in str(e.value), (fn.__name__, seed, str(e.value))
