"""Lab 04's figures: hint learning (hint maps, staged error curves)."""
from __future__ import annotations

import numbers

import matplotlib.pyplot as plt
import torch

from .._args import kind
from ._shared import _axes, _dict, _numbers, _pixels, _readable_log_axis, _real


def hint_maps(images, maps: dict, channel=None, title: str = ""):
    """One row per digit: the digit, then each feature map of `maps` side by side -> Figure.

    Inputs: images (n, 1, 28, 28) normalised; maps {column label: (n, C, h, w)}, e.g. the
    teacher's hint and the regressed student map before and after hint training;
    channel: None shows the mean over channels, an int shows that channel. Each row shares
    one colour scale, set by the first map (the teacher's), so the maps compare directly.
    """
    if not (torch.is_tensor(images) and images.dim() in (3, 4) and len(images)
            and images[0].numel() == 28 * 28):
        raise TypeError(f"images must be a tensor of n digits (n, 1, 28, 28), got {kind(images)}; "
                        "e.g. images=x[:6]")
    n = len(images)
    for label, m in _dict("maps", maps, "{column label: (n, C, h, w) feature maps}",
                          "{'teacher hint': t_feats[:6]}").items():
        if not (torch.is_tensor(m) and m.dim() == 4 and len(m) >= n):
            raise TypeError(f"maps[{label!r}] must be a tensor (n, C, h, w) of the {n} images' "
                            f"feature maps, got {kind(m)}")
        if channel is not None and not (isinstance(channel, numbers.Integral)
                                        and -m.shape[1] <= channel < m.shape[1]):
            raise ValueError(f"channel must be None (the mean over channels) or a channel of "
                             f"maps[{label!r}], in 0..{m.shape[1] - 1}, got {channel!r}")
    labels = list(maps)
    fig, axes = plt.subplots(n, 1 + len(labels), figsize=(1.45 * (1 + len(labels)), 1.5 * n),
                             squeeze=False)
    for r in range(n):
        axes[r, 0].imshow(_pixels(images[r]), cmap="gray_r", vmin=0, vmax=1)
        ref = None
        for c, label in enumerate(labels, start=1):
            m = maps[label][r].detach().cpu().float()
            m = (m.mean(0) if channel is None else m[channel]).numpy()
            if ref is None:
                ref = (m.min(), m.max() if m.max() > m.min() else m.min() + 1)
            axes[r, c].imshow(m, cmap="magma", vmin=ref[0], vmax=ref[1])
            if r == 0:
                axes[r, c].set_title(label, fontsize=8)
        if r == 0:
            axes[r, 0].set_title("digit", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    what = "mean over channels" if channel is None else f"channel {channel}"
    fig.suptitle(title or f"feature maps ({what}; one colour scale per row)", fontsize=9)
    fig.tight_layout()
    return fig


def staged_error_curves(curves: dict, stage1_epochs: float = 0, total_epochs: float | None = None,
                        ax=None, title: str = ""):
    """Test errors against the epochs of the shared budget, stage 1 shaded -> Figure.

    Inputs: curves {label: (epochs (K,), errors (K,))}, the epoch at which each error was
    measured (hints + KD starts its curve after stage 1); stage1_epochs: width of the shaded
    span; total_epochs: the budget, drawn as the right edge. Log scale on y.
    """
    for label, curve in _dict("curves", curves, "{label: (epochs (K,), errors (K,))}",
                              "{'KD': ([1, 2, 3], [210, 160, 140])}").items():
        if not (isinstance(curve, (tuple, list)) and len(curve) == 2):
            raise TypeError(f"curves[{label!r}] must be a pair (epochs (K,), errors (K,)), "
                            f"got {kind(curve)}")
        K = len(_numbers(f"curves[{label!r}]'s epochs", curve[0], "(K,) epochs"))
        _numbers(f"curves[{label!r}]'s errors", curve[1], f"(K,) = ({K},) test errors, one per epoch",
                 cols=K)
    _real("stage1_epochs", stage1_epochs, "the epochs of stage 1")
    _real("total_epochs", total_epochs, "the epochs of the budget", none=True)
    fig, ax = _axes(ax, (5.6, 3.4))
    if stage1_epochs:
        ax.axvspan(0, stage1_epochs, color="#eeeeee", zorder=0)
        ax.text(stage1_epochs / 2, 0.97, "stage 1\n(hints)", transform=ax.get_xaxis_transform(),
                ha="center", va="top", fontsize=7, color="#555555")
    for label, (xs, ys) in curves.items():
        ax.plot(xs, ys, marker="o", ms=3, label=label)
    ax.set_yscale("log")
    _readable_log_axis(ax, [y for _, (_, yv) in curves.items() for y in yv], pad=1.05, margin=1.15)
    ax.set_xlim(0, total_epochs if total_epochs else None)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("epochs of the shared training budget")
    ax.set_ylabel("test errors (log scale)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
