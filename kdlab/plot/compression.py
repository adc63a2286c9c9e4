"""Lab 05's figures: KD meets compression (sparsity curves, Pareto fronts, size trade-off, recovery steps)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ._shared import _axes, _dict, _mean_std, _numbers, _per_point, _readable_log_axis, _real


def sparsity_curves(sparsities, curves: dict, reference: dict | None = None, ax=None,
                    title: str = "", ylabel: str = "test errors (log scale)"):
    """Test errors against sparsity, on an axis of the fraction of weights kept (log) -> Figure.

    sparsities: (S,) in [0, 1); curves: {label: S lists of test errors, one per seed}: a
    point is the mean, its bar the sample std, every run a small dot, and a point of a single
    run is drawn hollow; reference: {label: errors} drawn as horizontal lines (e.g. the
    teacher, the dense model). The x axis is 1 - sparsity on a log scale, reversed, so that
    90%, 95% and 98% sparsity (10%, 5%, 2% of the weights kept) are spread out; ticks name the
    sparsity (of whichever rule each curve used). Log scale on y, labelled `ylabel`.
    """
    S = len(_numbers("sparsities", sparsities, "(S,) sparsities in [0, 1)"))
    for label, errs in _dict("curves", curves, "{label: S lists of test errors, one per seed}",
                             "{'KD': [[310, 295], [402, 388]]}").items():
        _per_point(f"curves[{label!r}]", errs, S, "sparsities")
    for label, value in _dict("reference", reference or {}, "{label: test errors}",
                              "{'teacher': 61}", empty=True).items():
        _real(f"reference[{label!r}]", value, "a number of test errors")
    kept = 1.0 - np.asarray(sparsities, dtype=float)
    if (kept <= 0).any():
        raise ValueError("sparsity 1 (nothing kept) cannot be drawn on a log axis of weights kept")
    fig, ax = _axes(ax, (6.4, 3.8))
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
    ax.set_xlabel("sparsity (share of the weights removed; axis: log of the share kept)")
    ax.set_yscale("log")
    _readable_log_axis(ax, all_y)
    ax.set_ylabel(ylabel)
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


def _label_points(ax, points: dict, avoid, fontsize: int = 7):
    """Write each label beside its point where it overlaps no other label, point or the frame.

    points: {label: (x, y)} in data coordinates; avoid: [(x, y), ...] other markers to keep
    clear of. Tries offsets right, left, above and below each point, in that order, and keeps
    the first free one (the first offset when none is free). Call after the final layout.
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    marks = [ax.transData.transform(p) for p in list(points.values()) + list(avoid)]
    offsets = [((6, 3), "left", "bottom"), ((6, -3), "left", "top"), ((-6, 3), "right", "bottom"),
               ((-6, -3), "right", "top"), ((0, 8), "center", "bottom"), ((0, -8), "center", "top"),
               ((6, 12), "left", "bottom"), ((6, -12), "left", "top")]
    taken = []
    for label, xy in sorted(points.items(), key=lambda kv: kv[1]):
        for k, (off, ha, va) in enumerate(offsets):
            t = ax.annotate(label, xy, textcoords="offset points", xytext=off, ha=ha, va=va,
                            fontsize=fontsize, color="0.25")
            box = t.get_window_extent(renderer).expanded(1.04, 1.15)
            free = (frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1)
                    and not any(box.overlaps(b) for b in taken)
                    and not any(box.x0 - 4 < mx < box.x1 + 4 and box.y0 - 4 < my < box.y1 + 4
                                for mx, my in marks))
            if free or k == len(offsets) - 1:
                if not free:  # nowhere free: fall back to the first place
                    t.remove()
                    t = ax.annotate(label, xy, textcoords="offset points", xytext=offsets[0][0],
                                    ha="left", va="bottom", fontsize=fontsize, color="0.25")
                    box = t.get_window_extent(renderer)
                taken.append(box)
                break
            t.remove()


