"""Lab 01 explorer: draws its first picture headless, updates on T and logits, rejects bad input."""
import math

import pytest
import torch

import kdlab as kd
from kdlab.widgets import EXAMPLE_LOGITS, temperature_explorer

PNG = b"\x89PNG"


def _value(html: str) -> float:
    """The full-precision number in <span class="kd-value" data-value="...">."""
    return float(html.split('data-value="')[1].split('"')[0])


def _entropy(p: torch.Tensor) -> float:
    return float(-torch.xlogy(p, p).sum())


def test_initial_picture_and_numbers():
    ex = temperature_explorer()
    assert bytes(ex.picture.value).startswith(PNG)
    p = torch.softmax(torch.tensor(EXAMPLE_LOGITS, dtype=torch.float64), 0)
    assert _value(ex.entropy.value) == pytest.approx(_entropy(p), abs=1e-6)
    assert _value(ex.max_prob.value) == pytest.approx(float(p.max()), abs=1e-6)
    assert "class 2" in ex.max_prob.value
    for w, cls in [(ex, "kd-temperature-explorer"), (ex.T, "kd-temperature"),
                   (ex.logits, "kd-logits"), (ex.entropy, "kd-entropy"),
                   (ex.max_prob, "kd-max-prob"), (ex.error, "kd-logits-error"),
                   (ex.picture, "kd-temperature-figure")]:
        assert cls in w._dom_classes


def test_slider_range_and_update():
    ex = temperature_explorer(torch.tensor([3.0, 1.0, 0.2]))
    assert (ex.T.min, ex.T.max, ex.T.base) == (-1, 2, 10)  # T from 0.1 to 100
    first = bytes(ex.picture.value)
    ex.T.value = 4.0
    p = torch.softmax(torch.tensor([3.0, 1.0, 0.2], dtype=torch.float64) / 4, 0)
    assert _value(ex.entropy.value) == pytest.approx(_entropy(p), abs=1e-6)
    assert bytes(ex.picture.value) != first and bytes(ex.picture.value).startswith(PNG)
    ex.T.value = 100.0
    assert _value(ex.entropy.value) == pytest.approx(math.log(3), abs=1e-3)


def test_logits_text_box():
    ex = temperature_explorer([1.0, 2.0])
    ex.logits.value = "0, 0, 0, 0"
    assert _value(ex.entropy.value) == pytest.approx(math.log(4), abs=1e-6)
    assert ex.error.value == ""
    before = ex.entropy.value
    ex.logits.value = "1, two, 3"
    assert "numbers separated by commas" in ex.error.value
    assert ex.entropy.value == before  # the chart keeps the last valid logits
    ex.logits.value = "5"
    assert "at least 2 logits" in ex.error.value
    ex.logits.value = "1 2 3"
    assert ex.error.value == ""
    assert _value(ex.max_prob.value) == pytest.approx(
        float(torch.softmax(torch.tensor([1.0, 2.0, 3.0]), 0).max()), abs=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(logits=torch.zeros(2, 3)), "one example of shape (C,)"),
    (dict(logits=[1.0]), "at least 2 logits"),
    (dict(logits=[1.0, float("nan")]), "finite"),
    (dict(T=0.0), "T must be a number in [0.1, 100]"),
    (dict(T=1000.0), "T must be a number in [0.1, 100]"),
    (dict(logits=[1.0, 2.0], class_names=["a"]), "1 names for 2 classes"),
])
def test_bad_input(kwargs, message):
    with pytest.raises(ValueError) as e:
        temperature_explorer(**kwargs)
    assert message in str(e.value)


def test_lab01_figures_draw():
    import matplotlib.pyplot as plt

    z = torch.tensor(EXAMPLE_LOGITS)
    Ts = torch.logspace(-1, 2, 31)
    P = torch.stack([torch.softmax(z / T, 0) for T in Ts])
    H = -torch.xlogy(P, P).sum(1)
    figs = [kd.plot.temperature_curves(Ts, P), kd.plot.entropy_curve(Ts, H, n_classes=10),
            kd.plot.temperature_bars({1.0: P[10], 4.0: P[15]}, entropies={1.0: 0.2, 4.0: 1.8}),
            kd.plot.gradient_scale([1, 2, 4], [1.0, 0.3, 0.08], [1.0, 1.2, 1.3])]
    assert all(len(f.axes) >= 1 for f in figs)
    with pytest.raises(ValueError, match="one row per temperature"):
        kd.plot.temperature_curves(Ts[:5], P)
    plt.close("all")


def test_static_picture_for_viewers_without_a_kernel():
    import base64

    ex = temperature_explorer()
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]) == bytes(ex.picture.value)
