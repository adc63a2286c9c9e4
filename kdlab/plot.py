"""The course's figures: one function per picture, each returning the matplotlib Figure.

Figures are drawn with matplotlib so they are saved in the notebook as static images and
show without a kernel. Each lab's figures have a section below.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

# ---------------------------------------------------------------- shared


def learning_curves(histories: dict, key: str = "val_errors", ax=None, title: str = ""):
    """Plot one curve per run: {label: history from kd.train.fit} -> Figure.

    key: "val_errors" (per epoch), "loss" (per epoch) or "step_loss" (per step).
    """
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5, 3.2))
    for label, h in histories.items():
        ys = h[key]
        xs = np.arange(1, len(ys) + 1)
        ax.plot(xs, ys, marker="o" if key != "step_loss" else None, ms=3, label=label)
    ax.set_xlabel("step" if key == "step_loss" else "epoch")
    ax.set_ylabel({"val_errors": "test errors (of 10,000)"}.get(key, key))
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def mean_std_bars(results: dict, ax=None, ylabel: str = "test errors (of 10,000)", title: str = ""):
    """Bars of mean +- std with the individual runs as dots: {label: [values]} -> Figure."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5, 3.2))
    labels = list(results)
    means = [np.mean(results[k]) for k in labels]
    stds = [np.std(results[k]) for k in labels]
    ax.bar(labels, means, yerr=stds, capsize=6, color="#9ecae1", edgecolor="k")
    for i, k in enumerate(labels):
        ax.scatter([i] * len(results[k]), results[k], color="k", s=12, zorder=3)
        ax.text(i, means[i], f"{means[i]:.1f} ± {stds[i]:.1f}", ha="center", va="bottom")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
