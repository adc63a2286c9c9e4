"""Mutation tests of Lab 04's checks: the hint regressor and the hint loss reject common
mistakes with their own message and accept right answers."""
import contextlib
import functools
import importlib
import io
import json
import pkgutil

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import kdlab as kd
import kdlab.checks  # noqa: F401  (kd.checks)
from kdlab.checks import _probe
from kdlab.checks._common import Mistake
from kdlab.checks._registry import KEYS_DIR
from kdlab.grading import keys
from kdlab.grading.keys.lab04 import hint_loss as reference_hint_loss


@functools.lru_cache(maxsize=None)
def _notebook_outcome(title, obj):
    """What the notebook's check `title` printed for `obj`, or the AssertionError it raised,
    worked out once per module: the notebook-predicts-the-grade tests at the end check again
    the answers the tests before them check (the same fixed inputs, the same seeded calls)."""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            getattr(kd.checks, title)(obj)
    except AssertionError as e:
        return e
    return printed.getvalue()


def _in_notebook(title, obj):
    """``kd.checks.<title>(obj)`` as ``_notebook_outcome`` recorded it: prints its pass line,
    or raises its AssertionError."""
    out = _notebook_outcome(title, obj)
    if isinstance(out, AssertionError):
        raise out
    print(out, end="")

# ------------------------------------------------------------------ HintRegressor: right answers


class ConvThenPool(nn.Module):
    def __init__(self, student_channels, teacher_channels, hint_size=None):
        super().__init__()
        self.conv = nn.Conv2d(student_channels, teacher_channels, 3, padding=1)
        self.hint_size = hint_size

    def forward(self, x):
        x = self.conv(x)
        return x if self.hint_size is None else F.adaptive_avg_pool2d(x, self.hint_size)


