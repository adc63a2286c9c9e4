"""The course's interactive explorers (ipywidgets), one function per explorer.

Each explorer draws its initial figure when created, so a notebook executed headless (nbval)
shows a picture and raises no error; in JupyterLab the sliders redraw it in place.
"""
from __future__ import annotations


# ---------------------------------------------------------------- Lab 01: softmax temperature

#: Illustrative logits of a 10-class digit classifier for an image of a 2 that looks a little
#: like a 7 and a 3 (made up for Lab 01; Lab 02 uses the real teacher's logits).
EXAMPLE_LOGITS = (-1.5, 0.5, 9.0, 4.5, -2.0, 0.0, -3.0, 5.5, 1.0, -1.0)


def _parse_logits(text: str) -> list[float]:
    """'1, 2.5, -3' -> [1.0, 2.5, -3.0]; ValueError with a readable message otherwise."""
    parts = [s for s in text.replace(";", ",").replace(" ", ",").split(",") if s.strip()]
    try:
        vals = [float(s) for s in parts]
    except ValueError:
        raise ValueError("logits must be numbers separated by commas, e.g. 3, 1, 0.2") from None
    return _check_logits(vals)


def _check_logits(vals: list[float]) -> list[float]:
    """Between 2 and 20 finite logits, else ValueError saying what is wrong."""
    import math

    if len(vals) < 2:
        raise ValueError(f"give at least 2 logits (one per class), got {len(vals)}")
    if len(vals) > 20:
        raise ValueError(f"at most 20 classes fit the chart, got {len(vals)}")
    if not all(math.isfinite(v) for v in vals):
        raise ValueError("logits must be finite numbers (no nan or inf)")
    return vals


def _explorer(children, shown, css: str, **parts):
    """The explorer box: a VBox of `children` that also carries `shown`'s PNG when displayed
    (for viewers without a kernel), with CSS class `css` and `parts` as attributes."""
    import base64

    import ipywidgets as W

    class Explorer(W.VBox):
        def _repr_mimebundle_(self, **kwargs):
            """The live widget, plus its current picture for viewers without a kernel."""
            data = super()._repr_mimebundle_(**kwargs)
            data["image/png"] = base64.b64encode(bytes(shown.value)).decode("ascii")
            return data

    box = Explorer(children)
    box.add_class(css)
    for name, widget in parts.items():
        setattr(box, name, widget)
    return box


