"""Drawing helpers more than one lab's figures use (private to kd.plot): axes, mean ± std, log axes, digit pixels."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def _axes(ax, figsize):
    """(figure, axes) to draw on: those of `ax` when one is given, else a new figure of `figsize`."""
    return (ax.figure, ax) if ax is not None else plt.subplots(figsize=figsize)


def _mean_std(v) -> tuple[float, float]:
    """Mean and sample std (ddof=1; 0 for a single run) of a list of runs."""
    v = np.atleast_1d(np.asarray(v, dtype=float))
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


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
