"""Mutation tests of the Lab 05 checks: prune_mask and fake_quantize.

Each wrong implementation is a mistake students make; the check must reject it with a message
naming that mistake. Right implementations (several formulations) must pass, also on the fresh
inputs the grader draws from a secret seed, and every mistake the notebook rejects is rejected
there too, with the same message: PASSED in the notebook predicts the grade.
"""
import importlib
import inspect
import math
import pkgutil

import pytest
import torch

import kdlab
from kdlab import compress as C
from kdlab.checks import CHECKS, check_fake_quantize, check_prune_mask
from kdlab.checks import lab05
from kdlab.checks._registry import judge, probe_data
from kdlab.grading.keys import lab05 as keys

FRESH = (1, 2, 3)  # grader seeds; seed 0 draws the notebook's own cases (rng: base ^ 0)


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
    """Keeps |w| > the k-th smallest: right without ties, wrong with ties at the threshold."""
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


def pm_ties_last(weight, sparsity):
    """Breaks ties at the threshold the other way: the LAST tied entries go."""
    _valid(sparsity)
    k = round(sparsity * weight.numel())
    a = weight.detach().abs().flatten().flip(0)
    mask = torch.ones(weight.numel(), dtype=torch.bool)
    mask[a.argsort(stable=True)[:k]] = False
    return mask.flip(0).reshape(weight.shape)


def pm_kthvalue_ties(weight, sparsity):
    """kthvalue threshold; below it all go, of the ties only as many as k still needs."""
    _valid(sparsity)
    k = round(sparsity * weight.numel())
    a = weight.detach().abs()
    if k == 0:
        return torch.ones_like(a, dtype=torch.bool)
    t = a.flatten().kthvalue(k).values
    mask = a > t
    tied = (a == t).flatten().nonzero().flatten()
    keep_tied = tied[k - int((a < t).sum()):]
    mask.view(-1)[keep_tied] = True
    return mask


PRUNE_RIGHT = [pm_topk, pm_sort, pm_ties_last, pm_kthvalue_ties]


@pytest.mark.parametrize("fn", PRUNE_RIGHT)
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


def pm_quantile(weight, sparsity):
    """Keeps |w| > the sparsity-quantile: an interpolated threshold, not the count round(s * n)."""
    _valid(sparsity)
    if sparsity == 0:
        return torch.ones_like(weight, dtype=torch.bool)
    a = weight.detach().abs()
    return a > torch.quantile(a.flatten(), sparsity)


def pm_quantile_plain(weight, sparsity):
    _valid(sparsity)
    a = weight.detach().abs()
    return a > torch.quantile(a.flatten(), sparsity)


def pm_ceil(weight, sparsity):
    _valid(sparsity)
    k = math.ceil(sparsity * weight.numel())
    mask = torch.ones(weight.numel(), dtype=torch.bool)
    if k:
        mask[torch.topk(weight.detach().abs().flatten(), k, largest=False).indices] = False
    return mask.view(weight.shape)


def pm_round_half_up(weight, sparsity):
    """floor(x + 0.5): 2.5 -> 3, where round (and the lab) give 2."""
    _valid(sparsity)
    k = math.floor(sparsity * weight.numel() + 0.5)
    mask = torch.ones(weight.numel(), dtype=torch.bool)
    if k:
        mask[torch.topk(weight.detach().abs().flatten(), k, largest=False).indices] = False
    return mask.view(weight.shape)


def pm_sort_index_k(weight, sparsity):
    """The threshold read at sorted[k]: past the end at sparsity 1."""
    _valid(sparsity)
    k = round(sparsity * weight.numel())
    if k == 0:
        return torch.ones_like(weight, dtype=torch.bool)
    a = weight.detach().abs()
    return a > a.flatten().sort().values[k]


PRUNE_WRONG = [
    (pm_round_half_up, r"lies exactly halfway, and round\(\) goes to the even neighbour"),
    (pm_sort_index_k, r"sparsity=1: your function raised IndexError.*\n.*sorted\[k\] does not exist"),
    (pm_kthvalue, "share the threshold magnitude .* removes every one of them"),
    (pm_quantile, r"torch.quantile\(\|w\|, sparsity\)"),
    (pm_quantile_plain, r"torch.quantile\(\|w\|, sparsity\)"),
    (pm_ceil, "you rounded up"),
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
]


@pytest.mark.parametrize("fn, words", PRUNE_WRONG)
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


QUANT_RIGHT = [fq_ste, fq_function]


@pytest.mark.parametrize("fn", QUANT_RIGHT)
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


def fq_no_abs(w, bits):
    _valid_bits(bits)
    qmax = 2 ** (bits - 1) - 1
    v = w.detach()
    amax = v.flatten(1).amax(1).view(-1, *[1] * (w.dim() - 1))
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
    return w + (torch.clamp(torch.round(v / scale), -qmax, qmax) * scale - v).detach()


def fq_float64(w, bits):
    return fq_ste(w.double(), bits)


def fq_backwards_ste(w, bits):
    """The straight-through estimator the wrong way round: its value is w."""
    _valid_bits(bits)
    qmax = 2 ** (bits - 1) - 1
    w_q = torch.clamp(torch.round(w / _scale(w, qmax)), -qmax, qmax) * _scale(w, qmax)
    return w_q + (w - w_q).detach()


def fq_mean_scale(w, bits):
    _valid_bits(bits)
    qmax = 2 ** (bits - 1) - 1
    v = w.detach()
    mean = v.abs().flatten(1).mean(1).view(-1, *[1] * (w.dim() - 1))
    scale = torch.where(mean > 0, mean / qmax, torch.ones_like(mean))
    return w + (torch.clamp(torch.round(v / scale), -qmax, qmax) * scale - v).detach()


