"""kdlab.plot, Lab 05's figures: Pareto front, sparsity axis, stored-size rows, step curves."""
import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import kdlab as kd  # noqa: E402


def test_pareto_front_keeps_only_undominated_points_in_order_of_cost():
    xs = [5, 1, 3, 2, 4, 1]
    ys = [1, 9, 4, 6, 5, 8]
    # (1, 8) beats (1, 9); (4, 5) is beaten by (3, 4)
    assert kd.plot.pareto_front(xs, ys) == [5, 3, 2, 0]


def test_sparsity_axis_is_the_share_kept_and_names_the_sparsity():
    fig = kd.plot.sparsity_curves([0.0, 0.9, 0.95, 0.98], {"a": [[10, 12], [20, 22], [40], [90, 95]]},
                                  reference={"dense": 11})
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.xaxis_inverted()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0%", "90%", "95%", "98%"]
    assert np.allclose(ax.get_xticks(), [1.0, 0.1, 0.05, 0.02])
    with pytest.raises(ValueError, match="log axis"):
        kd.plot.sparsity_curves([1.0], {"a": [[1]]})


def test_size_tradeoff_keeps_every_point_at_its_measured_errors():
    pts = {"small": (1000, {"labels": [300, 310], "KD": [300, 310]}),   # coinciding means
           "big": (9000, {"labels": [200]})}
    fig = kd.plot.size_tradeoff(pts)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["small\n1 KB", "big\n9 KB"]
    xs = sorted(float(ln.get_xdata()[0]) for ln in ax.lines if ln.get_marker() in list("osD^vp*"))
    assert xs == [200.0, 305.0, 305.0]  # no point moved along the measured axis
    assert any("(1 seed)" in t.get_text() for t in ax.get_legend().get_texts())


def test_step_curves_and_pareto_fronts_draw():
    fig = kd.plot.step_curves([1, 2, 3], {"p": {"a": [[3, 2, 1], [4, 3, 2]], "b": [[5, 4, 3]]}})
    assert len(fig.axes) == 1
    fig = kd.plot.pareto_fronts({"x": 10, "y": 100}, {"labels": {"x": [5, 6], "y": [3]},
                                                      "KD": {"x": [4, 4], "y": [2, 3]}})
    assert "front: 2 of 2" in fig.axes[0].get_legend().get_texts()[0].get_text()


def _nas_like():
    # the saved run's NAS grid: two candidates 2% apart in cost, two others at nearly equal errors
    macs = {"2-4 ch, depth 1": 30184, "2-4 ch, depth 2": 86632, "4-8 ch, depth 1": 88592,
            "8-16 ch, depth 1": 290080, "4-8 ch, depth 2": 314384, "8-16 ch, depth 2": 1193248}
    lab = [998, 948, 689, 547, 545, 464]
    kd_ = [1152, 884, 768, 507, 524, 406]
    return macs, {"labels": {n: [m - 20, m + 20] for n, m in zip(macs, lab)},
                  "KD": {n: [m - 20, m + 20] for n, m in zip(macs, kd_)}}


def test_pareto_fronts_names_every_candidate_without_overlap():
    macs, errs = _nas_like()
    fig = kd.plot.pareto_fronts(macs, errs, ylabel="test errors (of 10,000)")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "test errors (of 10,000)"
    r = fig.canvas.get_renderer()
    names = [t for t in ax.texts if t.get_text() in macs]
    assert sorted(t.get_text() for t in names) == sorted(macs)   # each candidate named once
    boxes = [t.get_window_extent(r) for t in names]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b)
    frame = ax.get_window_extent(r)
    assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 for b in boxes)


def test_size_tradeoff_legend_sits_right_under_the_axis_label():
    pts = {f"form {k}": (1000 * (k + 1), {"no fine-tuning": [300, 310], "labels": [250, 260],
                                          "KD": [240, 250], "teacher": [40]}) for k in range(6)}
    fig = kd.plot.size_tradeoff(pts)
    ax = fig.axes[0]
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    leg, xlabel = ax.get_legend().get_window_extent(r), ax.xaxis.label.get_window_extent(r)
    gap = xlabel.y0 - leg.y1          # pixels between the x label and the legend below it
    assert 0 <= gap < 0.05 * fig.bbox.height
    assert fig.bbox.x0 <= leg.x0 and leg.x1 <= fig.bbox.x1       # nothing cut off at the sides


def test_sparsity_curves_label_fits_any_rule():
    fig = kd.plot.sparsity_curves([0.0, 0.9], {"a": [[10, 12], [20, 22]]}, ylabel="errors (of 1,000)")
    ax = fig.axes[0]
    assert "global" not in ax.get_xlabel() and "sparsity" in ax.get_xlabel()
    assert ax.get_ylabel() == "errors (of 1,000)"


def test_similarity_heatmaps_share_one_colour_scale():
    S1 = np.full((3, 3), 0.01) + np.diag([0.9] * 3)
    S1[0, 1] = 0.2
    S2 = np.full((3, 3), 0.05) + np.diag([0.9] * 3)
    S2[1, 2] = 0.08
    for S in (S1, S2):
        fig = kd.plot.similarity_heatmap(S, annotate=False, vmin=0.01, vmax=0.2)
        norm = fig.axes[0].images[0].norm
        assert (norm.vmin, norm.vmax) == (0.01, 0.2)
    # without vmin / vmax: each map's own range
    norm = kd.plot.similarity_heatmap(S2, annotate=False).axes[0].images[0].norm
    assert norm.vmin == pytest.approx(0.05) and norm.vmax == pytest.approx(0.08)
