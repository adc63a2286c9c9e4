"""Lab 01's figures: softmax temperature (curves, entropy, bars, the gradient scale)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .._args import whole
from ._shared import _axes, _dict, _numbers, _real
from .probabilities import as_numpy, class_names as _names


def temperature_curves(Ts, probs, class_names=None, ax=None, title: str = ""):
    """Probability of each class vs temperature on a log-x axis -> Figure.

    Ts: (K,) temperatures; probs: (K, C) softmax(logits / T) for each T (one row per T).
    The dashed line is the uniform distribution 1/C that every class approaches as T grows.
    """
    Ts, P = as_numpy(Ts), as_numpy(probs)
    if P.ndim != 2 or P.shape[0] != len(Ts):
        raise ValueError(f"probs must be (K, C) with one row per temperature: got "
                         f"{P.shape} for {len(Ts)} temperatures")
    names = _names(P.shape[1], class_names)
    fig, ax = _axes(ax, (6.4, 3.6))
    order = np.argsort(-P[np.argmin(np.abs(Ts - 1.0))])  # legend sorted by p at T = 1
    cmap = plt.get_cmap("tab10" if P.shape[1] <= 10 else "tab20")
    for rank, c in enumerate(order):
        ax.plot(Ts, P[:, c], color=cmap(c % cmap.N), lw=2.2 if rank == 0 else 1.4,
                label=f"class {names[c]}")
    u = 1 / P.shape[1]
    ax.axhline(u, color="k", ls="--", lw=1, label=f"uniform 1/C = {u:.2g}")
    ax.axvline(1.0, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("temperature T (log scale)")
    ax.set_ylabel("probability softmax(z / T)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(title or "Each class's probability as the temperature rises")
    fig.tight_layout()
    return fig


def entropy_curve(Ts, entropies, n_classes: int, marks=(1.0, 4.0, 20.0), ax=None, title: str = ""):
    """Entropy (nats) of softmax(logits / T) vs T on a log-x axis, with its maximum log C -> Figure.

    Ts: (K,) temperatures; entropies: (K,) entropies in nats; n_classes: C.
    `marks`: temperatures labelled with their entropy (read off the curve).
    """
    Ts = _numbers("Ts", Ts, "(K,) temperatures > 0 (a log axis)")
    H = _numbers("entropies", entropies, f"(K,) = ({len(Ts)},) entropies in nats, one per "
                 "temperature of Ts", cols=len(Ts))
    if not (Ts > 0).all():
        raise ValueError(f"Ts must be temperatures > 0 (the x axis is logarithmic), got {Ts}")
    whole("n_classes", n_classes, minimum=2)
    marks = list(_numbers("marks", marks, "temperatures to label, e.g. (1.0, 4.0, 20.0)", empty=True))
    fig, ax = _axes(ax, (5.2, 3.4))
    ax.plot(Ts, H, color="C0", lw=2, label="entropy H(softmax(z / T))")
    hmax = float(np.log(n_classes))
    ax.axhline(hmax, color="k", ls="--", lw=1, label=f"maximum log C = {hmax:.3f}")
    for t in marks:
        if Ts.min() <= t <= Ts.max():
            h = float(np.interp(np.log(t), np.log(Ts), H))
            ax.plot([t], [h], "o", color="C3", ms=5)
            ax.annotate(f"T={t:g}: {h:.2f}", (t, h), textcoords="offset points", xytext=(6, -12),
                        fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("temperature T (log scale)")
    ax.set_ylabel("entropy (nats)")
    ax.set_ylim(0, hmax * 1.1)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title or "Higher T, higher entropy: the distribution flattens")
    fig.tight_layout()
    return fig


def draw_probability_bars(ax, probs, class_names=None, title: str = "", ylim: float = 1.0):
    """Draw one distribution as bars on `ax` (the argmax in red); returns the BarContainer.

    probs: (C,) probabilities. The y axis is fixed to [0, ylim] so bars can be compared.
    """
    p = as_numpy(probs)
    names = _names(len(p), class_names)
    colors = ["#d62728" if i == int(p.argmax()) else "#6baed6" for i in range(len(p))]
    bars = ax.bar(names, p, color=colors, edgecolor="k", lw=0.5)
    ax.axhline(1 / len(p), color="k", ls="--", lw=0.8)
    ax.set_ylim(0, ylim)
    ax.set_xlabel("class")
    if title:
        ax.set_title(title, fontsize=10)
    return bars


def temperature_bars(probs_by_T: dict, class_names=None, entropies: dict | None = None,
                     title: str = ""):
    """Bars of softmax(logits / T) for a few temperatures, one panel per T side by side -> Figure.

    probs_by_T: {T: (C,) probabilities}; entropies: optional {T: entropy in nats} for the titles.
    """
    for T, p in _dict("probs_by_T", probs_by_T, "{T: (C,) probabilities}",
                      "{1.0: p1, 4.0: p4}").items():
        _real(f"the key {T!r} of probs_by_T", T, "a temperature (a number)")
        _numbers(f"probs_by_T[{T!r}]", p, "(C,) probabilities of one example")
        if entropies is not None and T not in _dict("entropies", entropies, "{T: entropy in nats}",
                                                    "{1.0: 0.42, 4.0: 1.61}"):
            raise ValueError(f"entropies has no entry for T = {T!r}: give one per key of probs_by_T")
    n = len(probs_by_T)
    fig, axes = plt.subplots(1, n, figsize=(3.3 * n, 3.0), sharey=True, squeeze=False)
    for ax, (T, p) in zip(axes[0], probs_by_T.items()):
        p = as_numpy(p)
        sub = f"T = {T:g}: max p = {p.max():.3f}"
        if entropies is not None:
            sub += f", H = {float(entropies[T]):.2f}"
        draw_probability_bars(ax, p, class_names, sub)
    axes[0][0].set_ylabel("probability")
    fig.suptitle(title or "The same logits at three temperatures", fontsize=11)
    fig.tight_layout()
    return fig


def gradient_scale(Ts, norms, norms_scaled, ax=None, title: str = ""):
    """Soft-loss gradient norm vs T on log-log axes, without and with the T^2 factor -> Figure.

    Ts, norms, norms_scaled: (K,) the temperatures and the measured gradient norms
    ||d loss / d student_logits|| of the soft loss, and of T^2 times it.
    A dotted 1/T^2 guide passes through the last unscaled point.
    """
    K = len(_numbers("Ts", Ts, "(K,) temperatures"))
    g, g2 = (_numbers(name, v, f"(K,) = ({K},) gradient norms, one per temperature", cols=K)
             for name, v in (("norms", norms), ("norms_scaled", norms_scaled)))
    Ts = as_numpy(Ts)
    fig, ax = _axes(ax, (5.2, 3.4))
    ax.plot(Ts, g, "o-", color="C0", label="soft loss")
    ax.plot(Ts, g2, "s-", color="C2", label="T² × soft loss")
    ax.plot(Ts, g[-1] * (Ts[-1] / Ts) ** 2, ":", color="k", label="∝ 1/T²")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("temperature T (log scale)")
    ax.set_ylabel("gradient norm w.r.t. student logits")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(title or "The soft loss's gradient shrinks like 1/T²")
    fig.tight_layout()
    return fig
