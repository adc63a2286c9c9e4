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
