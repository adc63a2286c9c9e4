"""Drawing helpers more than one lab's figures use (private to kd.plot): axes, mean ± std, log
axes, digit pixels, and the checks of a figure's inputs (dicts, numbers, arrays) that each
figure makes before it draws anything: a TypeError or ValueError naming the argument, what came
and what was expected."""
from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np

from .._args import kind
from .probabilities import as_numpy, is_real


def _dict(name: str, value, form: str, example: str, empty: bool = False) -> Mapping:
    """`value` if it is a dict (with an entry, unless `empty`); else TypeError or ValueError
    naming `name`, what came, the `form` expected and an `example` of it."""
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a dict {form}, got {kind(value)}; e.g. {name}={example}")
    if not value and not empty:
        raise ValueError(f"{name} is an empty dict: give at least one entry {form}, "
                         f"e.g. {name}={example}")
    return value


def _numbers(name: str, value, form: str, ndim=(1,), rows: int | None = None,
             cols: int | None = None, empty: bool = False) -> np.ndarray:
    """`value` (tensor, list or array of numbers) as float64 numpy, if it has one of the
    dimensions `ndim`, `rows` entries along its first axis and `cols` along its last (when
    given), and is not empty (unless `empty`); else TypeError or ValueError naming `name`,
    what came and the `form` expected (e.g. "(K,) temperatures")."""
    try:
        arr = as_numpy(value)
    except (TypeError, ValueError, RuntimeError) as e:
        raise TypeError(f"{name} must be {form}, got {kind(value)} (not numbers: {e})") from None
    one = arr.ndim == 1  # its rows and columns are its values
    wrong = [f"{arr.ndim}-D" if arr.ndim not in ndim else "",
             f"{len(arr)} {'values' if one else 'rows'}, not {rows}"
             if rows is not None and arr.ndim and len(arr) != rows else "",
             f"{arr.shape[-1]} {'values' if one else 'columns'}, not {cols}"
             if cols is not None and arr.ndim and arr.shape[-1] != cols else "",
             "empty" if arr.size == 0 and not empty else ""]
    if any(wrong):
        raise ValueError(f"{name} must be {form}, got shape {arr.shape} "
                         f"({', '.join(w for w in wrong if w)})")
    return arr


def _per_point(name: str, value, n: int, of: str) -> list:
    """`value` as a list of `n` float64 arrays, one per point of the x axis (`of` names it),
    each a number of test errors or a list of them, one per seed; else TypeError or ValueError
    naming `name`."""
    form = f"{n} entries, one per value of {of}, each test errors or a list of them (one per seed)"
    try:
        entries = list(value)
    except TypeError:
        raise TypeError(f"{name} must be {form}, got {kind(value)}") from None
    if len(entries) != n:
        raise ValueError(f"{name} must be {form}, got {len(entries)} entries")
    return [_numbers(f"{name}[{i}]", e, "test errors or a list of them, one per seed", ndim=(0, 1))
            for i, e in enumerate(entries)]


def _real(name: str, value, form: str = "a number", none: bool = False):
    """`value` if it is a real number (or None when `none`); else TypeError naming `name`."""
    if not (is_real(value) or (none and value is None)):
        raise TypeError(f"{name} must be {form}{' or None' if none else ''}, got {kind(value)}")
    return value


def _axes(ax, figsize):
    """(figure, axes) to draw on: those of `ax` when one is given, else a new figure of `figsize`."""
    if ax is not None and not isinstance(ax, plt.Axes):
        raise TypeError(f"ax must be a matplotlib Axes (e.g. from plt.subplots()) or None, "
                        f"got {kind(ax)}")
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