class TwoLayersInterpolate(nn.Module):
    def __init__(self, student_channels, teacher_channels, hint_size=None):
        super().__init__()
        self.hint_size = hint_size
        self.net = nn.Sequential(nn.Conv2d(student_channels, 32, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(32, teacher_channels, 1))

    def forward(self, x):
        if self.hint_size is not None and tuple(x.shape[-2:]) != tuple(self.hint_size):
            x = F.interpolate(x, size=self.hint_size, mode="bilinear", align_corners=False)
        return self.net(x)


@pytest.mark.parametrize("cls", [ConvThenPool, TwoLayersInterpolate])
def test_regressor_accepts_right_answers(cls, capsys):
    _in_notebook("check_hint_regressor", cls)
    assert capsys.readouterr().out.startswith("PASSED check_hint_regressor")


# ------------------------------------------------------------------ HintRegressor: mistakes


class NoSpatialHandling(nn.Module):
    def __init__(self, student_channels, teacher_channels, hint_size=None):
        super().__init__()
        self.conv = nn.Conv2d(student_channels, teacher_channels, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


class AlwaysStride2(nn.Module):
    """Right for 14x14 -> 7x7 only."""

    def __init__(self, student_channels, teacher_channels, hint_size=None):
        super().__init__()
        self.conv = nn.Conv2d(student_channels, teacher_channels, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class Frozen(ConvThenPool):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.conv.requires_grad_(False)


class FixedRandomProjection(nn.Module):
    def __init__(self, student_channels, teacher_channels, hint_size=None):
        super().__init__()
        self.register_buffer("w", torch.randn(teacher_channels, student_channels, 1, 1))
        self.hint_size = hint_size

    def forward(self, x):
        x = F.conv2d(x, self.w)
        return x if self.hint_size is None else F.adaptive_avg_pool2d(x, self.hint_size)


class UnusedLayer(nn.Module):
    def __init__(self, student_channels, teacher_channels, hint_size=None):
        super().__init__()
        self.conv = nn.Conv2d(student_channels, teacher_channels, 3, padding=1)
        self.ct, self.hint_size = teacher_channels, hint_size

    def forward(self, x):
        x = x.mean(1, keepdim=True).expand(-1, self.ct, -1, -1)
        return x if self.hint_size is None else F.adaptive_avg_pool2d(x, self.hint_size)


TEACHER = kd.models.Teacher()


class WrapsTeacherBlock(ConvThenPool):
    """Keeps a reference to the teacher, e.g. to read its shapes: its weights become trainable."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.teacher = TEACHER


_GLOBAL_CONVS = {}


class SharedGlobalLayer(nn.Module):
    """Reuses one conv created outside the class for every regressor of the same shape."""

    def __init__(self, student_channels, teacher_channels, hint_size=None):
        super().__init__()
        key = (student_channels, teacher_channels)
        if key not in _GLOBAL_CONVS:
            _GLOBAL_CONVS[key] = nn.Conv2d(student_channels, teacher_channels, 3, padding=1)
        self.conv, self.hint_size = _GLOBAL_CONVS[key], hint_size

    def forward(self, x):
        x = self.conv(x)
        return x if self.hint_size is None else F.adaptive_avg_pool2d(x, self.hint_size)


class NoHintSizeArgument(nn.Module):
    def __init__(self, student_channels, teacher_channels):
        super().__init__()
        self.conv = nn.Conv2d(student_channels, teacher_channels, 1)

    def forward(self, x):
        return self.conv(x)


class Stub(nn.Module):
    def __init__(self, student_channels, teacher_channels, hint_size=None):
        super().__init__()
        # YOUR CODE HERE
        raise NotImplementedError


REGRESSOR_MISTAKES = [
    (NoSpatialHandling, r"maps a student map of shape \(2, 16, 14, 14\) to \(2, 48, 14, 14\), "
                        r"expected \(2, 48, 7, 7\)"),
    (AlwaysStride2, r"hint_size=\(14, 14\)\) maps a student map of shape \(2, 8, 14, 14\) to "
                    r"\(2, 24, 7, 7\), expected \(2, 24, 14, 14\)"),
    (Frozen, "has no trainable parameters"),
    (FixedRandomProjection, "has no trainable parameters"),
    (UnusedLayer, "no gradient reaches the parameters"),
    (WrapsTeacherBlock, "contains a module of the teacher"),
    (SharedGlobalLayer, "two HintRegressor instances share the parameters"),
    (NoHintSizeArgument, "(?s)raised TypeError.*keep the signature"),
    (Stub, "not implemented yet"),
]


@pytest.mark.parametrize("cls, message", REGRESSOR_MISTAKES)
def test_regressor_rejects_mistakes(cls, message):
    with pytest.raises(AssertionError, match=message):
        _in_notebook("check_hint_regressor", cls)


def test_regressor_rejects_an_instance():
    with pytest.raises(AssertionError, match="expected the class itself"):
        kd.checks.check_hint_regressor(ConvThenPool(16, 48, (7, 7)))


# ------------------------------------------------------------------ hint_loss: right answers


def right_mse_loss(s, t, regressor):
    return F.mse_loss(regressor(s), t.detach())


def right_manual_mean(s, t, regressor):
    with torch.no_grad():
        target = t.clone()
    return ((regressor(s) - target) ** 2).mean()


def right_module_loss(s, t, regressor):
    return nn.MSELoss()(regressor(s), t.detach())


def right_flattened(s, t, regressor):
    r = regressor(s).flatten(1)
    return (r - t.detach().flatten(1)).pow(2).sum(1).mean() / r.shape[1]


LOSS_RIGHT = [right_mse_loss, right_manual_mean, right_module_loss, right_flattened]


@pytest.mark.parametrize("fn", LOSS_RIGHT)
def test_loss_accepts_right_answers(fn, capsys):
    _in_notebook("check_hint_loss", fn)
    assert capsys.readouterr().out.startswith("PASSED check_hint_loss")


# ------------------------------------------------------------------ hint_loss: mistakes


def teacher_not_detached(s, t, regressor):
    return F.mse_loss(regressor(s), t)


def unregressed(s, t, regressor):
    return F.mse_loss(s, t.detach())


def reversed_direction(s, t, regressor):
    return F.mse_loss(regressor(t.detach()), s)


def summed(s, t, regressor):
    return F.mse_loss(regressor(s), t.detach(), reduction="sum")


def summed_per_example(s, t, regressor):
    return ((regressor(s) - t.detach()) ** 2).flatten(1).sum(1).mean()


def half(s, t, regressor):
    return 0.5 * F.mse_loss(regressor(s), t.detach())


def norm(s, t, regressor):
    return torch.norm(regressor(s) - t.detach())


def per_element(s, t, regressor):
    return F.mse_loss(regressor(s), t.detach(), reduction="none")


def student_detached(s, t, regressor):
    return F.mse_loss(regressor(s.detach()), t.detach())


def stub(s, t, regressor):
    # YOUR CODE HERE
    raise NotImplementedError


LOSS_MISTAKES = [
    (teacher_not_detached, "a gradient flows into the teacher's features: the teacher is not detached"),
    (unregressed, "the regressor is not applied"),
    (reversed_direction, "the regressor is applied to the teacher's features.*wrong direction"),
    (summed, r"summed instead of averaged \(reduction='sum'\)"),
    (summed_per_example, "summed over channels and positions"),
    (half, "half the mean squared error"),
    (norm, "Euclidean norm"),
    (per_element, r"returned shape \(3, 4, 5, 5\).*expected a scalar"),
    (student_detached, "no gradient reaches the student's features"),
    (stub, "not implemented yet"),
]


@pytest.mark.parametrize("fn, message", LOSS_MISTAKES)
def test_loss_rejects_mistakes(fn, message):
    with pytest.raises(AssertionError, match=message):
        _in_notebook("check_hint_loss", fn)


def test_reference_hint_loss_rejects_mismatched_regressor():
    with pytest.raises(ValueError, match=r"maps student features .* but the teacher's hint"):
        reference_hint_loss(torch.randn(2, 4, 6, 6), torch.randn(2, 8, 3, 3), nn.Conv2d(4, 8, 1))



# ------------------------------------------------------------------ HintRegressor: the layout (issue: crop, constant maps)


def _size(self, x):
    return tuple(self.hint_size) if self.hint_size is not None else tuple(x.shape[-2:])


class CropTopLeft(nn.Module):
    """A 1x1 conv, then the top-left hint_size corner: right shapes, most of the map ignored."""

    def __init__(self, student_channels, teacher_channels, hint_size=None):
        super().__init__()
        self.conv = nn.Conv2d(student_channels, teacher_channels, 1)
        self.hint_size = hint_size

    def forward(self, x):
        h, w = _size(self, x)
        return self.conv(x)[..., :h, :w]


class OneParameter(nn.Module):
    """w * x.mean() * ones(N, Ct, *hint_size): right shapes, a trainable parameter, no layout."""

    def __init__(self, student_channels, teacher_channels, hint_size=None):
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))
        self.ct, self.hint_size = teacher_channels, hint_size

    def forward(self, x):
        return self.w * x.mean() * torch.ones(x.shape[0], self.ct, *_size(self, x))


class FirstChannelOnly(ConvThenPool):
    def __init__(self, student_channels, teacher_channels, hint_size=None):
        super().__init__(1, teacher_channels, hint_size)

    def forward(self, x):
        return super().forward(x[:, :1])


class Flipped(ConvThenPool):
    def forward(self, x):
        return super().forward(x).flip(-1)


class GlobalContext(ConvThenPool):
    """The mean of the conv's output at every position (a 'global' regressor)."""

    def forward(self, x):
        y = self.conv(x).mean((2, 3), keepdim=True)
        return y.expand(-1, -1, *_size(self, x))


class ChangesItsInput(ConvThenPool):
    def forward(self, x):
        x.data.clamp_(min=0)
        return super().forward(x)


class StridedWhenItCan(nn.Module):
    """Right too: a stride-2 conv where the ratio is 2, adaptive pooling otherwise."""

    def __init__(self, student_channels, teacher_channels, hint_size=None):
        super().__init__()
        self.hint_size = hint_size
        self.conv = nn.Conv2d(student_channels, teacher_channels, 3, padding=1)
        self.down = nn.Conv2d(student_channels, teacher_channels, 3, stride=2, padding=1)

    def forward(self, x):
        size = _size(self, x)
        if tuple(x.shape[-2:]) == tuple(2 * s for s in size):
            return self.down(x)
        return F.adaptive_avg_pool2d(self.conv(x), size)


class WithBatchNormAndDropout(nn.Module):
    def __init__(self, student_channels, teacher_channels, hint_size=None):
        super().__init__()
        self.hint_size = hint_size
        self.net = nn.Sequential(nn.Conv2d(student_channels, teacher_channels, 5, padding=2),
                                 nn.BatchNorm2d(teacher_channels), nn.ReLU(), nn.Dropout2d(0.2))

    def forward(self, x):
        return F.interpolate(self.net(x), size=_size(self, x), mode="area")


LAYOUT_MISTAKES = [
    (CropTopLeft, r"ignores part of the student's 14x14 map: 33 of its 49 regions.*(?s:.*)do not crop"),
    (OneParameter, "does not follow the layout of the input.*spread evenly over every output position"),
    (GlobalContext, "does not follow the layout of the input.*spread evenly"),
    (FirstChannelOnly, r"does not depend on input channels 1, 2, 3"),
    (Flipped, r"does not follow the layout.*only 0% of the change"),
    (ChangesItsInput, r"changed the student map passed to it \(its values\)"),
]


@pytest.mark.parametrize("cls, message", LAYOUT_MISTAKES)
def test_regressor_rejects_wrong_layouts(cls, message):
    with pytest.raises(AssertionError, match=message) as e:
        _in_notebook("check_hint_regressor", cls)
    assert "Hint:" in str(e.value)


# ------------------------------------------------------------------ probe/verdict: fresh inputs, params, references

from kdlab.checks import CHECKS  # noqa: E402
from kdlab.checks._registry import judge, probe_data  # noqa: E402

SEEDS = [0, 1, 7, 12345]


def _grade(name, obj, seed=None, params=None):
    check = CHECKS[name]
    return judge(check, probe_data(check, obj, seed, params), seed, params)


@pytest.mark.parametrize("seed", [1, 12345])
@pytest.mark.parametrize("cls", [ConvThenPool, TwoLayersInterpolate, StridedWhenItCan,
                                 WithBatchNormAndDropout])
def test_regressor_right_answers_pass_on_fresh_inputs(cls, seed):
    assert _grade("hint_regressor", cls, seed)


@pytest.mark.parametrize("seed", [7])
@pytest.mark.parametrize("cls, message", LAYOUT_MISTAKES + [
    (AlwaysStride2, "maps a student map of shape"),
    (NoSpatialHandling, "maps a student map of shape"),
    (UnusedLayer, "no gradient reaches the parameters"),
    (SharedGlobalLayer, "share the parameters"),
    (Frozen, "has no trainable parameters"),
])
def test_regressor_wrong_answers_fail_on_fresh_inputs(cls, message, seed):
    message = message.replace("14x14 map: 33 of its 49", r"\d+x\d+ map: \d+ of its \d+")
    with pytest.raises(AssertionError, match=message):
        _grade("hint_regressor", cls, seed)


@pytest.mark.parametrize("seed", [0, 1, 12345])
@pytest.mark.parametrize("cls, message", [(CropTopLeft, "ignores part of the student's"),
                                          (OneParameter, "spread evenly over every output")])
def test_regressor_rejects_crop_and_constant_maps_on_fresh_inputs(cls, message, seed):
    with pytest.raises(AssertionError, match=message):
        _grade("hint_regressor", cls, seed)


@pytest.mark.parametrize("seed", [None, 2])
def test_regressor_fresh_inputs_keep_their_kinds(seed):
    """An integer downsampling, same size, a non-integer ratio, fewer teacher channels, None."""
    cases = [c["case"] for c in CHECKS["hint_regressor"].inputs(seed)["cases"]]
    (cs0, ct0, s0, x0), (_, _, s1, x1), (_, _, s2, x2), (cs3, ct3, _, _), (_, _, s4, _) = cases
    assert x0[2] == 2 * s0[0] and tuple(x1[2:]) == tuple(s1)
    assert x2[2] % s2[0] != 0 and s2[0] < x2[2]
    assert ct3 < cs3 and s4 is None
    if seed is not None:
        assert cases != [c["case"] for c in CHECKS["hint_regressor"].inputs(seed + 1)["cases"]]


def test_regressor_params():
    inp = CHECKS["hint_regressor"].inputs(None, channels=(10, 30), batch=1)
    assert inp["cases"][0]["case"] == (10, 30, (7, 7), (1, 10, 14, 14))
    assert all(c["x"].shape[0] == 1 for c in inp["cases"])
    assert "10 -> 30 channels" in _grade("hint_regressor", ConvThenPool, 3, {"channels": (10, 30)})
    with pytest.raises(AssertionError, match="ignores part"):
        _grade("hint_regressor", CropTopLeft, None, {"channels": [4, 5], "batch": 1})
    with pytest.raises(ValueError, match="batch must be >= 1"):
        CHECKS["hint_regressor"].inputs(None, batch=0)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("fn", [right_mse_loss, right_manual_mean, right_flattened])
def test_loss_right_answers_pass_on_fresh_inputs(fn, seed):
    assert _grade("hint_loss", fn, seed)


@pytest.mark.parametrize("seed", SEEDS[:3])
@pytest.mark.parametrize("fn, message", [
    (teacher_not_detached, "the teacher is not detached"),
    (unregressed, "the regressor is not applied"),
    (reversed_direction, "wrong direction"),
    (summed, "summed instead of averaged"),
    (summed_per_example, "summed over channels and positions"),
    (half, "half the mean squared error"),
    (norm, "Euclidean norm"),
    (per_element, "expected a scalar"),
    (student_detached, "no gradient reaches the student's features"),
])
def test_loss_wrong_answers_fail_on_fresh_inputs(fn, message, seed):
    with pytest.raises(AssertionError, match=message):
        _grade("hint_loss", fn, seed)


def loss_backward_inside(s, t, regressor):
    loss = F.mse_loss(regressor(s), t.detach())
    loss.backward(retain_graph=True)
    return loss


def loss_freezes_teacher_flag(s, t, regressor):
    t.requires_grad_(False)
    return F.mse_loss(regressor(s), t)


def loss_steps_the_regressor(s, t, regressor):
    loss = F.mse_loss(regressor(s), t.detach())
    with torch.no_grad():
        for p in regressor.parameters():
            p.mul_(0.5)
    return loss


def loss_value_outside_autograd(s, t, regressor):
    """Right value, but the gradient is that of a constant times the student's features."""
    value = F.mse_loss(regressor(s), t.detach()).item()
    fake = regressor(s).mean()
    return fake - fake.detach() + value


LOSS_CHANGES_AND_FAKES = [
    (loss_backward_inside, r"changed the student features passed to it \(its .grad\)"),
    (loss_freezes_teacher_flag, r"changed the teacher features passed to it \(its requires_grad flag\)"),
    (loss_steps_the_regressor, "changed the regressor's parameters"),
    (loss_value_outside_autograd, "the gradient with respect to the student's features is not"),
]


@pytest.mark.parametrize("fn, message", LOSS_CHANGES_AND_FAKES)
def test_loss_rejects_changed_inputs_and_fake_gradients(fn, message):
    with pytest.raises(AssertionError, match=message):
        _in_notebook("check_hint_loss", fn)


def test_loss_params():
    inp = CHECKS["hint_loss"].inputs(4, batch=5, channels=(3, 7))
    (_, sa, _, _), (_, sb, tb, down) = inp["cases"]
    assert sa.shape[0] == sb.shape[0] == 5 and sb.shape[1] == 3 and tb.shape[1] == 7
    assert kd.checks.lab04.fixed_regressor(down)(sb).shape == tb.shape
    assert _grade("hint_loss", right_mse_loss, 4, {"batch": 5, "channels": (3, 7)})
    with pytest.raises(AssertionError, match="summed instead of averaged"):
        _grade("hint_loss", summed, None, {"batch": 1})


class BatchOfTwoOnly(ConvThenPool):
    """Right for the batch sizes of the shape checks, wrong when N = 3."""

    def forward(self, x):
        out = super().forward(x)
        return out if x.shape[0] != 3 or x.shape[1] == 32 else out[:2]


def test_regressor_rejects_a_batch_dependent_shape():
    with pytest.raises(AssertionError, match=r"maps a batch of 3 student maps .* expected \(3, 48, 7, 7\)"):
        _in_notebook("check_hint_regressor", BatchOfTwoOnly)


@pytest.mark.parametrize("name, obj", [("hint_regressor", ConvThenPool), ("hint_loss", right_mse_loss)])
def test_incomplete_probe_data_fails(name, obj):
    """A verdict never passes on data that leaves cases out (as a forged probe result might)."""
    data = probe_data(CHECKS[name], obj, 3)
    assert judge(CHECKS[name], data, 3)
    data["cases"] = data["cases"][:1]
    with pytest.raises(AssertionError, match="incomplete"):
        judge(CHECKS[name], data, 3)


# ------------------------------------------------------------------ HintRegressor: the neighbourhood (issue 24)


class PoolThen1x1(nn.Module):
    """Pooling, then a 1x1 conv: right shapes and layout, but each output position sees only
    its own pooling region, not the 3x3 neighbourhood the lab's regressor sees."""

    def __init__(self, student_channels, teacher_channels, hint_size=None):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(hint_size) if hint_size is not None else nn.Identity()
        self.proj = nn.Conv2d(student_channels, teacher_channels, 1)

    def forward(self, x):
        return F.relu(self.proj(self.pool(x)))


class Conv1x1ThenPool(ConvThenPool):
    def __init__(self, student_channels, teacher_channels, hint_size=None):
        super().__init__(student_channels, teacher_channels, hint_size)
        self.conv = nn.Conv2d(student_channels, teacher_channels, kernel_size=1)


class PerPositionLinear(nn.Module):
    """A 1x1 conv written as a matrix product over the channels, after pooling (no Conv2d)."""

    def __init__(self, student_channels, teacher_channels, hint_size=None):
        super().__init__()
        self.w = nn.Parameter(torch.randn(teacher_channels, student_channels) / student_channels ** 0.5)
        self.hint_size = hint_size

    def forward(self, x):
        return torch.einsum("oc,nchw->nohw", self.w, F.adaptive_avg_pool2d(x, _size(self, x)))


NEIGHBOURHOOD_MISTAKES = [
    (PoolThen1x1, r"HintRegressor\(16, 48, hint_size=\(7, 7\)\) regresses each output position "
                  r"from its own place only: the output at \(3, 3\) depends on rows 6-7, columns "
                  r"6-7 of the student's 14x14 map .*\(its convolutions are 1x1: proj\)\. The lab asks "
                  r"for a 3x3 convolution, so that each regressed position sees a neighbourhood"
                  r"(?s:.*)Hint: apply nn.Conv2d\(student_channels, teacher_channels, kernel_size=3, "
                  r"padding=1\)"),
    (Conv1x1ThenPool, r"from its own place only.*\(its convolutions are 1x1: conv\).*lab asks for a 3x3 "
                      r"convolution"),
    (PerPositionLinear, r"from its own place only: the output at \(3, 3\) depends on rows 6-7, "
                        r"columns 6-7 of the student's 14x14 map \(the place it stands for\) "
                        r"and on nothing around them\. The lab asks for a 3x3 convolution"),
]


@pytest.mark.parametrize("cls, message", NEIGHBOURHOOD_MISTAKES)
def test_regressor_rejects_no_neighbourhood(cls, message):
    with pytest.raises(AssertionError, match=message) as e:
        _in_notebook("check_hint_regressor", cls)
    assert "Hint:" in str(e.value)


class SameSizeOnly1x1(ConvThenPool):
    """3x3 where it resizes, but a 1x1 conv when the size is kept: wrong on the same-size pairs."""

    def __init__(self, student_channels, teacher_channels, hint_size=None):
        super().__init__(student_channels, teacher_channels, hint_size)
        self.one = nn.Conv2d(student_channels, teacher_channels, 1)

    def forward(self, x):
        if self.hint_size is None or tuple(self.hint_size) == tuple(x.shape[-2:]):
            return self.one(x)
        return super().forward(x)


def test_regressor_rejects_a_1x1_conv_on_the_same_size_pairs():
    with pytest.raises(AssertionError, match=r"hint_size=\(14, 14\)\) regresses each output position "
                                             r"from its own place only: the output at \(7, 7\) "
                                             r"depends on row 7, column 7 "):
        _in_notebook("check_hint_regressor", SameSizeOnly1x1)


class FunctionalConv(nn.Module):
    """Right too: the 3x3 conv written with F.conv2d and parameters of its own."""

    def __init__(self, student_channels, teacher_channels, hint_size=None):
        super().__init__()
        self.w = nn.Parameter(torch.randn(teacher_channels, student_channels, 3, 3) * 0.1)
        self.b = nn.Parameter(torch.zeros(teacher_channels))
        self.hint_size = hint_size

    def forward(self, x):
        return F.adaptive_avg_pool2d(F.conv2d(x, self.w, self.b, padding=1), _size(self, x))


@pytest.mark.parametrize("cls", [StridedWhenItCan, WithBatchNormAndDropout, FunctionalConv])
def test_regressor_accepts_other_right_answers(cls, capsys):
    _in_notebook("check_hint_regressor", cls)
    assert "sees a neighbourhood of each position" in capsys.readouterr().out


# ------------------------------------------------------------------ no answer in the public package

# kdlab.grading is the instructor's; kdlab.losses holds the losses of labs still on the old checks
PUBLIC_MODULES = sorted(m.name for m in pkgutil.walk_packages(kdlab.__path__, "kdlab.")
                        if not m.name.startswith(("kdlab.grading", "kdlab.losses")))


def test_public_modules_hold_no_reference():
    """The reference hint loss and its mistakes live in kdlab.grading.keys.lab04 only."""
    lab04 = importlib.import_module("kdlab.checks.lab04")
    for gone in ("reference", "MISTAKES", "_regressors", "_sq", "_regions", "_out_shape"):
        assert not hasattr(lab04, gone), gone
    assert all(isinstance(m, Mistake) for m in lab04.HINT_MISTAKES + lab04.REGRESSOR_MISTAKES)
    for name in PUBLIC_MODULES:
        mod = importlib.import_module(name)
        for attr in ("hint_loss", "HintRegressor", "hint_key", "regressor_key"):
            assert not callable(getattr(mod, attr, None)), f"{name}.{attr}"


class WrapsFixedRegressor(nn.Module):
    """The hint-loss check's regressor wrapped as the answer: a stride-2 conv, no pooling."""

    def __init__(self, student_channels, teacher_channels, hint_size=None):
        super().__init__()
        self.conv = kd.checks.lab04.fixed_regressor(
            {"weight": torch.randn(teacher_channels, student_channels, 3, 3) * 0.1,
             "bias": torch.zeros(teacher_channels), "stride": 2})

    def forward(self, x):
        return self.conv(x)


def test_public_helpers_wrapped_as_the_answer_fail():
    with pytest.raises(AssertionError, match="maps a student map of shape"):
        _in_notebook("check_hint_regressor", WrapsFixedRegressor)
    with pytest.raises(AssertionError):  # the probe's regressor is no loss
        kd.checks.check_hint_loss(lambda s, t, r: kd.checks.lab04.fixed_regressor(
            kd.checks.lab04.hint_inputs()["cases"][0][3])(s).mean())


# ------------------------------------------------------------------ PASSED in the notebook predicts the grade

GRADE_SEEDS = (3, 44, 2024)


def _grade_as_grader(name, obj, seed):
    """The grader's path: inputs drawn from `seed`, sent to the kernel as JSON, probed there,
    the probe's JSON judged against the key of the same seed. The pass detail, or the
    AssertionError, as ``_graded`` recorded it."""
    out = _graded(name, obj, seed)
    if isinstance(out, AssertionError):
        raise out
    return out


@functools.lru_cache(maxsize=None)
def _graded(name, obj, seed):
    """``_grade_as_grader``'s verdict, worked out once per module (the grade-prediction tests
    and the neighbourhood tests grade some regressors at the same seed)."""
    check = CHECKS[name]
    inputs = _probe.decode(json.loads(json.dumps(_probe.encode(check.inputs(seed)))))
    try:
        return judge(check, probe_data(check, obj, inputs=inputs), seed)
    except AssertionError as e:
        return e


REGRESSOR_REJECTED = [cls for cls, _ in REGRESSOR_MISTAKES + LAYOUT_MISTAKES + NEIGHBOURHOOD_MISTAKES] + [
    BatchOfTwoOnly, SameSizeOnly1x1, WrapsFixedRegressor]
REGRESSOR_RIGHT = [ConvThenPool, TwoLayersInterpolate, StridedWhenItCan, WithBatchNormAndDropout,
                   FunctionalConv]
LOSS_REJECTED = [fn for fn, _ in LOSS_MISTAKES + LOSS_CHANGES_AND_FAKES]


def _seeds(name, obj, objs) -> tuple:
    """The fresh seeds a case is graded on: all of them for the (cheap) loss check; one each,
    in turn, for the regressor check, whose probe runs the module on four layouts."""
    return GRADE_SEEDS if name == "hint_loss" else (GRADE_SEEDS[objs.index(obj) % len(GRADE_SEEDS)],)


@pytest.mark.parametrize("name, obj", [("hint_regressor", c) for c in REGRESSOR_REJECTED]
                         + [("hint_loss", f) for f in LOSS_REJECTED])
def test_rejected_in_the_notebook_is_rejected_by_the_grader(name, obj):
    with pytest.raises(AssertionError):
        _in_notebook(CHECKS[name].title, obj)
    for seed in _seeds(name, obj, REGRESSOR_REJECTED):
        with pytest.raises(AssertionError):
            _grade_as_grader(name, obj, seed)


@pytest.mark.parametrize("name, obj", [("hint_regressor", c) for c in REGRESSOR_RIGHT]
                         + [("hint_loss", f) for f in LOSS_RIGHT])
def test_passed_in_the_notebook_passes_the_grader(name, obj):
    _in_notebook(CHECKS[name].title, obj)
    for seed in _seeds(name, obj, REGRESSOR_RIGHT):
        assert _grade_as_grader(name, obj, seed)


@pytest.mark.parametrize("name", ["hint_regressor", "hint_loss"])
def test_shipped_keys_are_the_instructor_keys(name):
    """The notebook's key (JSON) is what kdlab.grading.keys computes for the notebook's cases."""
    check = CHECKS[name]
    shipped = json.loads((KEYS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    assert keys.same(shipped, json.loads(keys.public_text(name, check.inputs(None))))


@pytest.mark.parametrize("seed", GRADE_SEEDS)
@pytest.mark.parametrize("cls", [cls for cls, _ in NEIGHBOURHOOD_MISTAKES] + [SameSizeOnly1x1])
def test_regressor_names_the_missing_neighbourhood_on_fresh_inputs(cls, seed):
    with pytest.raises(AssertionError, match="from its own place only.*The lab asks for a 3x3 convolution"):
        _grade_as_grader("hint_regressor", cls, seed)
