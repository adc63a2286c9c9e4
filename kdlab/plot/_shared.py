"""Shared pieces of the course's figures: axes, mean ± std, the figures' softmax and entropy, helpers more than one lab uses."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import MaxNLocator


def _axes(ax, figsize):
    """(figure, axes) to draw on: those of `ax` when one is given, else a new figure of `figsize`."""
    return (ax.figure, ax) if ax is not None else plt.subplots(figsize=figsize)


def _mean_std(v) -> tuple[float, float]:
    """Mean and sample std (ddof=1; 0 for a single run) of a list of runs."""
    v = np.atleast_1d(np.asarray(v, dtype=float))
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def _real(T) -> bool:
    """True for a real number of any numeric type: int, float, numpy scalar, 0-dim real tensor."""
    import numbers
    if torch.is_tensor(T):
        return T.dim() == 0 and T.dtype != torch.bool and not T.is_complex()
    return isinstance(T, numbers.Real) and not isinstance(T, bool)


def _temperature(T) -> float:
    """The temperature as a float; TypeError or ValueError saying what is wrong with it."""
    if not _real(T):
        what = (f"a tensor of shape {tuple(T.shape)} and dtype {T.dtype}" if torch.is_tensor(T)
                else f"{type(T).__name__} {T!r}")
        raise TypeError(f"temperature T must be a real number (int, float, numpy scalar or 0-dim "
                        f"tensor), got {what}; pass one number, e.g. T=4.0")
    value = float(T)
    if not (value > 0 and np.isfinite(value)):
        raise ValueError(f"temperature T must be a finite number > 0, got {value!r}")
    return value


def _soft(logits, T) -> np.ndarray:
    """The figures' softmax of logits / T along the last dimension, in float64 numpy (so that
    probabilities like 1e-30 stay visible): (..., C) -> (..., C)."""
    z = _np(logits).astype(np.float64) / _temperature(T)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _entropy(p) -> np.ndarray:
    """The figures' entropy in nats along the last dimension, 0 log 0 = 0: (..., C) -> (...)."""
    p = _np(p).astype(np.float64)
    return 0.0 - np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(axis=-1)


def learning_curves(histories: dict, key: str = "val_errors", ax=None, title: str = ""):
    """Plot one curve per run: {label: history from kd.train.fit} -> Figure.

    key: "val_errors" (per epoch), "loss" (per epoch) or "step_loss" (per step).
    """
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


def _log_ticks(lo: float, hi: float) -> list:
    """Readable ticks for a log axis from lo to hi: 1-2-5 steps, finer if the range is narrow."""
    lo, hi = max(lo, 1e-12), max(hi, 1e-12)
    k0, k1 = int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi)))
    for subs in ((1, 2, 5), (1, 1.5, 2, 3, 5, 7), (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [m * 10.0 ** k for k in range(k0, k1 + 1) for m in subs if lo <= m * 10.0 ** k <= hi]
        if len(ticks) >= 3:
            return ticks
    if len(ticks) == 2:
        return ticks
    return sorted({float(f"{lo:.2g}"), float(f"{hi:.2g}")})


def _np(x) -> np.ndarray:
    """A tensor, list or array -> float64 numpy array (detached, on the CPU)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _class_names(C: int, class_names=None) -> list[str]:
    names = [str(c) for c in range(C)] if class_names is None else [str(c) for c in class_names]
    if len(names) != C:
        raise ValueError(f"class_names has {len(names)} names for {C} classes")
    return names


def _pixels(image) -> np.ndarray:
    """A normalised digit (1, 28, 28) or (28, 28) -> pixels in [0, 1] as (28, 28) numpy."""
    from ..data import denormalize

    return denormalize(image.detach().cpu()).reshape(28, 28).numpy()


def _readable_log_axis(ax, values, which: str = "y", pad: float = 1.1,
                       margin: float = 1.25) -> None:
    """Ticks with plain numbers on a log axis spanning `values` (matplotlib alone may show a
    single 10^3).

    which: "x" or "y"; ticks from min / pad to max * pad; limits min / margin to max * margin.
    """
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    vals = [float(v) for v in values if v > 0]
    if not vals:
        return
    axis, set_lim = (ax.xaxis, ax.set_xlim) if which == "x" else (ax.yaxis, ax.set_ylim)
    axis.set_major_locator(FixedLocator(_log_ticks(min(vals) / pad, max(vals) * pad)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 10 else f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())
    set_lim(min(vals) / margin, max(vals) * margin)
