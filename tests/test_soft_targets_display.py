"""The figures' one softmax-with-temperature and one entropy (kd.plot.probabilities, numpy-valued:
no answer to an exercise), used by the figures and the explorers; the temperature accepts any
real number type; the soft-target picture and slider."""
import importlib
import inspect
import math

import numpy as np
import pytest
import torch

import kdlab as kd
from kdlab import plot, widgets


@pytest.mark.parametrize("T", [4, 4.0, np.float32(4.0), np.float64(4.0), np.int64(4),
                               torch.tensor(4.0), torch.tensor(4, dtype=torch.int64),
                               torch.tensor(4.0, dtype=torch.float64)])
def test_temperature_of_any_real_type(T):
    z = torch.tensor([[2.0, 1.0, 0.1], [0.0, 3.0, -1.0]])
    want = torch.softmax(z.double() / 4.0, dim=-1).numpy()
    assert np.allclose(plot.probabilities.soft_probabilities(z, T), want)
    assert plot.probabilities.soft_probabilities(z, T).dtype == np.float64


@pytest.mark.parametrize("T, error, message", [
    ("4", TypeError, "got str '4'"),
    (None, TypeError, "got NoneType"),
    (True, TypeError, "got bool"),
    (torch.ones(2), TypeError, "shape (2,)"),
    (torch.tensor(True), TypeError, "dtype torch.bool"),
    (0, ValueError, "> 0, got 0.0"),
    (np.float32(-1.0), ValueError, "> 0, got -1.0"),
    (float("inf"), ValueError, "finite"),
    (torch.tensor(float("nan")), ValueError, "got nan"),
])
def test_temperature_errors_say_what_is_wrong(T, error, message):
    with pytest.raises(error) as e:
        plot.probabilities.soft_probabilities(torch.zeros(3), T)
    assert message in str(e.value) and "temperature T" in str(e.value)


def test_entropy():
    p = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.25, 0.25, 0.5]])
    h = plot.probabilities.entropy_nats(p)
    assert h.shape == (3,)
    assert h.tolist() == pytest.approx([0.0, math.log(2), 1.5 * math.log(2)])
    assert str(float(h[0])) == "0.0"  # not -0.0
    assert float(plot.probabilities.entropy_nats(plot.probabilities.soft_probabilities(np.zeros(10), 7.0))) == pytest.approx(math.log(10))
    assert plot.probabilities.soft_probabilities(np.array([1e4, 0.0]), 1.0)[1] == 0.0  # no overflow


def test_figures_and_explorers_use_the_one_softmax_and_entropy(monkeypatch):
    """No second softmax or entropy formula in kd.plot or kd.widgets: they call
    plot.probabilities.soft_probabilities and .entropy_nats, so one patch of it reaches every caller."""
    import pkgutil
    figures = [importlib.import_module(f"kdlab.plot.{m.name}")
               for m in pkgutil.iter_modules(plot.__path__)]
    for mod in (*figures, widgets):
        src = inspect.getsource(mod)
        for twin in ("torch.softmax(", "F.softmax(", "xlogy(", "log_softmax("):
            assert twin not in src, f"{mod.__name__} computes {twin} itself"
    assert len(figures) >= 7 and sum(inspect.getsource(m).count("np.exp(") for m in figures) == 1
    assert inspect.getsource(widgets).count("np.exp(") == 0
    calls = []
    real = plot.probabilities.soft_probabilities

    def counting(z, T):
        calls.append(T)
        return real(z, T)

    monkeypatch.setattr(plot.probabilities, "soft_probabilities", counting)  # what the widgets and Lab 02's figure call
    ex = widgets.temperature_explorer([1.0, 2.0, 3.0], T=2.0)
    assert 2.0 in calls
    calls.clear()
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2)
    plot.draw_soft_targets(a, b, torch.zeros(1, 28, 28), [3.0, 1.0, 0.0], 0, Ts=(1.0, 4.0))
    plt.close(fig)
    assert calls == [1.0, 4.0]
    assert ex is not None


def test_soft_target_slider_keeps_the_temperatures_students_type():
    """T = 4 stays 4: the slider has no grid that would snap it (it used to show 3.97)."""
    g = torch.Generator().manual_seed(0)
    x, logits, y = torch.zeros(20, 1, 28, 28), torch.randn(20, 10, generator=g), torch.arange(20) % 10
    for T in (0.5, 1.0, 2.0, 4.0, 10.0, 20.0):
        w = widgets.soft_target_explorer(x, logits, y, T=T, n_ambiguous=3)
        s = w.T
        assert s.value == T
        on_grid = s.step is None or math.isclose(
            round((math.log10(T) - s.min) / s.step) * s.step + s.min, math.log10(T), abs_tol=1e-12)
        assert on_grid, f"the slider snaps T = {T} to a step of {s.step} in log10 T"
        assert f"T = {T:.2f}" in w.info.value
    w = widgets.soft_target_explorer(x, logits, y, T=np.float32(4.0), n_ambiguous=3)
    assert w.T.value == 4.0


def test_lowest_soft_target_bar_is_visible():
    """The shortest bar spans at least a decade of the log axis, never a pixel-high sliver."""
    from matplotlib.figure import Figure

    # one class far ahead: the other nine get 1.05e-12 each at T = 1, just above a decade
    logits = [math.log(1 / 1.05e-12), 0, 0, 0, 0, 0, 0, 0, 0, 0]
    fig = Figure(figsize=(8, 2.6), dpi=80)  # the explorer's figure
    ax_img, ax_bar = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 4]})
    plot.draw_soft_targets(ax_img, ax_bar, torch.zeros(1, 28, 28), logits, 0, Ts=(1.0,))
    fig.canvas.draw()
    bottom = ax_bar.get_ylim()[0]
    lowest = min(p.get_height() for p in ax_bar.patches)
    assert lowest == pytest.approx(1.05e-12, rel=1e-3)
    assert math.log10(lowest / bottom) >= 1
    to_px = ax_bar.transData.transform
    px = to_px((0, lowest))[1] - to_px((0, bottom))[1]
    assert px >= 5, f"the lowest bar is {px:.1f} pixels tall"
    assert plot.soft_target_floor(1e-12) == pytest.approx(1e-13)
    assert plot.soft_target_floor(0.0) == 1e-40


def test_budget_keywords_and_the_quick_switch(monkeypatch):
    monkeypatch.setenv("KDLAB_QUICK", "1")
    assert kd.runtime.budget(full=5, quick=1) == 1 and kd.budget(quick="q", full="f") == "q"
    monkeypatch.setenv("KDLAB_QUICK", "0")
    assert kd.runtime.budget(full=5, quick=1) == 5
    assert "globals()" not in inspect.getsource(kd.runtime.budget)


def test_plot_reexports_no_private_helper():
    """kd.plot shows its figures and the probabilities module, and no private helper: what the
    explorers need is public in kd.plot.probabilities."""
    import types
    private = [n for n, v in vars(plot).items() if n.startswith("_") and not n.startswith("__")
               and not isinstance(v, types.ModuleType)]
    assert private == [], private
    for name in ("as_numpy", "is_real", "temperature", "class_names", "soft_probabilities", "entropy_nats"):
        assert callable(getattr(plot.probabilities, name)), name
    src = inspect.getsource(widgets)
    assert "plot._" not in src and "_shared" not in src
