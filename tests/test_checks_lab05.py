"""Mutation tests of the Lab 05 checks: prune_mask and fake_quantize.

Each wrong implementation is a mistake students make; the check must reject it with a message
naming that mistake. Right implementations (several formulations) must pass, also on the fresh
inputs the grader draws from a secret seed.
"""
import pytest
import torch

from kdlab import compress as _ref
from kdlab.checks import CHECKS, check_fake_quantize, check_prune_mask
from kdlab.checks._registry import judge, probe_data


# ------------------------------------------------------------------ prune_mask: right answers

def _valid(s):
    if not 0 <= s <= 1:
        raise ValueError(f"sparsity must be in [0, 1], got {s}")


def pm_topk(weight, sparsity):
    _valid(sparsity)
    k = round(sparsity * weight.numel())
    mask = torch.ones(weight.numel(), dtype=torch.bool)
    if k:
        mask[torch.topk(weight.detach().abs().flatten(), k, largest=False).indices] = False
    return mask.view(weight.shape)


def pm_kthvalue(weight, sparsity):
    _valid(sparsity)
    k = round(sparsity * weight.numel())
    if k == 0:
        return torch.ones_like(weight, dtype=torch.bool)
    threshold = weight.detach().abs().flatten().kthvalue(k).values
    return weight.detach().abs() > threshold


def pm_sort(weight, sparsity):
    _valid(sparsity)
    k = round(sparsity * weight.numel())
    order = weight.detach().abs().flatten().argsort()
    mask = torch.ones(weight.numel(), dtype=torch.bool)
    mask[order[:k]] = False
    return mask.reshape(weight.shape)


@pytest.mark.parametrize("fn", [pm_topk, pm_kthvalue, pm_sort])
def test_prune_mask_right_answers_pass(fn, capsys):
    check_prune_mask(fn)
    assert capsys.readouterr().out.startswith("PASSED check_prune_mask")


# ------------------------------------------------------------------ prune_mask: mistakes

def _k(weight, sparsity):
    _valid(sparsity)
    return round(sparsity * weight.numel())


def pm_largest(weight, sparsity):
    k = _k(weight, sparsity)
    mask = torch.ones(weight.numel(), dtype=torch.bool)
    if k:
        mask[torch.topk(weight.detach().abs().flatten(), k, largest=True).indices] = False
    return mask.view(weight.shape)


def pm_inverted(weight, sparsity):
    return ~pm_topk(weight, sparsity)


def pm_values(weight, sparsity):
    k = _k(weight, sparsity)
    mask = torch.ones(weight.numel(), dtype=torch.bool)
    if k:
        mask[torch.topk(weight.detach().flatten(), k, largest=False).indices] = False
    return mask.view(weight.shape)


def pm_per_row(weight, sparsity):
    _valid(sparsity)
    if weight.dim() < 2:
        return pm_topk(weight, sparsity)
    return torch.stack([pm_topk(row, sparsity) for row in weight])


def pm_truncate(weight, sparsity):
    _valid(sparsity)
    k = int(sparsity * weight.numel())
    mask = torch.ones(weight.numel(), dtype=torch.bool)
    if k:
        mask[torch.topk(weight.detach().abs().flatten(), k, largest=False).indices] = False
    return mask.view(weight.shape)


def pm_threshold_le(weight, sparsity):
    """Keeps |w| >= the k-th smallest: one entry too few removed."""
    k = _k(weight, sparsity)
    if k == 0:
        return torch.ones_like(weight, dtype=torch.bool)
    return weight.detach().abs() >= weight.detach().abs().flatten().kthvalue(k).values


def pm_float(weight, sparsity):
    return pm_topk(weight, sparsity).float()


def pm_pruned_weight(weight, sparsity):
    return weight.detach() * pm_topk(weight, sparsity)


def pm_in_place(weight, sparsity):
    mask = pm_topk(weight, sparsity)
    with torch.no_grad():
        weight[~mask] = 0
    return mask


