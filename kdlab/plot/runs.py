"""Figures of several runs: learning curves per epoch, and mean ± std bars with each run's dot."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.ticker import MaxNLocator

from .._args import kind
from ._shared import _axes, _dict, _mean_std, _numbers


def learning_curves(histories: dict, key: str = "val_errors", ax=None, title: str = ""):
    """Plot one curve per run: {label: history from kd.train.fit} -> Figure.

    key: "val_errors" (per epoch), "loss" (per epoch) or "step_loss" (per step).
    """
    for label, h in _dict("histories", histories, "{label: history from kd.train.fit}",
                          "{'KD': hist}").items():
        if not isinstance(h, Mapping) or key not in h:
            have = f"its keys are {list(h)}" if isinstance(h, Mapping) else f"got {kind(h)}"
            raise TypeError(f"histories[{label!r}] must be a history of kd.train.fit (a dict with "
                            f"the key {key!r}): {have}")
        _numbers(f"histories[{label!r}][{key!r}]", h[key], f"one {key} value per point",
                 empty=True)
    fig, ax = _axes(ax, (5, 3.2))
    for label, h in histories.items():
        ys = h[key]
        xs = np.arange(1, len(ys) + 1)
        ax.plot(xs, ys, marker="o" if key != "step_loss" else None, ms=3, label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs (or steps) only
    ax.set_xlabel("step" if key == "step_loss" else "epoch")
    ax.set_ylabel({"val_errors": "test errors (of 10,000)"}.get(key, key))
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def mean_std_bars(results: dict, ax=None, ylabel: str = "test errors (of 10,000)", title: str = ""):
    """Bars of mean ± sample std (ddof=1) with the individual runs as dots: {label: [values]} -> Figure.

    The "mean ± std" label of each bar sits above its error bar and its highest run.
    """
    for label, v in _dict("results", results, "{label: [values, one per run]}",
                          "{'KD': [98, 91, 95]}").items():
        _numbers(f"results[{label!r}]", v, "a list of values, one per run")
    fig, ax = _axes(ax, (5, 3.2))
    labels = list(results)
    vals = [np.asarray(results[k], dtype=float) for k in labels]
    means, stds = zip(*map(_mean_std, vals))
    import textwrap
    ticks = ["\n".join(textwrap.wrap(str(k), 12)) or str(k) for k in labels]  # no overlapping names
    ax.bar(range(len(labels)), means, yerr=stds, capsize=6, color="#9ecae1", edgecolor="k")
    ax.set_xticks(range(len(labels)), ticks, fontsize=8 if len(labels) > 3 else None)
    tops = [max(m + s, v.max()) for m, s, v in zip(means, stds, vals)]
    pad = 0.03 * max(tops)
    for i, v in enumerate(vals):
        ax.scatter([i] * len(v), v, color="k", s=12, zorder=3)
        ax.text(i, tops[i] + pad, f"{means[i]:.1f} ± {stds[i]:.1f}", ha="center", va="bottom",
                fontsize=8)
    ax.set_ylim(0, max(tops) * 1.18)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
