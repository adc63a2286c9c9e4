"""Lab 02's figures: dark knowledge (error gallery, class similarity, soft targets of digits)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from . import probabilities
from ._shared import _axes, _dict, _numbers, _pixels, _real


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


def similarity_heatmap(S, ax=None, title: str = "", annotate: bool = True, vmin=None, vmax=None):
    """Heatmap of a class-similarity matrix on a log colour scale, diagonal masked -> Figure.

    Input S: (C, C), row c = mean soft target of the digits of true class c. vmin, vmax: the
    ends of the colour scale (default: the smallest and largest off-diagonal values); give two
    heatmaps the same ends to compare them by colour.
    """
    from matplotlib.colors import LogNorm

    S = _numbers("S", S, "a (C, C) class-similarity matrix", ndim=(2,))
    if S.shape[0] != S.shape[1]:
        raise ValueError(f"S must be a (C, C) class-similarity matrix (square), got shape {S.shape}")
    C = S.shape[0]
    _real("vmin", vmin, "the low end of the colour scale", none=True)
    _real("vmax", vmax, "the high end of the colour scale", none=True)
    off = np.ma.masked_array(S, mask=np.eye(C, dtype=bool) | (S <= 0))
    fig, ax = _axes(ax, (5.6, 4.6))
    cmap = plt.get_cmap("viridis").copy()
    cmap.set_bad("#dddddd")
    vmin = float(off.min()) if vmin is None else float(vmin)
    vmax = float(off.max()) if vmax is None else float(vmax)
    im = ax.imshow(off, cmap=cmap, norm=LogNorm(vmin=vmin, vmax=vmax))
    fig.colorbar(im, ax=ax, label="mean probability (log scale)")
    if annotate:
        lo, hi = np.log(vmin), np.log(vmax)
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
    K = len(_numbers("Ts", Ts, "(K,) temperatures"))
    for label, ys in _dict("curves", curves, "{label: (K,) values}", "{'all digits': masses}").items():
        _numbers(f"curves[{label!r}]", ys, f"(K,) = ({K},) values, one per temperature", cols=K)
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
    z = probabilities.as_numpy(logits)
    C = len(z)
    width = 0.8 / len(Ts)
    lows = []
    for k, T in enumerate(Ts):
        p = probabilities.soft_probabilities(z, T)  # float64: tiny probabilities such as 1e-12 stay visible
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