def pm_no_value_error(weight, sparsity):
    k = min(max(round(sparsity * weight.numel()), 0), weight.numel())
    mask = torch.ones(weight.numel(), dtype=torch.bool)
    if k:
        mask[torch.topk(weight.detach().abs().flatten(), k, largest=False).indices] = False
    return mask.view(weight.shape)


def pm_flat(weight, sparsity):
    return pm_topk(weight, sparsity).flatten()


def pm_k_zero_crashes(weight, sparsity):
    _valid(sparsity)
    k = round(sparsity * weight.numel())
    return weight.detach().abs() > weight.detach().abs().flatten().kthvalue(k).values


@pytest.mark.parametrize("fn, words", [
    (pm_largest, "LARGEST |w|: wrong direction"),
    (pm_inverted, "inverted"),
    (pm_values, "smallest VALUES"),
    (pm_per_row, "pruned each slice along dimension 0 separately"),
    (pm_truncate, "you truncated instead of rounding"),
    (pm_threshold_le, "off by one|removes"),
    (pm_float, "dtype float32, expected torch.bool"),
    (pm_pruned_weight, "returned the pruned weight"),
    (pm_in_place, "changed the weight passed to it"),
    (pm_no_value_error, "sparsity=-0.1 should raise ValueError"),
    (pm_flat, r"has shape \(80,\), expected \(8, 10\)"),
    (pm_k_zero_crashes, "sparsity=0: your function raised RuntimeError"),
    (lambda w, s: (_ for _ in ()).throw(NotImplementedError()), "not implemented yet"),
])
def test_prune_mask_mistakes_are_named(fn, words):
    with pytest.raises(AssertionError, match=words):
        check_prune_mask(fn)


# ------------------------------------------------------------------ fake_quantize: right answers

def _valid_bits(bits):
    if bits < 2:
        raise ValueError(f"bits must be >= 2, got {bits}")


def fq_ste(w, bits):
    _valid_bits(bits)
    qmax = 2 ** (bits - 1) - 1
    v = w.detach()
    amax = v.abs().flatten(1).amax(1).view(-1, *[1] * (w.dim() - 1))
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
    return w + (torch.clamp(torch.round(v / scale), -qmax, qmax) * scale - v).detach()


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, g):
        return g


def fq_function(w, bits):
    """Straight-through round on w / scale with a detached scale: also the identity gradient."""
    _valid_bits(bits)
    qmax = 2 ** (bits - 1) - 1
    amax = w.detach().abs().amax(dim=tuple(range(1, w.dim())), keepdim=True)
    scale = amax.clamp_min(1e-12) / qmax
    return torch.clamp(_RoundSTE.apply(w / scale), -qmax, qmax) * scale


@pytest.mark.parametrize("fn", [fq_ste, fq_function])
def test_fake_quantize_right_answers_pass(fn, capsys):
    check_fake_quantize(fn)
    assert capsys.readouterr().out.startswith("PASSED check_fake_quantize")


# ------------------------------------------------------------------ fake_quantize: mistakes

def _scale(w, d, per="channel"):
    v = w.detach()
    if per == "tensor":
        amax = v.abs().max().expand(v.shape[0]).reshape(-1, *[1] * (w.dim() - 1))
    elif per == "dim1":
        amax = v.abs().amax(dim=[i for i in range(w.dim()) if i != 1], keepdim=True)
    else:
        amax = v.abs().flatten(1).amax(1).view(-1, *[1] * (w.dim() - 1))
    return torch.where(amax > 0, amax / d, torch.ones_like(amax))


def _fq(w, bits, *, per="channel", qmax=None, qmin=None, d=None, rnd=torch.round):
    _valid_bits(bits)
    qm = 2 ** (bits - 1) - 1 if qmax is None else qmax
    scale = _scale(w, qm if d is None else d, per)
    v = w.detach()
    return w + (torch.clamp(rnd(v / scale), -qm if qmin is None else qmin, qm) * scale - v).detach()