def fq_rejects_two_bits(w, bits):
    if bits <= 2:
        raise ValueError(f"bits must be > 2, got {bits}")
    return fq_ste(w, bits)


QUANT_WRONG = [
    (fq_backwards_ste, r"written the wrong way round, w_q \+ \(w - w_q\).detach\(\)"),
    (fq_mean_scale, r"your scale comes from the MEAN \|w\| of each channel"),
    (fq_rejects_two_bits, r"bits=2: your function raised ValueError.*2 bits is valid(.|\n)*"
                          "not bits <= 2 or bits < 3"),
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
    (fq_no_abs, r"largest VALUE of each channel, max\(w\)"),
]


@pytest.mark.parametrize("fn, words", QUANT_WRONG)
def test_fake_quantize_mistakes_are_named(fn, words):
    with pytest.raises(AssertionError, match=words):
        check_fake_quantize(fn)


# ------------------------------------------------------------------ probe/verdict: fresh inputs, references, params

@pytest.mark.parametrize("seed", [0, 1, 7, 12345])
@pytest.mark.parametrize("name, fn", [("prune_mask", fn) for fn in PRUNE_RIGHT]
                         + [("fake_quantize", fn) for fn in QUANT_RIGHT])
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


@pytest.mark.parametrize("seed", FRESH)
@pytest.mark.parametrize("name, fn, words", [("prune_mask", fn, w) for fn, w in PRUNE_WRONG]
                         + [("fake_quantize", fn, w) for fn, w in QUANT_WRONG])
def test_notebook_verdict_predicts_the_grade(name, fn, words, seed):
    """Every mistake the notebook names is rejected on fresh grader inputs, with the same words."""
    check = CHECKS[name]
    with pytest.raises(AssertionError, match=words):
        judge(check, probe_data(check, fn, seed), seed)


def test_notebook_cases_are_the_kinds_the_grader_draws():
    """The notebook's prune cases have ties inside the threshold's group and k - 0.3, k + 0.3
    for a small and a large k, like every fresh draw (the counts of int, ceil, round and
    quantile all differ somewhere)."""
    for seed in (None,) + FRESH:
        inp = CHECKS["prune_mask"].inputs(seed)
        assert [kind for _, _, kind in inp["cases"]].count("ties") == 1
        w, s, _ = next(c for c in inp["cases"] if c[2] == "ties")
        a, k = w.abs().flatten(), round(s * w.numel())
        t = a.kthvalue(k).values
        assert int((a < t).sum()) < k < int((a <= t).sum())  # the k-th smallest is inside a tie group
        n = inp["cases"][0][0].numel()
        ks = [c[1] * n for c in inp["cases"][1:5]]
        assert ks[0] < n / 4 + 1 and ks[3] > 3 * n / 4 - 1


def _public_modules():
    """Every module of kdlab outside kdlab.grading (what students and the sandbox get)."""
    names = [m.name for m in pkgutil.walk_packages(kdlab.__path__, "kdlab.", onerror=lambda _: None)]
    return [importlib.import_module(n) for n in names if not n.startswith("kdlab.grading")]


@pytest.mark.parametrize("name", ["prune_mask", "fake_quantize", "quantize_int", "_ref_mask",
                                  "_mask_by", "_per_slice", "_quant", "_asymmetric"])
def test_references_are_gone_from_the_public_package(name):
    found = [m.__name__ for m in _public_modules() if hasattr(m, name)]
    assert not found, f"{name} is in the public package: {found}"


def _public_functions():
    for mod in (C, lab05):
        for name, obj in sorted(vars(mod).items()):
            if inspect.isfunction(obj) and obj.__module__ == mod.__name__:
                yield f"{mod.__name__}.{name}", obj


@pytest.mark.parametrize("check", [check_prune_mask, check_fake_quantize])
def test_no_public_function_passes(check):
    """No function of kdlab.compress or kdlab.checks.lab05, used as the answer, passes a check."""
    for name, fn in _public_functions():
        with pytest.raises(AssertionError):
            check(fn)
            pytest.fail(f"{name} passes {check.__name__}")


def test_public_helpers_wrapped_as_answers_fail():
    with pytest.raises(AssertionError, match=r"your fake_quantize\(w, 8\) first"):
        check_fake_quantize(lambda w, b: C.unpack(C.pack(w, b)).to(w.dtype))

    def prune_with_global_prune(w, s):
        layer = torch.nn.Linear(w.shape[-1], w.numel() // w.shape[-1], bias=False)
        layer.weight.data.copy_(w.detach().reshape(layer.weight.shape))
        C.global_prune(layer, s)
        return layer.weight_mask.bool().reshape(w.shape)

    with pytest.raises(AssertionError, match="TypeError"):
        check_prune_mask(prune_with_global_prune)


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


def test_answer_key_references_are_right_answers(capsys):
    """The references of kdlab.grading.keys.lab05 pass their checks, notebook and fresh cases."""
    check_prune_mask(keys.prune_mask)
    check_fake_quantize(keys.fake_quantize)
    assert capsys.readouterr().out.count("PASSED") == 2
    for seed in FRESH:
        for name, fn in (("prune_mask", keys.prune_mask), ("fake_quantize", keys.fake_quantize)):
            assert judge(CHECKS[name], probe_data(CHECKS[name], fn, seed), seed)
    w = torch.randn(6, 9)
    for b in (8, 4, 2):
        q, scale = keys.quantize_int(w, b)
        assert torch.allclose(q.float() * scale[:, None], keys.fake_quantize(w, b), atol=1e-6)
