"""kdlab.train: the one training loop, evaluation, prediction, seeding, budget switch."""
import functools

import pytest
import torch
import torch.nn.functional as F

import kdlab as kd
from kdlab.grading.keys.lab03 import kd_loss


@pytest.fixture(scope="module")
def small():
    x, y = kd.data.mnist("train")
    idx = kd.data.balanced_indices(y, 30, seed=0)
    return x[idx], y[idx]


def _train(small, seed, **kw):
    kd.seed(seed)
    m = kd.models.TinyCNN()
    h = kd.train.fit(m, kd.data.Batches(*small, batch_size=32, seed=seed), F.cross_entropy,
                     epochs=2, progress=False, **kw)
    return m, h


def test_same_seed_same_result(small):
    m1, h1 = _train(small, 0)
    m2, h2 = _train(small, 0)
    m3, h3 = _train(small, 1)
    assert h1["step_loss"] == h2["step_loss"]
    for a, b in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(a, b)
    assert h1["step_loss"] != h3["step_loss"]


@pytest.fixture(scope="module")
def held_out():
    """300 test digits (30 per class), none of them in the training split."""
    x, y = kd.data.mnist("test")
    idx = kd.data.balanced_indices(y, 30, seed=0)
    return x[idx], y[idx]


def test_fit_learns_and_records_history(small, held_out):
    kd.seed(0)
    m = kd.models.TinyCNN()
    h = kd.train.fit(m, kd.data.Batches(*small, batch_size=32), F.cross_entropy, epochs=8,
                     progress=False, val=held_out)
    assert len(h["loss"]) == 8 and len(h["val_errors"]) == 8 and len(h["epoch_time"]) == 8
    assert h["loss"][-1] < 0.5 * h["loss"][0]
    # on 300 digits it never trained on: guessing gets about 270 wrong, 8 epochs about 40
    assert h["val_errors"][-1] < 90 and h["val_errors"][-1] < h["val_errors"][0]
    assert h["val_errors"][-1] == kd.evaluation.evaluate(m, *held_out)["errors"]


def test_fit_leaves_student_training_and_teacher_in_eval(small):
    """As documented in fit's docstring: the student ends in train mode, the teacher (moved to
    the device) in eval mode."""
    teacher = kd.models.TinyCNN(c1=4, c2=4).train()
    student = kd.models.TinyCNN().eval()
    kd.train.fit(student, kd.data.Batches(*small, batch_size=32), kd_loss, 1, teacher=teacher,
                 progress=False, dev="cpu")
    assert student.training and not teacher.training
    assert next(teacher.parameters()).device == torch.device("cpu")
    for word in ("train mode", "eval mode", "moved to"):
        assert word in kd.train.fit.__doc__


def test_live_and_cached_teacher_give_identical_training(small):
    teacher = kd.models.TinyCNN(c1=4, c2=4).eval()
    loss = functools.partial(kd_loss, T=4.0, alpha=0.9)
    cached = kd.evaluation.predict_logits(teacher, small[0])
    kd.seed(0)
    a = kd.models.TinyCNN()
    ha = kd.train.fit(a, kd.data.Batches(*small, batch_size=32), loss, 1, teacher=teacher,
                      progress=False)
    kd.seed(0)
    b = kd.models.TinyCNN()
    hb = kd.train.fit(b, kd.data.Batches(*small, batch_size=32), loss, 1, teacher_logits=cached,
                      progress=False)
    assert ha["step_loss"] == pytest.approx(hb["step_loss"], rel=1e-5)