def fq_no_ste(w, bits):
    _valid_bits(bits)
    qmax = 2 ** (bits - 1) - 1
    scale = _scale(w, qmax)
    return torch.clamp(torch.round(w / scale), -qmax, qmax) * scale


def fq_detached(w, bits):
    return fq_ste(w, bits).detach()


def fq_scale_not_detached(w, bits):
    _valid_bits(bits)
    qmax = 2 ** (bits - 1) - 1
    amax = w.abs().flatten(1).amax(1).view(-1, *[1] * (w.dim() - 1))
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
    return torch.clamp(_RoundSTE.apply(w / scale), -qmax, qmax) * scale


def fq_asymmetric(w, bits):
    _valid_bits(bits)
    v = w.detach()
    flat = v.flatten(1)
    lo, hi = flat.amin(1).clamp(max=0), flat.amax(1).clamp(min=0)
    scale = torch.where(hi > lo, (hi - lo) / (2 ** bits - 1), torch.ones_like(hi)).view(-1, 1)
    zp = torch.round(-lo.view(-1, 1) / scale)
    q = torch.clamp(torch.round(flat / scale) + zp, 0, 2 ** bits - 1)
    return w + (((q - zp) * scale).view(w.shape) - v).detach()


def fq_bits_one_accepted(w, bits):
    qmax = 2 ** (bits - 1) - 1
    v = w.detach()
    amax = v.abs().flatten(1).amax(1).view(-1, *[1] * (w.dim() - 1))
    scale = torch.where(amax > 0, amax / max(qmax, 1), torch.ones_like(amax))
    return w + (torch.clamp(torch.round(v / scale), -qmax, qmax) * scale - v).detach()


def fq_zero_channel_nan(w, bits):
    _valid_bits(bits)
    qmax = 2 ** (bits - 1) - 1
    v = w.detach()
    scale = v.abs().flatten(1).amax(1).view(-1, *[1] * (w.dim() - 1)) / qmax
    return w + (torch.clamp(torch.round(v / scale), -qmax, qmax) * scale - v).detach()


def fq_in_place(w, bits):
    out = fq_ste(w, bits)
    with torch.no_grad():
        w.copy_(out)
    return out


def fq_levels(w, bits):
    _valid_bits(bits)
    qmax = 2 ** (bits - 1) - 1
    return torch.clamp(torch.round(w.detach() / _scale(w, qmax)), -qmax, qmax)


def fq_float64(w, bits):
    return fq_ste(w.double(), bits)


@pytest.mark.parametrize("fn, words", [
    (fq_no_ste, "gradient with respect to w is zero everywhere"),
    (fq_detached, "does not require grad"),
    (fq_scale_not_detached, "the scale .computed from w. still carries gradient"),
    (lambda w, b: _fq(w, b, per="tensor"), "ONE scale for the whole tensor"),
    (lambda w, b: _fq(w, b, per="dim1"), "per input column"),
    (fq_asymmetric, "asymmetric .min-max range with a zero point"),
    (lambda w, b: _fq(w, b, qmax=2 ** (b - 1), d=2 ** (b - 1)), r"qmax = 2\*\*\(bits-1\) = 128"),
    (lambda w, b: _fq(w, b, qmin=-2 ** (b - 1), d=2 ** (b - 1)), "asymmetric integer range"),
    (lambda w, b: _fq(w, b, qmax=2 ** b - 1), "UNSIGNED range"),
    (lambda w, b: _fq(w, b, rnd=torch.floor), "floor"),
    (lambda w, b: _fq(w, b, rnd=torch.trunc), "truncated toward zero"),
    (fq_bits_one_accepted, "bits=1 should raise ValueError"),
    (fq_zero_channel_nan, "all zeros and your result there is nan"),
    (fq_in_place, "changed the weight passed to it"),
    (fq_levels, "integer levels"),
    (fq_float64, "dtype is float64, expected float32"),
    (lambda w, b: w.clone(), "nothing was quantized"),
])
def test_fake_quantize_mistakes_are_named(fn, words):
    with pytest.raises(AssertionError, match=words):
        check_fake_quantize(fn)