def _png(fig) -> bytes:
    """The figure as PNG bytes (the explorers swap them in place: no flicker)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def temperature_explorer(logits=None, T: float = 1.0, class_names=None):
    """Slide the temperature T (0.1 to 100, log scale) and watch softmax(logits / T) flatten.

    Inputs:
    - logits: (C,) logits of one example, 2 <= C <= 20 (tensor, list or array); default
      ``EXAMPLE_LOGITS`` (10 classes). They can be edited in the text box (comma-separated,
      applied on Enter).
    - T: the first temperature; class_names: C labels for the bars (default 0..C-1)
    Returns: the explorer (an ipywidgets VBox). Its parts, with CSS classes a browser test can
    find: slider ``kd-temperature`` (attribute ``.T``), logits box ``kd-logits`` (``.logits``),
    entropy ``kd-entropy`` (``.entropy``), max probability ``kd-max-prob`` (``.max_prob``),
    input error ``kd-logits-error`` (``.error``), picture ``kd-temperature-figure``
    (``.picture``). The entropy and max-probability texts hold a
    ``<span class="kd-value" data-value="...">`` with the number at full precision.
    Displayed, it also carries its first picture as a static PNG, which notebook viewers
    without a kernel (or without the widget state) show instead of the sliders.
    """
    import math

    import ipywidgets as W
    import numpy as np
    from matplotlib.figure import Figure

    from . import plot
    from .plot import probabilities

    arr = probabilities.as_numpy(EXAMPLE_LOGITS if logits is None else logits)
    if arr.ndim != 1:
        raise ValueError(f"logits must be one example of shape (C,), got shape {arr.shape}; "
                         "pick a row, e.g. logits[0]")
    z = _check_logits(arr.tolist())  # the same rules as the text box
    if not (probabilities.is_real(T) and 0.1 <= T <= 100):
        raise ValueError(f"T must be a number in [0.1, 100], got {T!r}")
    names = probabilities.class_names(len(z), class_names) if class_names is not None else None

    # step=None: no snapping, so a typed T (e.g. 4) is kept exactly; keyboard on the handle:
    # arrows move 10% of the range (x2 in T), PageUp/PageDown x5 that, Home/End the ends
    slider = W.FloatLogSlider(value=float(T), base=10, min=-1, max=2, step=None, description="T",
                              readout_format=".3g", continuous_update=True,
                              layout=W.Layout(width="420px"))
    slider.add_class("kd-temperature")
    box = W.Text(value=", ".join(f"{v:g}" for v in z), description="logits",
                 continuous_update=False, layout=W.Layout(width="420px"))
    box.add_class("kd-logits")
    ent, pmax, err = W.HTML(), W.HTML(), W.HTML()
    ent.add_class("kd-entropy")
    pmax.add_class("kd-max-prob")
    err.add_class("kd-logits-error")
    picture = W.Image(format="png", layout=W.Layout(width="560px"))
    picture.add_class("kd-temperature-figure")

    fig = Figure(figsize=(7, 3.0), dpi=80)
    ax = fig.subplots()
    state = {"z": np.array(z), "bars": None, "names": names}

    def probs(t: float) -> np.ndarray:
        return probabilities.soft_probabilities(state["z"], t)

    def redraw(*_):
        t = float(slider.value)
        p = probs(t)
        if state["bars"] is None or len(state["bars"]) != len(p):  # new class count: new axes
            ax.clear()
            if state["names"] is not None and len(state["names"]) != len(p):
                state["names"] = None
            state["bars"] = plot.draw_probability_bars(ax, p, state["names"])
            ax.set_ylabel("probability")
            ax.set_title("softmax(logits / T) at T = 0.00", fontsize=10)
            fig.tight_layout()
        for i, (bar, h) in enumerate(zip(state["bars"], p)):  # update the bars in place
            bar.set_height(h)
            bar.set_color("#d62728" if i == int(p.argmax()) else "#6baed6")
            bar.set_edgecolor("k")
        ax.set_title(f"softmax(logits / T) at T = {t:.3g}", fontsize=10)
        picture.value = _png(fig)
        h = float(probabilities.entropy_nats(p))
        hmax = math.log(len(p))
        ent.value = (f'entropy <span class="kd-value" data-value="{h:.6f}">{h:.3f}</span> nats '
                     f"(max log {len(p)} = {hmax:.3f})")
        c = int(p.argmax())
        label = state["names"][c] if state["names"] is not None else str(c)
        pmax.value = (f'max probability <span class="kd-value" data-value="{p[c]:.6f}">'
                      f"{p[c]:.3f}</span> (class {label})")

    def on_logits(change):
        try:
            state["z"] = np.array(_parse_logits(change["new"]))
        except ValueError as e:
            err.value = f'<span style="color:#b00">{e}</span>'
            return
        err.value = ""
        redraw()

    slider.observe(redraw, "value")
    box.observe(on_logits, "value")
    redraw()
    return _explorer([W.HBox([slider, ent]), W.HBox([box, pmax]), err, picture], picture,
                     "kd-temperature-explorer", T=slider, logits=box, entropy=ent,
                     max_prob=pmax, error=err, picture=picture)


# ---------------------------------------------------------------- Lab 02: dark knowledge


def soft_target_explorer(images, logits, labels, ambiguous=None, index=None, T: float = 4.0,
                         n_ambiguous: int = 50):
    """Pick a test digit and a temperature; see the digit beside its soft targets (log bars).

    Inputs:
    - images: (N, 1, 28, 28) normalised digits; logits: (N, C) teacher logits; labels: (N,)
    - ambiguous: positions the "next ambiguous" button steps through, in order; default:
      the `n_ambiguous` digits with the largest wrong-class mass at T = 1, largest first
    - index: the digit shown first (default: the first ambiguous one); T: first temperature
    Returns: the explorer (an ipywidgets VBox). Its parts, with CSS classes a browser test
    can find: index box ``kd-digit-index``, button ``kd-next-ambiguous``, temperature slider
    ``kd-soft-T``, text with label and prediction ``kd-digit-info``, picture ``kd-soft-figure``.
    Displayed, it also carries its first picture as a static PNG, which notebook viewers
    without a kernel (or without the widget state) show instead of the controls.
    """

    import ipywidgets as W
    import numpy as np
    import torch
    from matplotlib.figure import Figure

    from . import plot
    from .plot import probabilities

    if not (torch.is_tensor(logits) and logits.dim() == 2):
        raise ValueError(f"logits must be a (N, C) tensor, got "
                         f"{tuple(logits.shape) if torch.is_tensor(logits) else type(logits).__name__}")
    N, C = logits.shape
    if len(images) != N or len(labels) != N:
        raise ValueError(f"images ({len(images)}), logits ({N}) and labels ({len(labels)}) must "
                         "hold the same digits: pass x_test, teacher_logits, y_test")
    if not (probabilities.is_real(T) and 0.5 <= T <= 20):
        raise ValueError(f"T must be a number in [0.5, 20], got {T!r}")
    logits = logits.detach().cpu().double()
    labels = torch.as_tensor(labels).cpu()
    p1 = torch.from_numpy(probabilities.soft_probabilities(logits, 1.0))
    wrong_mass = 1 - p1[torch.arange(N), labels]
    if ambiguous is None:
        ambiguous = wrong_mass.argsort(descending=True)[:n_ambiguous]
    ambiguous = [int(i) for i in ambiguous]
    if not ambiguous or min(ambiguous) < 0 or max(ambiguous) >= N:
        raise ValueError(f"ambiguous must be a non-empty list of positions in 0..{N - 1}")
    start = ambiguous[0] if index is None else int(index)
    if not 0 <= start < N:
        raise ValueError(f"index must lie in 0..{N - 1}, got {index}")

    idx_box = W.BoundedIntText(value=start, min=0, max=N - 1, description="digit #",
                               layout=W.Layout(width="170px"))
    idx_box.add_class("kd-digit-index")
    nxt = W.Button(description="next ambiguous", icon="forward",
                   tooltip="step to the next digit with a large wrong-class mass")
    nxt.add_class("kd-next-ambiguous")
    # step=None: no snapping, so T = 4 stays 4 (a step of 0.01 in log10 T would snap it to 3.97)
    t_slider = W.FloatLogSlider(value=float(T), base=10, min=np.log10(0.5), max=np.log10(20),
                                step=None, description="T", readout_format=".2f",
                                continuous_update=True, layout=W.Layout(width="360px"))
    t_slider.add_class("kd-soft-T")
    info = W.HTML()
    info.add_class("kd-digit-info")
    picture = W.Image(format="png", layout=W.Layout(width="640px"))
    picture.add_class("kd-soft-figure")

    fig = Figure(figsize=(8, 2.6), dpi=80)
    ax_img, ax_bar = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 4]})
    fig.subplots_adjust(left=0.01, right=0.87, bottom=0.2, top=0.88, wspace=0.22)
    state = {"rank": ambiguous.index(start) if start in ambiguous else -1}

    def redraw(*_):
        i, t = int(idx_box.value), float(t_slider.value)
        y, pred = int(labels[i]), int(logits[i].argmax())
        pt = probabilities.soft_probabilities(logits[i], t)
        Ts = (1.0,) if abs(t - 1) < 1e-9 else (1.0, round(t, 2))
        plot.draw_soft_targets(ax_img, ax_bar, images[i], logits[i].numpy(), y, Ts,
                               caption=f"#{i}: label {y}")
        ax_bar.set_xlabel("class (true class in red)")
        picture.value = _png(fig)
        verdict = "right" if pred == y else "wrong"
        rank = state["rank"]
        where = f" · ambiguous {rank + 1} of {len(ambiguous)}" if rank >= 0 else ""
        info.value = (f"digit <b>#{i}</b> · label <b>{y}</b> · teacher predicts <b>{pred}</b> "
                      f"({verdict}, p = {float(p1[i, pred]):.4f} at T = 1) · wrong-class mass "
                      f"{float(wrong_mass[i]):.4f} at T = 1, {float(1 - pt[y]):.4f} at "
                      f"T = {t:.2f}{where}")

    def on_index(change):
        i = int(change["new"])
        state["rank"] = ambiguous.index(i) if i in ambiguous else -1
        redraw()

    def on_next(_):
        state["rank"] = (state["rank"] + 1) % len(ambiguous)
        idx_box.unobserve(on_index, "value")
        idx_box.value = ambiguous[state["rank"]]
        idx_box.observe(on_index, "value")
        redraw()

    idx_box.observe(on_index, "value")
    t_slider.observe(redraw, "value")
    nxt.on_click(on_next)
    redraw()

    return _explorer([W.HBox([idx_box, nxt, t_slider]), info, picture], picture,
                     "kd-soft-target-explorer", index=idx_box, next_button=nxt, T=t_slider,
                     info=info, picture=picture)
