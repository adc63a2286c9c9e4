"""Mutation tests of Lab 04's checks: the hint regressor and the hint loss reject common
mistakes with their own message and accept right answers."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import kdlab as kd
import kdlab.checks  # noqa: F401  (kd.checks)
from kdlab.losses import hint_loss as reference_hint_loss

# ------------------------------------------------------------------ HintRegressor: right answers


class ConvThenPool(nn.Module):
    def __init__(self, student_channels, teacher_channels, hint_size=None):
        super().__init__()
        self.conv = nn.Conv2d(student_channels, teacher_channels, 3, padding=1)
        self.hint_size = hint_size

    def forward(self, x):
        x = self.conv(x)
        return x if self.hint_size is None else F.adaptive_avg_pool2d(x, self.hint_size)


class PoolThen1x1(nn.Module):
    def __init__(self, student_channels, teacher_channels, hint_size=None):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(hint_size) if hint_size is not None else nn.Identity()
        self.proj = nn.Conv2d(student_channels, teacher_channels, 1)

    def forward(self, x):
        return F.relu(self.proj(self.pool(x)))


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


@pytest.mark.parametrize("cls", [ConvThenPool, PoolThen1x1, TwoLayersInterpolate])
def test_regressor_accepts_right_answers(cls, capsys):
    kd.checks.check_hint_regressor(cls)
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


@pytest.mark.parametrize("cls, message", [
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
])
def test_regressor_rejects_mistakes(cls, message):
    with pytest.raises(AssertionError, match=message):
        kd.checks.check_hint_regressor(cls)


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


@pytest.mark.parametrize("fn", [right_mse_loss, right_manual_mean, right_module_loss,
                                right_flattened, reference_hint_loss])
def test_loss_accepts_right_answers(fn, capsys):
    kd.checks.check_hint_loss(fn)
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


@pytest.mark.parametrize("fn, message", [
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
])
def test_loss_rejects_mistakes(fn, message):
    with pytest.raises(AssertionError, match=message):
        kd.checks.check_hint_loss(fn)


def test_reference_hint_loss_rejects_mismatched_regressor():
    with pytest.raises(ValueError, match=r"maps student features .* but the teacher's hint"):
        reference_hint_loss(torch.randn(2, 4, 6, 6), torch.randn(2, 8, 3, 3), nn.Conv2d(4, 8, 1))