# ------------------------------------------------------------------ probe/verdict: fresh inputs, references, params

@pytest.mark.parametrize("seed", [0, 1, 7, 12345])
@pytest.mark.parametrize("name, fn", [("prune_mask", pm_topk), ("prune_mask", pm_kthvalue),
                                      ("fake_quantize", fq_ste), ("fake_quantize", fq_function)])
def test_right_answers_pass_on_fresh_inputs(name, fn, seed):
    check = CHECKS[name]
    assert judge(check, probe_data(check, fn, seed), seed)


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("name, fn", [("prune_mask", pm_per_row), ("prune_mask", pm_truncate),
                                      ("prune_mask", pm_largest), ("prune_mask", pm_in_place),
                                      ("fake_quantize", fq_no_ste), ("fake_quantize", fq_asymmetric),
                                      ("fake_quantize", fq_zero_channel_nan),
                                      ("fake_quantize", fq_in_place)])
def test_wrong_answers_fail_on_fresh_inputs(name, fn, seed):
    check = CHECKS[name]
    with pytest.raises(AssertionError):
        judge(check, probe_data(check, fn, seed), seed)


@pytest.mark.parametrize("check, fn", [
    (check_prune_mask, _ref.prune_mask),
    (check_prune_mask, lambda w, s: _ref.prune_mask(w, s)),
    (check_fake_quantize, _ref.fake_quantize),
    (check_fake_quantize, lambda w, b: _ref.fake_quantize(w, b)),
])
def test_course_reference_is_rejected(check, fn):
    with pytest.raises(AssertionError, match="uses the course's reference implementation.*kdlab.compress"):
        check(fn)


def test_reference_rejected_in_grading_too():
    """The grader's path (probe data through JSON, verdict apart) also sees the reference call."""
    check = CHECKS["prune_mask"]
    with pytest.raises(AssertionError, match="kdlab.compress.prune_mask"):
        judge(check, probe_data(check, lambda w, s: _ref.prune_mask(w, s), 3), 3)


def test_param_overrides():
    check_prune_mask(pm_topk, shape=(5, 7), dtype="float64")
    with pytest.raises(AssertionError, match=r"shape \(5, 7\)"):
        check_prune_mask(pm_per_row, shape=(5, 7))
    check_fake_quantize(fq_ste, shape=(3, 4, 5), bits=(5, 2), dtype="float64")
    with pytest.raises(AssertionError, match="bits=5"):
        check_fake_quantize(lambda w, b: _fq(w, b, per="tensor"), bits=(5,))
    with pytest.raises(ValueError, match="bits >= 2"):
        check_fake_quantize(fq_ste, bits=(1,))


def test_inputs_are_deterministic_and_seeded():
    a, b = CHECKS["prune_mask"].inputs(3), CHECKS["prune_mask"].inputs(3)
    assert torch.equal(a["cases"][0][0], b["cases"][0][0])
    assert not torch.equal(a["cases"][0][0], CHECKS["prune_mask"].inputs(4)["cases"][0][0])
    q = CHECKS["fake_quantize"].inputs(None)
    assert bool((q["w"][q["zero_row"]] == 0).all())


def test_compress_reference_matches_the_checks():
    """kdlab.compress's references are right answers (called directly, outside a check)."""
    from kdlab.checks.lab05 import _quant, _ref_mask
    w = torch.randn(6, 9)
    for s in (0.0, 0.33, 0.9, 1.0):
        assert torch.equal(_ref.prune_mask(w, s), _ref_mask(w, s))
    for b in (8, 4, 2):
        assert torch.allclose(_ref.fake_quantize(w, b).double(), _quant(w, b), atol=1e-6)
