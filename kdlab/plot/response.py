"""Lab 03's figures: response-based KD (seed bars, transfer-set size, T x alpha sweep, class accuracy)."""
from __future__ import annotations

import numbers

import matplotlib.pyplot as plt
import numpy as np

from ._shared import _axes, _dict, _mean_std, _numbers, _per_point, _real


def seed_bars(panels: dict, ylabel: str = "test errors", title: str = "", colors=None):
    """One panel per regime, bars of mean ± sample std over seeds, runs as dots -> Figure.

    panels: {panel title: {run label: [test errors, one per seed]}}; colors: one per bar of a
    panel (default: grey, blue, repeating).
    """
    for name, runs in _dict("panels", panels, "{panel title: {run label: [test errors, one per "
                            "seed]}}", "{'HintonMLP': {'labels': [150, 162], 'KD': [98, 91]}}").items():
        for label, errs in _dict(f"panels[{name!r}]", runs, "{run label: [test errors]}",
                                 "{'labels': [150, 162], 'KD': [98, 91]}").items():
            _numbers(f"panels[{name!r}][{label!r}]", errs, "a list of test errors, one per seed")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (name, runs) in zip(axes[0], panels.items()):
        labels = list(runs)
        vals = [np.asarray(runs[k], dtype=float) for k in labels]
        means, stds = zip(*map(_mean_std, vals))
        ax.bar(labels, means, yerr=stds, capsize=6,
               color=(colors or ["#bdbdbd", "#6baed6"] * len(labels))[:len(labels)],
               edgecolor="k")
        for i, v in enumerate(vals):
            ax.scatter([i] * len(v), v, color="k", s=14, zorder=3)
            ax.text(i, means[i] + stds[i], f"{means[i]:.1f} ± {stds[i]:.1f}\n", ha="center",
                    va="bottom", fontsize=9)
        ax.set_ylim(0, max(float(v.max()) for v in vals) * 1.3)
        ax.set_title(name, fontsize=10)
        ax.set_ylabel(ylabel)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def errors_vs_transfer_size(sizes, runs: dict, ax=None, ylabel: str = "test errors", title: str = ""):
    """Test errors against the number of transfer examples (log x axis) -> Figure.

    sizes: (S,) transfer-set sizes; runs: {label: (S,) test errors, or S lists of test errors,
    one per seed}. With several seeds a point is the mean, its bar the sample std (ddof=1),
    and every run is a small dot.
    """
    n = len(_numbers("sizes", sizes, "(S,) transfer-set sizes"))
    per_label = {label: [np.atleast_1d(e) for e in _per_point(f"runs[{label!r}]", errs, n, "sizes")]
                 for label, errs in _dict("runs", runs, "{label: S test errors or S lists of them}",
                                          "{'KD': [[410, 398], [250, 240]]}").items()}
    fig, ax = _axes(ax, (5, 3.4))
    top = [max(per_label, key=lambda k: per_label[k][i].mean()) for i in range(len(sizes))]
    for label, per_size in per_label.items():
        means, stds = map(np.array, zip(*map(_mean_std, per_size)))
        line = ax.errorbar(sizes, means, yerr=stds, marker="o", capsize=4, label=label)
        for s, v in zip(sizes, per_size):
            if len(v) > 1:
                ax.scatter([s] * len(v), v, s=8, color=line[0].get_color(), alpha=0.6, zorder=3)
        for i, (s, m, sd, v) in enumerate(zip(sizes, means, stds, per_size)):
            # the higher series is labelled above its point, the others below: no overlap
            txt = f"{m:.0f}" + (f" ± {sd:.0f}" if len(v) > 1 else "")
            above = top[i] == label
            ax.annotate(txt, (s, m + (sd if above else -sd)), textcoords="offset points",
                        xytext=(4, 3 if above else -3), va="bottom" if above else "top",
                        fontsize=8, color=line[0].get_color())
    ax.set_xscale("log")
    ax.margins(x=0.12, y=0.12)  # room for the labels of the outermost points
    ax.set_xticks(list(sizes))
    ax.set_xticklabels([f"{s:,}" for s in sizes])
    ax.set_xlabel("transfer-set size (training examples)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def sweep_heatmap(errors, Ts, alphas, baseline=None, ax=None, title: str = ""):
    """Heatmap of test errors over temperature (rows) and alpha (columns) -> Figure.

    errors: (len(Ts), len(alphas)); baseline: errors of the hard-label student, shown in the
    colour bar's label. Lower is better; each cell is annotated with its count.
    """
    shape = (len(_numbers("Ts", Ts, "(len(Ts),) temperatures")),
             len(_numbers("alphas", alphas, "(len(alphas),) values of alpha")))
    errors = _numbers("errors", errors, f"(len(Ts), len(alphas)) = {shape} test errors", ndim=(2,),
                      rows=shape[0], cols=shape[1])
    _real("baseline", baseline, "the hard-label student's test errors", none=True)
    fig, ax = _axes(ax, (4.6, 3.8))
    im = ax.imshow(errors, cmap="viridis_r", aspect="auto")
    ax.set_xticks(range(len(alphas)))
    ax.set_xticklabels([f"{a:g}" for a in alphas])
    ax.set_yticks(range(len(Ts)))
    ax.set_yticklabels([f"{t:g}" for t in Ts])
    ax.set_xlabel("alpha (weight of the soft term)")
    ax.set_ylabel("temperature T")
    mid = (errors.min() + errors.max()) / 2
    for i in range(errors.shape[0]):
        for j in range(errors.shape[1]):
            ax.text(j, i, f"{errors[i, j]:.0f}", ha="center", va="center",
                    color="white" if errors[i, j] > mid else "black")
    label = "test errors" + (f" (labels only: {baseline:.0f})" if baseline is not None else "")
    fig.colorbar(im, ax=ax, label=label)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def class_accuracy_bars(acc: dict, highlight: int | None = None, ax=None, title: str = ""):
    """Per-class test accuracy of several models side by side -> Figure.

    acc: {label: (C,) accuracy per class in [0, 1]}; highlight: a class to mark (e.g. 3).
    """
    C = None
    for label, a in _dict("acc", acc, "{label: (C,) accuracy per class}",
                          "{'KD': [0.99, 0.98, ...]}").items():
        C = len(_numbers(f"acc[{label!r}]", a, "(C,) accuracy per class, the same C for every label",
                         cols=C))
    if highlight is not None and not (isinstance(highlight, numbers.Integral) and 0 <= highlight < C):
        raise ValueError(f"highlight must be a class in 0..{C - 1} or None, got {highlight!r}")
    fig, ax = _axes(ax, (7, 3.2))
    n = len(acc)
    width = 0.8 / n
    for k, (label, a) in enumerate(acc.items()):
        a = np.asarray(a, dtype=float)
        ax.bar(np.arange(len(a)) + (k - (n - 1) / 2) * width, 100 * a, width, label=label)
    C = len(next(iter(acc.values())))
    ax.set_xticks(range(C))
    if highlight is not None:
        ax.axvspan(highlight - 0.45, highlight + 0.45, color="#fdd0a2", alpha=0.5, zorder=0)
    ax.set_xlabel("test digit class")
    ax.set_ylabel("accuracy (%)")
    lo = min(float(np.min(a)) for a in acc.values())
    ax.set_ylim(max(0.0, 100 * lo - 5), 100.5)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=n, fontsize=8,
              frameon=False)  # below the axes: a legend inside would cover the bars
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
