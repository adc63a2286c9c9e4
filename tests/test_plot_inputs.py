"""Bad input to a figure, to the teacher's or the zoo's scripts gets a clear error before any
drawing, loading or training: the argument's name, what came and what is expected; the valid
call of each still draws (or runs)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kdlab as kd  # noqa: E402

P = torch.softmax(torch.tensor([[2.0, 1.0, 0.1], [1.0, 0.9, 0.8]]), -1)
HINT = torch.rand(2, 4, 7, 7)
CLASS_ACC = {"labels": [0.99, 0.97, 0.95], "KD": [0.99, 0.98, 0.97]}

# (figure, a valid call's (args, kwargs), a wrong call's (args, kwargs), error, message)
CASES = [
    ("step_curves", ([1, 2, 3], {"p": {"a": [[3, 2, 1], [4, 3, 2]]}}), {},
     (torch.randn(64, 10), torch.randn(64, 10)), {}, ValueError, r"steps must be \(K,\) step counts"),
    ("step_curves", ([1, 2, 3], {"p": {"a": [[3, 2, 1]]}}), {},
     ([1, 2, 3], torch.randn(64, 3)), {}, TypeError, r"panels must be a dict \{panel title"),
    ("step_curves", ([1, 2, 3], {"p": {"a": [[3, 2, 1]]}}), {},
     ([1, 2, 3], {"p": {"a": [[3, 2]]}}), {}, ValueError, r"panels\['p'\]\['a'\] must be runs.*2 columns, not 3"),
    ("sparsity_curves", ([0.0, 0.9], {"a": [[10, 12], [20, 22]]}), {},
     ([0.0, 0.9], {"a": [[10, 12]]}), {}, ValueError, r"curves\['a'\] must be 2 entries, one per value of sparsities"),
    ("sparsity_curves", ([0.0, 0.9], {"a": [[10, 12], [20]]}), {"reference": {"teacher": 5}},
     ([0.0, 0.9], {"a": [[10, 12], [20]]}), {"reference": {"teacher": "5"}}, TypeError,
     r"reference\['teacher'\] must be a number of test errors"),
    ("pareto_fronts", ({"x": 10, "y": 100}, {"KD": {"x": [5, 6], "y": [3]}}), {},
     ({"x": 10, "y": 0}, {"KD": {"x": [5, 6], "y": [3]}}), {}, ValueError, r"cost\['y'\] must be > 0"),
    ("pareto_fronts", ({"x": 10, "y": 100}, {"KD": {"x": [5, 6], "y": [3]}}), {},
     ({"x": 10}, torch.randn(3, 2)), {}, TypeError, r"errors must be a dict \{method"),
    ("seed_bars", ({"MLP": {"labels": [150, 162], "KD": [98, 91]}},), {},
     (torch.randn(64, 10),), {}, TypeError, r"panels must be a dict \{panel title: \{run label"),
    ("seed_bars", ({"MLP": {"labels": [150, 162], "KD": [98, 91]}},), {},
     ({"MLP": [150, 162]},), {}, TypeError, r"panels\['MLP'\] must be a dict \{run label"),
    ("errors_vs_transfer_size", ([100, 1000], {"KD": [[410, 398], [250]]}), {},
     ([100, 1000], {"KD": [410]}), {}, ValueError, r"runs\['KD'\] must be 2 entries, one per value of sizes"),
    ("sweep_heatmap", ([[1, 2, 3], [4, 5, 6]], [1, 4], [0.5, 0.9, 1.0]), {"baseline": 7},
     ([[1, 2], [4, 5]], [1, 4], [0.5, 0.9, 1.0]), {}, ValueError,
     r"errors must be \(len\(Ts\), len\(alphas\)\) = \(2, 3\) test errors.*2 columns, not 3"),
    ("class_accuracy_bars", (CLASS_ACC,), {"highlight": 1},
     (CLASS_ACC,), {"highlight": 3}, ValueError, r"highlight must be a class in 0\.\.2 or None"),
    ("class_accuracy_bars", (CLASS_ACC,), {},
     ({"labels": [0.9, 0.8], "KD": [0.9, 0.8, 0.7]},), {}, ValueError,
     r"acc\['KD'\] must be \(C,\) accuracy per class, the same C for every label"),
    ("hint_maps", (torch.randn(2, 1, 28, 28), {"teacher": HINT}), {"channel": 3},
     (torch.randn(64, 3), {"teacher": HINT}), {}, TypeError, r"images must be a tensor of n digits \(n, 1, 28, 28\)"),
    ("hint_maps", (torch.randn(2, 1, 28, 28), {"teacher": HINT}), {},
     (torch.randn(2, 1, 28, 28), torch.randn(2, 4)), {}, TypeError, r"maps must be a dict \{column label"),
    ("hint_maps", (torch.randn(2, 1, 28, 28), {"teacher": HINT}), {},
     (torch.randn(2, 1, 28, 28), {"teacher": HINT}), {"channel": 4}, ValueError,
     r"channel must be None \(the mean over channels\) or a channel of maps\['teacher'\], in 0\.\.3"),
    ("staged_error_curves", ({"KD": ([1, 2, 3], [210, 160, 140])},), {"stage1_epochs": 1, "total_epochs": 3},
     ({"KD": ([1, 2, 3], [210, 160])},), {}, ValueError, r"curves\['KD'\]'s errors must be \(K,\) = \(3,\) test errors"),
    ("staged_error_curves", ({"KD": ([1, 2, 3], [210, 160, 140])},), {},
     ({"KD": torch.randn(3)},), {}, TypeError, r"curves\['KD'\] must be a pair \(epochs \(K,\), errors \(K,\)\)"),
    ("teacher_training_curve", ([(0, 9000), (100, 400), (200, 90)], {"final": (200, 90), "small": (None, 120)}), {},
     (torch.randn(64, 3), {}), {}, ValueError, r"points must be \[\(step, test errors\), \.\.\.\]: N pairs"),
    ("teacher_training_curve", ([(0, 9000), (100, 400)], {"final": (100, 400)}), {"steps_total": 200},
     ([(0, 9000), (100, 400)], {"final": 400}), {}, TypeError, r"marks\['final'\] must be a pair \(step or None, test errors\)"),
    ("errors_vs_teacher", ({"a": 60, "b": 90}, {"MLP": {"a": [120, 131], "b": [140]}}), {"baselines": {"MLP": [150, 162]}},
     ({"a": 60, "b": 90}, {"MLP": {"a": [120, 131]}}), {}, ValueError,
     r"runs\['MLP'\] has no errors for the teacher 'b' of teacher_errors"),
    ("errors_vs_teacher", ({"a": 60}, {"MLP": {"a": [120, 131]}}), {},
     (torch.randn(64, 10), torch.randn(64, 10)), {}, TypeError, r"teacher_errors must be a dict \{teacher: test errors\}"),
    ("learning_curves", ({"KD": {"val_errors": [300, 200, 150]}},), {},
     ({"KD": {"loss": [1.0, 0.5]}},), {}, TypeError,
     r"histories\['KD'\] must be a history of kd.train.fit \(a dict with the key 'val_errors'\): its keys are \['loss'\]"),
    ("learning_curves", ({"KD": {"loss": [1.0, 0.5]}},), {"key": "loss"},
     (torch.randn(64, 10),), {}, TypeError, r"histories must be a dict \{label: history from kd.train.fit\}"),
    ("mean_std_bars", ({"KD": [98, 91, 95], "labels": [150]},), {},
     ({"KD": 98},), {}, ValueError, r"results\['KD'\] must be a list of values, one per run, got shape \(\) \(0-D\)"),
    ("similarity_heatmap", (torch.rand(3, 3),), {"vmin": 0.01},
     (torch.rand(6, 5),), {}, ValueError, r"S must be a \(C, C\) class-similarity matrix \(square\), got shape \(6, 5\)"),
    ("similarity_heatmap", (torch.rand(3, 3),), {},
     (torch.rand(3, 3),), {"ax": 0.5}, TypeError, r"ax must be a matplotlib Axes"),
    ("dark_knowledge_vs_T", ([1, 2, 4], {"all": [0.01, 0.1, 0.3]}), {},
     ([1, 2, 4], 0.5), {}, TypeError, r"curves must be a dict \{label: \(K,\) values\}"),
    ("dark_knowledge_vs_T", ([1, 2, 4], {"all": [0.01, 0.1, 0.3]}), {},
     ([1, 2, 4], {"all": [0.01, 0.1]}), {}, ValueError, r"curves\['all'\] must be \(K,\) = \(3,\) values"),
    ("temperature_bars", ({1.0: P[0], 4.0: P[1]},), {"entropies": {1.0: 0.8, 4.0: 1.1}},
     (P,), {}, TypeError, r"probs_by_T must be a dict \{T: \(C,\) probabilities\}"),
    ("temperature_bars", ({1.0: P[0], 4.0: P[1]},), {},
     ({1.0: P[0], 4.0: P[1]},), {"entropies": {1.0: 0.8}}, ValueError, r"entropies has no entry for T = 4.0"),
    ("entropy_curve", ([0.5, 1.0, 4.0], [0.3, 0.6, 1.0], 3), {"marks": (1.0,)},
     ([0.5, 1.0, 4.0], [0.3, 0.6, 1.0], 3), {"marks": True}, ValueError, r"marks must be temperatures to label"),
    ("entropy_curve", ([0.5, 1.0, 4.0], [0.3, 0.6, 1.0], 3), {},
     ([0.5, 1.0, 4.0], [0.3, 0.6, 1.0], torch.randn(3)), {}, TypeError, r"n_classes must be a whole number >= 2"),
    ("entropy_curve", ([0.5, 1.0, 4.0], [0.3, 0.6, 1.0], 3), {},
     ([0.5, 1.0, 4.0], [0.3, 0.6], 3), {}, ValueError,
     r"entropies must be \(K,\) = \(3,\) entropies in nats, one per temperature of Ts, got shape \(2,\) \(2 values, not 3\)"),
    ("gradient_scale", ([1, 2, 4], [1.0, 0.3, 0.08], [1.0, 1.2, 1.3]), {},
     ([1, 2, 4], [1.0, 0.3], [1.0, 1.2, 1.3]), {}, ValueError, r"norms must be \(K,\) = \(3,\) gradient norms"),
]


@pytest.mark.parametrize("name, valid, valid_kw, wrong, wrong_kw, error, message", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_a_figure_names_what_is_wrong_before_it_draws(name, valid, valid_kw, wrong, wrong_kw, error,
                                                      message):
    plt.close("all")
    draw = getattr(kd.plot, name)
    with pytest.raises(error, match=message):
        draw(*wrong, **wrong_kw)
    assert plt.get_fignums() == [], f"{name} opened a figure before it refused its input"
    assert isinstance(draw(*valid, **valid_kw), matplotlib.figure.Figure)
    plt.close("all")


def _never(what):
    def fail(*a, **k):
        raise AssertionError(f"{what} ran on a wrong input")
    return fail


def test_the_teacher_and_zoo_scripts_refuse_wrong_input_before_any_work(monkeypatch):
    """A tensor where a folder goes, a float where a count goes: the error names the argument,
    and neither the data nor the model is touched."""
    from kdlab import lm, lm_zoo, teacher, zoo

    setup = teacher.setup
    monkeypatch.setattr(teacher, "setup", _never("the teacher's setup"))
    monkeypatch.setattr(teacher, "metadata", _never("reading the checkpoint's metadata"))
    monkeypatch.setattr(teacher.data, "mnist", _never("loading MNIST"))
    monkeypatch.setattr(lm, "build", _never("building the language model"))
    x = torch.randn(64, 10)
    cases = [
        (lambda: zoo.make_snapshots(x), TypeError, r"out must be a folder path \(a str or a pathlib.Path\), got a Tensor of shape \(64, 10\)"),
        (lambda: zoo.make_snapshots("out", steps=5), TypeError, r"steps must be optimizer steps"),
        (lambda: zoo.make_snapshots("out", steps=(100, 0)), ValueError, r"each of steps must be a whole number >= 1, got 0"),
        (lambda: zoo.make_snapshots("out", eval_every=2.5), TypeError, r"eval_every must be a whole number >= 1"),
        (lambda: zoo.make_snapshots("out", to_end=x), TypeError, r"to_end must be True or False"),
        (lambda: zoo.make_small(x), TypeError, r"out must be a folder path"),
        (lambda: teacher.retrain(x), TypeError, r"out must be a folder path"),
        (lambda: teacher.retrain("out", epochs=0.5), TypeError, r"epochs must be a whole number >= 1"),
        (lambda: setup(x), TypeError, r"recipe must be a dict like kd.teacher.RECIPE"),
        (lambda: teacher.load_teacher(x), TypeError, r"folder must be a folder path"),
        (lambda: teacher.load_teacher(device=3.0), TypeError, r"device must be None"),
        (lambda: teacher.fetch_logits(x), ValueError, r"split must be 'train' or 'test', got a Tensor"),
        (lambda: teacher.fetch_logits("test", x), TypeError, r"teacher must be None \(load the one in `folder`\)"),
        (lambda: teacher.fetch_logits("test", indices=x), TypeError, r"indices must be None \(the whole split\)"),
        (lambda: teacher.mnist_logits("test", folder=1.0), TypeError, r"folder must be a folder path"),
        (lambda: teacher.mnist_logits("test", progress=x), TypeError, r"progress must be True or False"),
        (lambda: lm_zoo.make(x), TypeError, r"out must be a folder path"),
        (lambda: lm_zoo.make("out", steps=x), TypeError, r"steps must be a whole number >= 1"),
        (lambda: lm_zoo.load(x), TypeError, r"folder must be a folder path"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()


def test_argument_checks_accept_what_the_course_passes():
    """Paths as str or Path, numpy whole numbers, numpy bools: accepted as they are."""
    import numpy as np
    from pathlib import Path

    from kdlab import _args

    assert _args.path("out", "a/b") == Path("a/b") and _args.path("out", Path("c")) == Path("c")
    assert _args.whole("steps", np.int64(3)) == 3 and _args.flag("progress", np.bool_(False)) is False
    with pytest.raises(TypeError, match="steps must be a whole number >= 1, got a bool"):
        _args.whole("steps", True)
    with pytest.raises(ValueError, match="steps must be a whole number >= 1, got 0"):
        _args.whole("steps", 0)