def pareto_fronts(cost: dict, errors: dict, xlabel: str = "MACs per image (log scale)",
                  ax=None, title: str = "", ylabel: str = "test errors"):
    """Errors against cost of each candidate, one colour per training method, fronts drawn -> Figure.

    cost: {candidate name: cost (e.g. MACs)}; errors: {method: {candidate name: [test errors,
    one per seed]}}. A point is the mean over seeds with its sample std as a bar (a single-seed
    point is hollow); each method's Pareto front (no other candidate of that method is both
    cheaper and better, by the mean) is joined by a line. Log scale on x. Each candidate is
    named once, beside its point of the first method, where the name overlaps no other name
    and no point.
    """
    for name, c in _dict("cost", cost, "{candidate name: cost}", "{'w8': 61_000}").items():
        if not (_real(f"cost[{name!r}]", c, "a cost > 0 (a log axis)") > 0):
            raise ValueError(f"cost[{name!r}] must be > 0 (the x axis is logarithmic), got {c}")
    for method, per_cand in _dict("errors", errors, "{method: {candidate name: [test errors, "
                                  "one per seed]}}", "{'KD': {'w8': [310, 295]}}").items():
        for name, e in _dict(f"errors[{method!r}]", per_cand, "{candidate name: [test errors]}",
                             "{'w8': [310, 295]}").items():
            _numbers(f"errors[{method!r}][{name!r}]", e, "test errors, one per seed", ndim=(0, 1))
    fig, ax = _axes(ax, (7.2, 4.4))
    markers = ["o", "s", "^", "D"]
    means = {}
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
        means[method] = dict(zip(names, zip(xs, ys)))
    ax.set_xscale("log")
    lo, hi = min(cost.values()), max(cost.values())
    ax.set_xlim(lo / 1.6, hi * 1.6)   # room for the names beside the first and last points
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    if means:
        first, *rest = means.values()
        _label_points(ax, first, [xy for other in rest for xy in other.values()])
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
    n_points = sum(len(points[k][1]) for k in order)
    fig, ax = _axes(ax, (7.2, 1.3 + 0.4 * len(order) + 0.12 * n_points))
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
    _readable_log_axis(ax, all_x, which="x")
    ax.set_xlabel("test errors (log scale)")
    ax.grid(alpha=0.3, axis="x", which="both")
    if title:
        ax.set_title(title, fontsize=10)
    # the legend sits in its own strip at the bottom of the figure, right under the x label
    leg = ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 0.005),
                    bbox_transform=fig.transFigure, ncol=min(3, len(variants)), frameon=False)
    leg.set_in_layout(False)
    fig.canvas.draw()
    strip = leg.get_window_extent().height / fig.bbox.height
    fig.tight_layout(rect=(0, strip + 0.01, 1, 1))
    return fig


def step_curves(steps, panels: dict, ylabel: str = "test errors", title: str = ""):
    """Test errors measured along training, one panel per setting, mean ± std band -> Figure.

    steps: (K,) the step counts at which the errors were measured; panels: {panel title:
    {label: runs}}, runs a list of (K,) error curves, one per seed. A line is the mean over
    seeds, its band the sample std (no band for a single run); every panel shares the y axis.
    """
    steps = _numbers("steps", steps, "(K,) step counts")
    form = f"runs: a list of (K,) = ({len(steps)},) error curves, one per seed"
    for name, curves in _dict("panels", panels, "{panel title: {label: runs}}",
                              "{'labels': {'KD': [[120, 80, 61]]}}").items():
        for label, runs in _dict(f"panels[{name!r}]", curves, "{label: runs}",
                                 "{'KD': [[120, 80, 61]]}").items():
            _numbers(f"panels[{name!r}][{label!r}]", runs, form, ndim=(1, 2), cols=len(steps))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.4), squeeze=False,
                             sharey=True)
    for ax, (name, curves) in zip(axes[0], panels.items()):
        for k, (label, runs) in enumerate(curves.items()):
            r = np.atleast_2d(_numbers("runs", runs, form, ndim=(1, 2)))
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
