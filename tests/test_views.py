"""kdlab.views: shifts, fixed jittered views, ViewBatches, and fit's lookup of each view's logits;
HintonMLP's dropout and max-norm (the paper's teacher)."""
import pytest
import torch
import torch.nn.functional as F

import kdlab as kd
from kdlab import data, views

BLACK = -data.MEAN / data.STD


def _digits(n=6, h=8, w=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, h, w, generator=g)


def test_shift_by_moves_every_pixel_exactly_and_fills_black():
    x = _digits(3)
    out = views.shift_by(x, torch.tensor([[1, 0], [0, -2], [0, 0]]))
    assert torch.equal(out[0, :, :, 1:], x[0, :, :, :-1])  # one pixel to the right
    assert torch.all(out[0, :, :, 0] == BLACK)
    assert torch.equal(out[1, :, :-2, :], x[1, :, 2:, :])  # two pixels up
    assert torch.all(out[1, :, -2:, :] == BLACK)
    assert torch.equal(out[2], x[2])
    with pytest.raises(ValueError, match=r"offsets must have shape \(3, 2\)"):
        views.shift_by(x, torch.zeros(2, 2, dtype=torch.long))


def test_integer_shift_stays_within_pixels_and_is_seeded():
    x = _digits(50)
    a = views.shift(x, 2, torch.Generator().manual_seed(1), integer=True)
    b = views.shift(x, 2, torch.Generator().manual_seed(1), integer=True)
    assert torch.equal(a, b)
    # every image is one of the 25 whole-pixel shifts of itself
    cands = torch.stack([views.shift_by(x, torch.tensor([[dx, dy]] * len(x)))
                         for dx in range(-2, 3) for dy in range(-2, 3)])
    assert all(any(torch.equal(a[i], c[i]) for c in cands) for i in range(len(x)))
    assert not torch.equal(a, x)
    with pytest.raises(ValueError, match="pixels must be >= 0"):
        views.shift(x, -1, torch.Generator())


def test_jittered_views_are_fixed_and_nested():
    x = _digits(5)
    v4 = views.jittered(x, 4, seed=3, chunk=2, integer=True)
    assert v4.shape == (4, 5, 1, 8, 8)
    assert torch.equal(views.jittered(x, 2, seed=3, integer=True), v4[:2])  # first j of k
    bilinear = views.jittered(x, 3, seed=3, chunk=2)
    assert torch.equal(views.jittered(x, 2, seed=3), bilinear[:2])
    assert not torch.equal(v4[0], v4[1])
    assert not torch.equal(views.jittered(x, 2, seed=4), v4[:2])
    with pytest.raises(ValueError, match="k \\(views per image\\) must be >= 1"):
        views.jittered(x, 0)


def test_elastic_without_a_field_is_the_bilinear_shift_and_is_seeded():
    """With a vanishing field (alpha ~ 0) an elastic view is exactly shift()'s bilinear view with
    the same offsets: the two share one coordinate convention."""
    x = _digits(7, 12, 10)
    g_el, g_sh = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    torch.rand(7 * 2, 1, 12, 10, generator=g_sh)  # the draws of the field come first
    still = views.elastic(x, g_el, alpha=1e-9, sigma=2)
    assert torch.allclose(still, views.shift(x, 2, g_sh), atol=1e-5)
    a = views.elastic(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, views.elastic(x, torch.Generator().manual_seed(1)))
    assert (a - x).abs().mean() > 0.1  # a real distortion, not the image
    nested = views.jittered(x, 3, seed=2, elastic_field=(34.0, 4.0))
    assert torch.equal(views.jittered(x, 2, seed=2, elastic_field=(34.0, 4.0)), nested[:2])
    for bad in ({"alpha": 0}, {"sigma": -1}, {"pixels": -2}):
        with pytest.raises(ValueError, match="elastic needs alpha > 0, sigma > 0 and pixels >= 0"):
            views.elastic(x, torch.Generator(), **bad)
    with pytest.raises(ValueError, match="elastic views are sampled bilinearly"):
        views.jittered(x, 2, integer=True, elastic_field=(34.0, 4.0))


def test_view_batches_cover_each_image_once_per_epoch_in_a_random_view():
    x, y = _digits(10), torch.arange(10)
    v = views.jittered(x, 3, seed=0)
    b = views.ViewBatches(v, y, batch_size=4, seed=1)
    assert len(b) == 3
    chosen = []
    for _ in range(4):
        seen = []
        for xb, yb, idx in b:
            k, i = idx // 10, idx % 10
            assert torch.equal(xb, v[k, i]) and torch.equal(yb, y[i])
            seen += i.tolist()
            chosen.append(k)
        assert sorted(seen) == list(range(10))
    assert len(torch.cat(chosen).unique()) == 3  # every view gets used
    again = [idx for _, _, idx in views.ViewBatches(v, y, batch_size=4, seed=1)]
    first = [idx for _, _, idx in views.ViewBatches(v, y, batch_size=4, seed=1)]
    assert all(torch.equal(a, f) for a, f in zip(again, first))
    with pytest.raises(ValueError, match=r"views must be \(K, N, ...\) with N = len\(y\) = 9"):
        views.ViewBatches(v, y[:9])


def test_fit_looks_up_the_logits_of_the_view_the_student_sees():
    """A teacher whose logits are a function of the image: every batch's cached logits must
    be that function of exactly the images the student gets."""
    x, y = _digits(12), torch.arange(12) % 10
    v = views.jittered(x, 4, seed=0)
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    logits = views.teacher_logits(teacher, v, progress=False)
    assert logits.shape == (48, 10)
    seen = []

    class Student(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(64, 10)

        def forward(self, xb):
            self.last = xb
            return self.fc(xb.flatten(1))

    student = Student()

    def loss_fn(out, t_out, labels):
        with torch.no_grad():
            assert torch.allclose(t_out, teacher(student.last), atol=1e-5)
        seen.append(len(labels))
        return F.cross_entropy(out, labels)

    kd.train.fit(student, views.ViewBatches(v, y, batch_size=5, seed=0), loss_fn, 2,
                 teacher_logits=logits, progress=False)
    assert sum(seen) == 24


def test_hinton_mlp_without_dropout_draws_no_random_numbers():
    torch.manual_seed(0)
    m = kd.models.HintonMLP()
    assert set(m.state_dict()) == {f"fc{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")}
    x = _digits(4, 28, 28)
    state = torch.get_rng_state()
    m.train()
    assert torch.equal(m(x), m(x))
    assert torch.equal(torch.get_rng_state(), state)


def test_hinton_mlp_dropout_only_in_train_mode():
    m = kd.models.HintonMLP(1200, dropout_in=0.2, dropout=0.5)
    x = _digits(4, 28, 28)
    m.train()
    assert not torch.equal(m(x), m(x))
    m.eval()
    assert torch.equal(m(x), m(x))


def test_max_norm_caps_each_units_incoming_weights():
    m = kd.models.HintonMLP(16)
    with torch.no_grad():
        m.fc1.weight[0] *= 100
    small = m.fc2.weight.clone()
    m.max_norm_(3.0)
    assert m.fc1.weight.norm(dim=1).max() <= 3.0 + 1e-5
    assert float(m.fc1.weight[0].detach().norm()) == pytest.approx(3.0, rel=1e-5)
    assert torch.equal(m.fc2.weight, small)  # rows under the bound are untouched
    with pytest.raises(ValueError, match="max-norm bound c must be > 0"):
        m.max_norm_(0)
