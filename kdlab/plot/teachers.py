"""Lab 06's figures: what the teacher teaches (teacher training curve, errors vs teacher)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ._shared import _axes, _dict, _mean_std, _numbers, _readable_log_axis, _real


def teacher_training_curve(points, marks: dict, steps_total: int | None = None, ax=None,
                           title: str = ""):
    """A teacher's test errors during its training (log y), with the teachers used marked -> Figure.

    Inputs: points [(step, test errors), ...] of the run; marks {label: (step, errors)} drawn
    as labelled dots, or (None, errors) as a labelled horizontal line (a teacher of another
    kind); steps_total: the length of the full run (x axis limit).
    """
    _numbers("points", points, "[(step, test errors), ...]: N pairs", ndim=(2,), cols=2)
    for label, mark in _dict("marks", marks, "{label: (step or None, test errors)}",
                             "{'the shipped teacher': (1876, 61)}", empty=True).items():
        if not (isinstance(mark, (tuple, list)) and len(mark) == 2):
            raise TypeError(f"marks[{label!r}] must be a pair (step or None, test errors), "
                            f"got {mark!r}")
        _real(f"marks[{label!r}]'s step", mark[0], "a step", none=True)
        _real(f"marks[{label!r}]'s test errors", mark[1], "a number of test errors")
    _real("steps_total", steps_total, "the full run's number of steps", none=True)
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
    _readable_log_axis(ax, [y for y in ys if y > 0] + [e for _, e in marks.values() if e > 0])
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
    names = list(_dict("teacher_errors", teacher_errors, "{teacher: test errors}",
                       "{'resnet': 61, 'tinycnn': 95}"))
    for n in names:
        _real(f"teacher_errors[{n!r}]", teacher_errors[n], "a number of test errors")
    for student, by_teacher in _dict("runs", runs, "{student: {teacher: [errors, one per seed]}}",
                                     "{'HintonMLP': {'resnet': [120, 131]}}").items():
        _dict(f"runs[{student!r}]", by_teacher, "{teacher: [errors, one per seed]}",
              "{'resnet': [120, 131]}")
        for n in names:
            if n not in by_teacher:
                raise ValueError(f"runs[{student!r}] has no errors for the teacher {n!r} of "
                                 f"teacher_errors: give every student a run of every teacher")
            _numbers(f"runs[{student!r}][{n!r}]", by_teacher[n], "a list of errors, one per seed")
    for student, errs in _dict("baselines", baselines or {}, "{student: [errors, one per seed]}",
                               "{'HintonMLP': [150, 162]}", empty=True).items():
        _numbers(f"baselines[{student!r}]", errs, "errors, one per seed", ndim=(0, 1))
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
