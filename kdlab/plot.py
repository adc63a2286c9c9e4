"""The course's figures: one function per picture, each returning the matplotlib Figure.

Figures are drawn with matplotlib so they are saved in the notebook as static images and
show without a kernel. Each lab's figures have a section below.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import MaxNLocator

# ---------------------------------------------------------------- shared


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


# ---------------------------------------------------------------- Lab 01: softmax temperature


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


def temperature_curves(Ts, probs, class_names=None, ax=None, title: str = ""):
    """Probability of each class vs temperature on a log-x axis -> Figure.

    Ts: (K,) temperatures; probs: (K, C) softmax(logits / T) for each T (one row per T).
    The dashed line is the uniform distribution 1/C that every class approaches as T grows.
    """
    Ts, P = _np(Ts), _np(probs)
    if P.ndim != 2 or P.shape[0] != len(Ts):
        raise ValueError(f"probs must be (K, C) with one row per temperature: got "
                         f"{P.shape} for {len(Ts)} temperatures")
    names = _class_names(P.shape[1], class_names)
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
    Ts, H = _np(Ts), _np(entropies)
    if H.shape != Ts.shape:
        raise ValueError(f"entropies {H.shape} and Ts {Ts.shape} must have the same length")
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
    p = _np(probs)
    names = _class_names(len(p), class_names)
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
    n = len(probs_by_T)
    fig, axes = plt.subplots(1, n, figsize=(3.3 * n, 3.0), sharey=True, squeeze=False)
    for ax, (T, p) in zip(axes[0], probs_by_T.items()):
        p = _np(p)
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
    Ts, g, g2 = _np(Ts), _np(norms), _np(norms_scaled)
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


# ---------------------------------------------------------------- Lab 02: dark knowledge


def _pixels(image) -> np.ndarray:
    """A normalised digit (1, 28, 28) or (28, 28) -> pixels in [0, 1] as (28, 28) numpy."""
    from .data import denormalize

    return denormalize(image.detach().cpu()).reshape(28, 28).numpy()


def error_gallery(images, labels, probs, indices, ncols: int = 10, title: str = ""):
    """The digits in `indices` with their label and the model's top-2 guesses -> Figure.

    Inputs: images (N, 1, 28, 28) normalised; labels (N,); probs (N, C) soft targets;
    indices: positions to show (e.g. the misclassified ones).
    """
    indices = list(indices)
    nrows = max(1, -(-len(indices) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.3 * ncols, 1.55 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, indices):
        p = np.asarray(probs[i], dtype=np.float64)
        top = np.argsort(-p)[:2]
        ax.imshow(_pixels(images[i]), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"#{i} label {int(labels[i])}\n{top[0]}: {p[top[0]]:.2f}  "
                     f"{top[1]}: {p[top[1]]:.2f}", fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def similarity_heatmap(S, ax=None, title: str = "", annotate: bool = True):
    """Heatmap of a class-similarity matrix on a log colour scale, diagonal masked -> Figure.

    Input S: (C, C), row c = mean soft target of the digits of true class c.
    """
    from matplotlib.colors import LogNorm

    S = np.asarray(S, dtype=np.float64)
    C = S.shape[0]
    off = np.ma.masked_array(S, mask=np.eye(C, dtype=bool) | (S <= 0))
    fig, ax = _axes(ax, (5.6, 4.6))
    cmap = plt.get_cmap("viridis").copy()
    cmap.set_bad("#dddddd")
    im = ax.imshow(off, cmap=cmap, norm=LogNorm(vmin=off.min(), vmax=off.max()))
    fig.colorbar(im, ax=ax, label="mean probability (log scale)")
    if annotate:
        lo, hi = np.log(off.min()), np.log(off.max())
        for r in range(C):
            for c in range(C):
                if r != c and S[r, c] > 0:
                    dark = (np.log(S[r, c]) - lo) / max(hi - lo, 1e-12) < 0.6
                    ax.text(c, r, f"{S[r, c]:.0e}".replace("e-0", "e-"), ha="center",
                            va="center", fontsize=6, color="w" if dark else "k")
    ax.set_xticks(range(C))
    ax.set_yticks(range(C))
    ax.set_xlabel("class the teacher gives probability to")
    ax.set_ylabel("true class of the digit")
    ax.set_title(title or "teacher's mean soft target per class (diagonal masked)")
    fig.tight_layout()
    return fig


def dark_knowledge_vs_T(Ts, curves: dict, ax=None, title: str = "", logy: bool = False):
    """Mean wrong-class probability mass against temperature, one line per curve -> Figure.

    Inputs: Ts (K,) temperatures; curves {label: (K,) values}; logy: log scale for the mass
    (where the small values at low T are visible). The first curve is drawn as a wide, pale
    band and the others as thinner lines with their own markers on top, so that a curve
    lying on another (the mean of all digits on the mean of the correct ones) stays visible.
    """
    fig, ax = _axes(ax, (5.6, 3.4))
    styles = [dict(lw=6, alpha=0.35, color="0.35", solid_capstyle="round"),
              dict(lw=1.4, ls="--", marker="o", ms=3, mfc="white"),
              dict(lw=1.4, ls="-", marker="s", ms=3)]
    for k, (label, ys) in enumerate(curves.items()):
        ax.plot(Ts, ys, label=label, zorder=2 + k, **styles[min(k, len(styles) - 1)])
    ax.set_xscale("log")
    ax.set_xlabel("temperature T (log scale)")
    ax.set_ylabel("probability on wrong classes" + (" (log scale)" if logy else ""))
    if logy:
        ax.set_yscale("log")
        ax.set_ylim(top=1)
    else:
        ax.set_ylim(0, 1)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def soft_target_floor(lowest: float) -> float:
    """Bottom of the log axis of soft-target bars whose smallest probability is `lowest`.

    A whole decade below the decade of `lowest`, so the shortest bar is at least one decade
    tall (never a pixel-high sliver) down to 1e-39; the axis stops at 1e-40 (probabilities
    under it are not drawn).
    """
    return max(10.0 ** (np.floor(np.log10(max(lowest, 1e-300))) - 1), 1e-40)


def draw_soft_targets(ax_img, ax_bar, image, logits, label: int, Ts=(1.0, 4.0),
                      caption: str = "") -> None:
    """Draw one digit (left) and its soft targets at each T as bars on a log axis (right).

    Inputs: image (1, 28, 28) normalised; logits (C,) of the teacher; label: true class;
    Ts: temperatures, one group of bars each. The y axis starts a decade below the
    decade of the smallest probability (see ``soft_target_floor``).
    """
    ax_img.clear()
    ax_bar.clear()
    ax_img.imshow(_pixels(image), cmap="gray_r", vmin=0, vmax=1)
    ax_img.axis("off")
    ax_img.set_title(caption or f"label {label}", fontsize=9)
    z = _np(logits)
    C = len(z)
    width = 0.8 / len(Ts)
    lows = []
    for k, T in enumerate(Ts):
        p = _soft(z, T)  # float64: tiny probabilities such as 1e-12 stay visible
        lows.append(p.min())
        ax_bar.bar(np.arange(C) - 0.4 + width * (k + 0.5), p, width=width, label=f"T = {T:g}",
                   color=plt.get_cmap("tab10")(k))
    ax_bar.set_yscale("log")
    ax_bar.set_ylim(soft_target_floor(min(lows)), 2)
    ax_bar.set_xticks(range(C))
    ax_bar.get_xticklabels()[label].set_fontweight("bold")
    ax_bar.get_xticklabels()[label].set_color("tab:red")
    ax_bar.set_ylabel("probability (log)")
    ax_bar.grid(alpha=0.3, axis="y")
    ax_bar.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def soft_targets_of_digits(images, logits, labels, indices, Ts=(1.0, 4.0), title: str = ""):
    """One row per digit: its image beside its soft targets at each T (log axis) -> Figure.

    Inputs: images (N, 1, 28, 28) normalised; logits (N, C); labels (N,); indices to show.
    The true class is marked in red on the x axis.
    """
    indices = list(indices)
    fig, axes = plt.subplots(len(indices), 2, figsize=(7, 1.9 * len(indices)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 4]})
    for (ax_img, ax_bar), i in zip(axes, indices):
        lg = np.asarray(logits[i], dtype=np.float64)
        draw_soft_targets(ax_img, ax_bar, images[i], lg, int(labels[i]), Ts,
                          caption=f"#{i}: label {int(labels[i])}, top {int(lg.argmax())}")
    axes[-1, 1].set_xlabel("class (true class in red)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def class_map(S, edges: int = 12, ax=None, title: str = ""):
    """The classes placed in 2-D so that similar classes sit close, strongest pairs joined.

    Input S: (C, C) class similarity. With A = (S + S^T) / 2 the distance of two classes is
    d = log(max A / A) + 1 (1 for the most similar pair, growing by 1 per factor e less
    similarity); the layout is a Sammon map (stress weighted by 1/d, so near neighbours are
    placed most faithfully), started from classical MDS, deterministic. The `edges` most
    similar pairs are drawn as lines, thicker for more similar. Returns the Figure.
    """
    S = np.asarray(S, dtype=np.float64)
    C = S.shape[0]
    A = (S + S.T) / 2
    off = ~np.eye(C, dtype=bool)
    A = np.clip(A, 1e-300, None)
    D = np.where(off, np.log(A[off].max() / A) + 1.0, 0.0)
    # classical MDS as the start
    J = np.eye(C) - 1.0 / C
    vals, vecs = np.linalg.eigh(-0.5 * J @ (D ** 2) @ J)
    order = np.argsort(vals)[::-1][:2]
    xy = vecs[:, order] * np.sqrt(np.clip(vals[order], 1e-12, None))
    # Sammon stress by SMACOF (Guttman transform) with weights 1/d
    W = np.where(off, 1.0 / np.where(off, D, 1.0), 0.0)
    V = -W
    np.fill_diagonal(V, W.sum(1))
    V_pinv = np.linalg.pinv(V)
    for _ in range(300):
        dist = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1))
        B = np.where(off, -W * D / np.where(off & (dist > 1e-12), dist, np.inf), 0.0)
        np.fill_diagonal(B, -B.sum(1))
        xy = V_pinv @ B @ xy
    fig, ax = _axes(ax, (4.8, 4.4))
    iu = np.triu_indices(C, 1)
    strongest = np.argsort(-A[iu])[:edges]
    w = np.log(A[iu][strongest])
    w = 0.5 + 4.5 * (w - w.min()) / max(w.max() - w.min(), 1e-12)
    for k, lw in zip(strongest, w):
        a, b = iu[0][k], iu[1][k]
        ax.plot(*xy[[a, b]].T, color="tab:blue", lw=lw, alpha=0.6, zorder=1)
    ax.scatter(*xy.T, s=420, color="white", edgecolor="k", zorder=2)
    for c in range(C):
        ax.text(*xy[c], str(c), ha="center", va="center", fontsize=12, zorder=3)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(title or f"classes by similarity (Sammon map), {edges} strongest pairs joined")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- Lab 03: response-based KD


def seed_bars(panels: dict, ylabel: str = "test errors", title: str = "", colors=None):
    """One panel per regime, bars of mean ± sample std over seeds, runs as dots -> Figure.

    panels: {panel title: {run label: [test errors, one per seed]}}; colors: one per bar of a
    panel (default: grey, blue, repeating).
    """
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
    fig, ax = _axes(ax, (5, 3.4))
    per_label = {label: [np.atleast_1d(np.asarray(e, dtype=float)) for e in errs]
                 for label, errs in runs.items()}
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
    errors = np.asarray(errors, dtype=float)
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


# ---------------------------------------------------------------- Lab 04: hint learning (FitNets)


def hint_maps(images, maps: dict, channel=None, title: str = ""):
    """One row per digit: the digit, then each feature map of `maps` side by side -> Figure.

    Inputs: images (n, 1, 28, 28) normalised; maps {column label: (n, C, h, w)}, e.g. the
    teacher's hint and the regressed student map before and after hint training;
    channel: None shows the mean over channels, an int shows that channel. Each row shares
    one colour scale, set by the first map (the teacher's), so the maps compare directly.
    """
    labels = list(maps)
    n = len(images)
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
    fig, ax = _axes(ax, (5.6, 3.4))
    if stage1_epochs:
        ax.axvspan(0, stage1_epochs, color="#eeeeee", zorder=0)
        ax.text(stage1_epochs / 2, 0.97, "stage 1\n(hints)", transform=ax.get_xaxis_transform(),
                ha="center", va="top", fontsize=7, color="#555555")
    for label, (xs, ys) in curves.items():
        ax.plot(xs, ys, marker="o", ms=3, label=label)
    ax.set_yscale("log")
    ys = [y for _, (_, yv) in curves.items() for y in yv if y > 0]
    if ys:  # readable numbers on the log axis (matplotlib alone may show a single 10^3)
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter
        ticks = _log_ticks(min(ys) / 1.05, max(ys) * 1.05)
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 10 else f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(min(ys) / 1.15, max(ys) * 1.15)
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


# ---------------------------------------------------------------- Lab 05: compression meets KD


def _readable_log_y(ax, values) -> None:
    """Ticks with plain numbers on a log y axis spanning `values`."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    vals = [float(v) for v in values if v > 0]
    if not vals:
        return
    ax.yaxis.set_major_locator(FixedLocator(_log_ticks(min(vals) / 1.1, max(vals) * 1.1)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 10 else f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(min(vals) / 1.25, max(vals) * 1.25)


def sparsity_curves(sparsities, curves: dict, reference: dict | None = None, ax=None,
                    title: str = ""):
    """Test errors against sparsity, on an axis of the fraction of weights kept (log) -> Figure.

    sparsities: (S,) in [0, 1); curves: {label: S lists of test errors, one per seed}: a
    point is the mean, its bar the sample std, every run a small dot, and a point of a single
    run is drawn hollow; reference: {label: errors} drawn as horizontal lines (e.g. the
    teacher, the dense model). The x axis is 1 - sparsity on a log scale, reversed, so that
    90%, 95% and 98% sparsity (10%, 5%, 2% of the weights kept) are spread out; ticks name the
    sparsity. Log scale on y.
    """
    fig, ax = _axes(ax, (6.4, 3.8))
    kept = 1.0 - np.asarray(sparsities, dtype=float)
    if (kept <= 0).any():
        raise ValueError("sparsity 1 (nothing kept) cannot be drawn on a log axis of weights kept")
    all_y = []
    for label, errs in curves.items():
        stats = [_mean_std(e) for e in errs]
        means = np.array([m for m, _ in stats])
        stds = np.array([s for _, s in stats])
        line = ax.errorbar(kept, means, yerr=stds, marker="o", capsize=3, label=label)
        color = line[0].get_color()
        for x, e in zip(kept, errs):
            e = np.atleast_1d(np.asarray(e, dtype=float))
            if len(e) > 1:
                ax.scatter([x] * len(e), e, s=8, color=color, alpha=0.5, zorder=3)
            else:
                ax.scatter([x], e, s=40, facecolor="white", edgecolor=color, zorder=4)
            all_y += list(e)
    for k, (label, value) in enumerate((reference or {}).items()):
        ax.axhline(value, color="k", lw=1, ls=["--", ":", "-."][k % 3], label=label)
        all_y.append(value)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xticks(list(kept), [f"{s:.0%}" for s in sparsities])
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.set_xlabel("global sparsity (share of weights removed; axis: log of the share kept)")
    ax.set_yscale("log")
    _readable_log_y(ax, all_y)
    ax.set_ylabel("test errors (log scale)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def pareto_front(xs, ys) -> list[int]:
    """The Pareto front of points where lower is better on both axes (e.g. cost and errors).

    Inputs: xs, ys: (N,) numbers. Returns: the indices of the points that no other point
    beats on both x and y (ties on x keep the lowest y), in order of increasing x.
    """
    order = sorted(range(len(xs)), key=lambda i: (xs[i], ys[i]))
    out, best = [], float("inf")
    for i in order:
        if ys[i] < best:
            out.append(i)
            best = ys[i]
    return out


def pareto_fronts(cost: dict, errors: dict, xlabel: str = "MACs per image (log scale)",
                  ax=None, title: str = ""):
    """Errors against cost of each candidate, one colour per training method, fronts drawn -> Figure.

    cost: {candidate name: cost (e.g. MACs)}; errors: {method: {candidate name: [test errors,
    one per seed]}}. A point is the mean over seeds with its sample std as a bar (a single-seed
    point is hollow); each method's Pareto front (no other candidate of that method is both
    cheaper and better, by the mean) is joined by a line. Log scale on x.
    """
    fig, ax = _axes(ax, (6.6, 4.0))
    markers = ["o", "s", "^", "D"]
    for k, (method, per_cand) in enumerate(errors.items()):
        names = [n for n in cost if n in per_cand]
        xs = [cost[n] for n in names]
        stats = [_mean_std(per_cand[n]) for n in names]
        ys = [m for m, _ in stats]
        color = f"C{k}"
        for n, x, (m, s) in zip(names, xs, stats):
            single = len(np.atleast_1d(per_cand[n])) == 1
            ax.errorbar([x], [m], yerr=[s] if not single else None, fmt=markers[k % 4], ms=7,
                        capsize=3, color=color, mfc="white" if single else color)
        f = pareto_front(xs, ys)
        ax.plot([xs[i] for i in f], [ys[i] for i in f], "-", color=color, lw=1.5,
                label=f"{method} (front: {len(f)} of {len(xs)})")
        if k == 0:
            for n, x, y in zip(names, xs, ys):
                ax.annotate(n, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=7,
                            color="0.3")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test errors")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def size_tradeoff(points: dict, ax=None, title: str = ""):
    """Test errors of each stored form of a model, one row per form, rows in order of size -> Figure.

    points: {form: (bytes, {variant: [test errors, one per seed]})}, e.g. the form "90% sparse
    + 4-bit" with the variants "no fine-tuning", "labels", "KD". Each row is labelled with the
    form's true stored size; within a row the variants sit on their own line (the rows are
    categories, so nothing is moved along a measured axis). A point is the mean over seeds,
    its bar the sample std; a single-seed point is hollow and says so in the legend. Test
    errors on a log scale.
    """
    order = sorted(points, key=lambda k: points[k][0])
    variants = list(dict.fromkeys(v for k in order for v in points[k][1]))
    fig, ax = _axes(ax, (7.2, 1.4 + 0.2 * len(variants) * len(order) ** 0.5 + 0.55 * len(order)))
    step = 0.8 / max(1, len(variants))
    seen, all_x, yticks = set(), [], []
    for row, form in enumerate(order):
        nbytes, vs = points[form]
        present = [v for v in variants if v in vs]
        for j, v in enumerate(present):
            y = row + (j - (len(present) - 1) / 2) * step
            errs = np.atleast_1d(np.asarray(vs[v], dtype=float))
            m, sd = _mean_std(errs)
            single = len(errs) == 1
            k = variants.index(v)
            label = None
            if (v, single) not in seen:
                label = v + (" (1 seed)" if single else "")
                seen.add((v, single))
            ax.errorbar([m], [y], xerr=None if single else [sd], fmt="osD^vp*"[k % 7], ms=6,
                        capsize=2, color=f"C{k}", mfc="white" if single else f"C{k}", label=label)
            if len(errs) > 1:
                ax.scatter(errs, [y] * len(errs), s=6, color=f"C{k}", alpha=0.5, zorder=3)
            all_x += list(errs)
        yticks.append(f"{form}\n{nbytes / 1024:,.0f} KB")
    ax.set_yticks(range(len(order)), yticks, fontsize=8)
    ax.set_ylim(len(order) - 0.5, -0.5)  # the smallest form on top
    for row in range(len(order) - 1):
        ax.axhline(row + 0.5, color="0.85", lw=0.8)
    ax.set_xscale("log")
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter
    ax.xaxis.set_major_locator(FixedLocator(_log_ticks(min(all_x) / 1.1, max(all_x) * 1.1)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(min(all_x) / 1.25, max(all_x) * 1.25)
    ax.set_xlabel("test errors (log scale)")
    ax.grid(alpha=0.3, axis="x", which="both")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.3 / len(order)),
              ncol=min(4, len(variants)), frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def step_curves(steps, panels: dict, ylabel: str = "test errors", title: str = ""):
    """Test errors measured along training, one panel per setting, mean ± std band -> Figure.

    steps: (K,) the step counts at which the errors were measured; panels: {panel title:
    {label: runs}}, runs a list of (K,) error curves, one per seed. A line is the mean over
    seeds, its band the sample std (no band for a single run); every panel shares the y axis.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.4), squeeze=False,
                             sharey=True)
    steps = np.asarray(steps, dtype=float)
    for ax, (name, curves) in zip(axes[0], panels.items()):
        for k, (label, runs) in enumerate(curves.items()):
            r = np.atleast_2d(np.asarray(runs, dtype=float))
            mean = r.mean(0)
            ax.plot(steps, mean, marker="o", ms=3, color=f"C{k}", label=label)
            if len(r) > 1:
                sd = r.std(0, ddof=1)
                ax.fill_between(steps, mean - sd, mean + sd, color=f"C{k}", alpha=0.2, lw=0)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("recovery steps")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    axes[0][-1].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- Lab 06: what the teacher teaches


def teacher_training_curve(points, marks: dict, steps_total: int | None = None, ax=None,
                           title: str = ""):
    """A teacher's test errors during its training (log y), with the teachers used marked -> Figure.

    Inputs: points [(step, test errors), ...] of the run; marks {label: (step, errors)} drawn
    as labelled dots, or (None, errors) as a labelled horizontal line (a teacher of another
    kind); steps_total: the length of the full run (x axis limit).
    """
    fig, ax = _axes(ax, (6.4, 3.4))
    xs, ys = zip(*points)
    ax.plot(xs, ys, color="#3182bd", lw=1.2, marker=".", ms=3, label="the teacher's recipe")
    for label, (step, errors) in marks.items():
        if step is None:
            ax.axhline(errors, color="#e6550d", ls="--", lw=1)
            ax.text(0.99, errors, f" {label}: {errors}", color="#e6550d", fontsize=8,
                    transform=ax.get_yaxis_transform(), ha="right", va="bottom")
        else:
            ax.plot([step], [errors], "o", color="k", ms=5, zorder=3)
            ax.annotate(f"{label}: {errors}", (step, errors), textcoords="offset points",
                        xytext=(4, 5), fontsize=8)
    ax.set_yscale("log")
    _readable_log_y(ax, [y for y in ys if y > 0] + [e for _, e in marks.values() if e > 0])
    ax.set_xlim(0, (steps_total or max(xs)) * 1.08)
    ax.set_xlabel("optimizer steps of the teacher's training")
    ax.set_ylabel("test errors (log scale)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper center")
    ax.set_title(title or "the teachers of experiment 2 (test errors of 10,000)", fontsize=10)
    fig.tight_layout()
    return fig


def errors_vs_teacher(teacher_errors: dict, runs: dict, baselines: dict | None = None,
                      ylabel: str = "student's test errors", title: str = ""):
    """Students' test errors against their teacher's, one panel per student -> Figure.

    Inputs: teacher_errors {teacher: test errors}; runs {student: {teacher: [errors, one
    per seed]}}; baselines {student: [errors of the label-trained student, one per seed]},
    drawn as a dashed line with its ±std band. Points are mean ± sample std; log x axis.
    """
    names = list(teacher_errors)
    fig, axes = plt.subplots(1, len(runs), figsize=(5.4 * len(runs), 3.6), squeeze=False)
    for ax, (student, by_teacher) in zip(axes[0], runs.items()):
        x = np.array([teacher_errors[n] for n in names], dtype=float)
        vals = [np.asarray(by_teacher[n], dtype=float) for n in names]
        m, sd = map(np.array, zip(*map(_mean_std, vals)))
        ax.errorbar(x, m, yerr=sd, fmt="o", color="#3182bd", capsize=4, zorder=3)
        for xi, v in zip(x, vals):
            ax.scatter([xi] * len(v), v, s=8, color="#3182bd", alpha=0.5, zorder=2)
        for xi, mi, n in zip(x, m, names):
            ax.annotate(n, (xi, mi), textcoords="offset points", xytext=(5, 4), fontsize=8)
        if baselines and student in baselines:
            bm, bs = _mean_std(baselines[student])
            ax.axhline(bm, color="#636363", ls="--", lw=1, label=f"labels only: {bm:.0f}")
            ax.axhspan(bm - bs, bm + bs, color="#bdbdbd", alpha=0.3)
            ax.legend(fontsize=8)
        ax.set_xscale("log")
        ax.set_xticks(sorted(set(x)))
        ax.set_xticklabels([f"{v:,.0f}" for v in sorted(set(x))], fontsize=8)
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_xlabel("teacher's test errors (log scale)")
        ax.set_ylabel(ylabel)
        ax.set_title(student, fontsize=10)
        ax.grid(alpha=0.3)
    fig.suptitle(title or "does a better teacher teach better?", fontsize=11)
    fig.tight_layout()
    return fig