def test_fit_errors_name_the_shapes(small):
    m = kd.models.TinyCNN()
    with pytest.raises(ValueError, match=r"scalar tensor, got \(32,\).*\(32, 10\)"):
        kd.train.fit(m, kd.data.Batches(*small, batch_size=32),
                     lambda out, y: F.cross_entropy(out, y, reduction="none"), progress=False)
    bad = (small[0][:32], torch.full((32,), 10))
    with pytest.raises(ValueError, match=r"labels must lie in 0..9.*\(32, 10\).*10..10"):
        kd.train.fit(m, bad, F.cross_entropy, progress=False)
    with pytest.raises(ValueError, match="not both"):
        kd.train.fit(m, small, kd_loss, teacher=m, teacher_logits=torch.zeros(300, 10))
    with pytest.raises(ValueError, match="indices"):
        kd.train.fit(m, [(small[0][:4], small[1][:4])], kd_loss,
                     teacher_logits=torch.zeros(300, 10), progress=False)


def _mode_dependent_model():
    """A model whose output depends on train/eval mode (batch norm and dropout)."""
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 32),
                            torch.nn.BatchNorm1d(32), torch.nn.ReLU(), torch.nn.Dropout(0.5),
                            torch.nn.Linear(32, 10))
    with torch.no_grad():  # running statistics unlike any one batch's
        m[2].running_mean.uniform_(-1, 1)
        m[2].running_var.uniform_(0.5, 2)
    return m


def test_predict_logits_restores_mode_and_batches(small):
    m = _mode_dependent_model().train()
    x = small[0]
    with torch.no_grad():
        assert not torch.allclose(m(x[:7]), m.eval()(x[:7]), atol=1e-3)  # mode matters here
    m.train()
    stats = m[2].running_mean.clone()
    out = kd.evaluation.predict_logits(m, x, batch_size=7)
    assert out.shape == (300, 10) and m.training and not out.requires_grad
    assert torch.equal(m[2].running_mean, stats)  # eval mode: the statistics were not updated
    m.eval()
    kd.evaluation.predict_logits(m, x)
    assert not m.training
    with torch.no_grad():
        ref = m(x)  # eval mode, one batch: what batches of 7 must give too
    assert torch.allclose(out, ref, atol=1e-5)


def test_evaluate_counts_errors(small):
    class AlwaysZero(torch.nn.Module):
        """Predicts class 0 for every image."""

        def __init__(self):
            super().__init__()
            self.logits = torch.nn.Parameter(torch.eye(10)[0])

        def forward(self, x):
            return self.logits.expand(len(x), 10)

    r = kd.evaluation.evaluate(AlwaysZero(), *small)  # 30 per class: 270 are not zeros
    assert r["errors"] == 270 and r["n"] == 300 and r["accuracy"] == pytest.approx(0.1)


def test_budget_switch(monkeypatch):
    monkeypatch.setenv("KDLAB_QUICK", "1")
    assert kd.quick() and kd.budget(full=5, quick=1) == 1
    monkeypatch.setenv("KDLAB_QUICK", "0")
    assert not kd.quick() and kd.budget(full=5, quick=1) == 5
    monkeypatch.delenv("KDLAB_QUICK")
    assert kd.budget(full="full", quick="quick") == "full"


def test_device_override(monkeypatch):
    monkeypatch.setenv("KDLAB_DEVICE", "cpu")
    assert kd.device() == torch.device("cpu")


def test_train_does_training_only():
    """kd.train holds the loop; evaluation, the distillation loss, the model cache and the
    run's policy are called where they live (no second name for them in kd.train)."""
    own = {n for n, v in vars(kd.train).items() if not n.startswith("_") and callable(v)
           and getattr(v, "__module__", "") == "kdlab.train"}
    assert own == {"fit"}, own
    moved = ("evaluate", "predict_logits", "distillation", "train_once", "seed", "device",
             "threads", "quick_banner", "budget", "quick", "QUICK_BANNER")
    assert not [n for n in moved if hasattr(kd.train, n)]
    for name, where in [("evaluate", kd.evaluation), ("predict_logits", kd.evaluation),
                        ("loss", kd.distill), ("train_once", kd.cache), ("seed", kd),
                        ("device", kd), ("threads", kd), ("quick_banner", kd), ("budget", kd)]:
        assert callable(getattr(where, name)), (where, name)
