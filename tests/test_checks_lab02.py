"""Lab 02 checks: common mistakes are rejected with their own message, right answers pass."""
import pytest
import torch
import torch.nn.functional as F

from kdlab.checks import check_class_similarity, check_dark_knowledge
from kdlab.checks._common import PASS_MARK


# ------------------------------------------------------------------ class_similarity: right


def sim_loop(probs, labels):
    C = probs.shape[1]
    return torch.stack([probs[labels == c].mean(dim=0) for c in range(C)])


def sim_onehot_matmul(probs, labels):
    onehot = F.one_hot(labels, probs.shape[1]).float()
    return (onehot.T @ probs) / onehot.sum(0, keepdim=True).T


def sim_index_add(probs, labels):
    C = probs.shape[1]
    sums = torch.zeros(C, C).index_add_(0, labels, probs)
    return sums / torch.bincount(labels, minlength=C)[:, None]


def sim_scatter_add_float64(probs, labels):
    C = probs.shape[1]
    p = probs.double()
    sums = torch.zeros(C, C, dtype=torch.float64).scatter_add_(0, labels[:, None].expand(-1, C), p)
    out = sums / sums.sum(1, keepdim=True)  # rows of probabilities: normalising = averaging
    return out


def sim_sorted_loop_python(probs, labels):
    C = probs.shape[1]
    rows = []
    for c in range(C):
        acc, n = torch.zeros(C), 0
        for p, y in zip(probs, labels.tolist()):
            if y == c:
                acc += p
                n += 1
        rows.append(acc / n)
    return torch.stack(rows)


@pytest.mark.parametrize("fn", [sim_loop, sim_onehot_matmul, sim_index_add,
                                sim_scatter_add_float64, sim_sorted_loop_python])
def test_class_similarity_accepts_right_answers(fn, capsys):
    check_class_similarity(fn)
    assert capsys.readouterr().out.startswith(PASS_MARK + " check_class_similarity")


# ------------------------------------------------------------------ class_similarity: wrong


def sim_stub(probs, labels):
    raise NotImplementedError


def sim_sum(probs, labels):  # rows not normalised
    return torch.stack([probs[labels == c].sum(dim=0) for c in range(probs.shape[1])])


def sim_transposed(probs, labels):
    return sim_loop(probs, labels).T


def sim_hard_argmax(probs, labels):  # hard labels (argmax) instead of soft targets
    return sim_loop(F.one_hot(probs.argmax(1), probs.shape[1]).float(), labels)


def sim_hard_labels(probs, labels):  # one-hot of the labels instead of soft targets
    return sim_loop(F.one_hot(labels, probs.shape[1]).float(), labels)


def sim_mean_wrong_axis(probs, labels):  # mean over the classes instead of the examples
    C = probs.shape[1]
    return torch.stack([probs[labels == c].mean(dim=1) for c in range(C)])


def sim_broadcast_columns(probs, labels):  # (C, C) / (C,) divides the columns
    onehot = F.one_hot(labels, probs.shape[1]).float()
    return (onehot.T @ probs) / onehot.sum(0)


def sim_divide_by_N(probs, labels):
    onehot = F.one_hot(labels, probs.shape[1]).float()
    return (onehot.T @ probs) / len(labels)


def sim_ignores_labels(probs, labels):
    C = probs.shape[1]
    return probs.mean(0, keepdim=True).expand(C, C)


def sim_softmax_again(probs, labels):
    return sim_loop(F.softmax(probs, dim=1), labels)


def sim_ten_classes(probs, labels):
    return torch.stack([probs[labels == c].mean(dim=0) if (labels == c).any()
                        else torch.zeros(probs.shape[1]) for c in range(10)])


def sim_in_place(probs, labels):
    out = sim_loop(probs, labels)
    probs.zero_()
    return out


def sim_numpy(probs, labels):
    return sim_loop(probs, labels).numpy()


def sim_row_max_normalised(probs, labels):  # some other wrong normalisation
    s = sim_sum(probs, labels)
    return s / s.max(1, keepdim=True).values


def sim_assumes_equal_counts(probs, labels):  # divides every row by N / C
    onehot = F.one_hot(labels, probs.shape[1]).float()
    return (onehot.T @ probs) / (len(labels) / probs.shape[1])


SIM_WRONG = [
    (sim_stub, "not implemented yet"),
    (sim_sum, "rows are not normalised"),
    (sim_transposed, "transposed"),
    (sim_hard_argmax, "hard predictions"),
    (sim_hard_labels, "identity matrix"),
    (sim_mean_wrong_axis, "averaged over the classes (dim=1)"),
    (sim_broadcast_columns, "divided column j by the count of class j"),
    (sim_divide_by_N, "total number of examples"),
    (sim_ignores_labels, "ignored the labels"),
    (sim_softmax_again, "already probabilities"),
    (sim_ten_classes, "assuming 10"),
    (sim_in_place, "in place"),
    (sim_numpy, "should be a torch.Tensor"),
    (sim_row_max_normalised, "expected 1 for every row"),
    (sim_assumes_equal_counts, "expected 1 for every row"),
]


@pytest.mark.parametrize("fn, message", SIM_WRONG)
def test_class_similarity_rejects_mistakes(fn, message):
    with pytest.raises(AssertionError, match="check_class_similarity") as e:
        check_class_similarity(fn)
    assert message in str(e.value), str(e.value)
    assert "Hint:" in str(e.value)


# ------------------------------------------------------------------ dark_knowledge: right


def dk_one_minus_true(probs, labels):
    return 1 - probs[torch.arange(len(labels)), labels]


def dk_gather(probs, labels):
    return 1 - probs.gather(1, labels[:, None]).squeeze(1)


def dk_masked_sum(probs, labels):
    mask = F.one_hot(labels, probs.shape[1]).bool()
    return probs.masked_fill(mask, 0).sum(dim=1)


def dk_where(probs, labels):
    cols = torch.arange(probs.shape[1])[None, :]
    return torch.where(cols == labels[:, None], torch.zeros_like(probs), probs).sum(1)


def dk_loop(probs, labels):
    return torch.stack([sum(p[j] for j in range(len(p)) if j != y)
                        for p, y in zip(probs, labels.tolist())])


@pytest.mark.parametrize("fn", [dk_one_minus_true, dk_gather, dk_masked_sum, dk_where, dk_loop])
def test_dark_knowledge_accepts_right_answers(fn, capsys):
    check_dark_knowledge(fn)
    assert capsys.readouterr().out.startswith(PASS_MARK + " check_dark_knowledge")


# ------------------------------------------------------------------ dark_knowledge: wrong


def dk_stub(probs, labels):
    raise NotImplementedError


def dk_includes_true(probs, labels):
    return probs.sum(dim=1)


def dk_argmax(probs, labels):
    return 1 - probs.max(dim=1).values


def dk_wrong_axis(probs, labels):
    mask = F.one_hot(labels, probs.shape[1]).bool()
    return probs.masked_fill(mask, 0).sum(dim=0)


def dk_mean(probs, labels):
    return dk_gather(probs, labels).mean()


def dk_column_indexing(probs, labels):
    return 1 - probs[:, labels]


def dk_keepdim(probs, labels):
    return 1 - probs.gather(1, labels[:, None])


def dk_not_summed(probs, labels):
    return probs.masked_fill(F.one_hot(labels, probs.shape[1]).bool(), 0)


def dk_true_mass(probs, labels):
    return probs[torch.arange(len(labels)), labels]


def dk_in_place(probs, labels):
    probs[torch.arange(len(labels)), labels] = 0
    return probs.sum(1)


def dk_max_wrong(probs, labels):  # largest wrong probability, not the total mass
    return probs.masked_fill(F.one_hot(labels, probs.shape[1]).bool(), 0).max(1).values


def dk_softmax_again(probs, labels):  # probs are already probabilities
    return 1 - F.softmax(probs, dim=1)[torch.arange(len(labels)), labels]


DK_WRONG = [
    (dk_stub, "not implemented yet"),
    (dk_includes_true, "including the true one"),
    (dk_argmax, "instead of the TRUE class"),
    (dk_wrong_axis, "reduced over the examples"),
    (dk_mean, "returned the mean over the examples"),
    (dk_column_indexing, "picks every label for every example"),
    (dk_keepdim, "drop keepdim=True"),
    (dk_not_summed, "one value per class of every example"),
    (dk_true_mass, "probability of the true class"),
    (dk_in_place, "changed probs in place"),
    (dk_max_wrong, "is wrong: max abs difference"),
    (dk_softmax_again, "is wrong: max abs difference"),
]


@pytest.mark.parametrize("fn, message", DK_WRONG)
def test_dark_knowledge_rejects_mistakes(fn, message):
    with pytest.raises(AssertionError, match="check_dark_knowledge") as e:
        check_dark_knowledge(fn)
    assert message in str(e.value), str(e.value)
    assert "Hint:" in str(e.value)


def test_check_rejects_non_function():
    with pytest.raises(AssertionError, match="expected a function"):
        check_dark_knowledge(torch.zeros(3))  # a value, not the function


# ------------------------------------------------------------------ the Lab 02 explorer


@pytest.fixture(scope="module")
def fake_teacher():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 1, 28, 28, generator=g)
    y = torch.arange(40) % 10
    logits = torch.randn(40, 10, generator=g)
    logits[torch.arange(40), y] += 6
    logits[:5, 0] += 12  # five confident mistakes (or right answers for the 0s)
    return x, logits, y


def test_explorer_draws_headless_and_responds(fake_teacher):
    import kdlab.widgets

    x, logits, y = fake_teacher
    w = kdlab.widgets.soft_target_explorer(x, logits, y, T=4.0, n_ambiguous=5)
    png = w.picture.value
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    first = int(w.index.value)
    wrong_mass = 1 - torch.softmax(logits, 1)[torch.arange(40), y]
    assert first == int(wrong_mass.argmax())                    # starts at the most ambiguous
    assert f"#{first}" in w.info.value and f"label <b>{int(y[first])}</b>" in w.info.value
    w.next_button.click()
    assert int(w.index.value) == int(wrong_mass.argsort(descending=True)[1])
    assert "ambiguous 2 of 5" in w.info.value
    before = w.picture.value
    w.T.value = 10.0
    assert w.picture.value != before and "T = 10.00" in w.info.value
    w.index.value = 7
    assert "#7" in w.info.value and "ambiguous" not in w.info.value.split("T = 10.00")[1]
    for part, cls in [(w.index, "kd-digit-index"), (w.next_button, "kd-next-ambiguous"),
                      (w.T, "kd-soft-T"), (w.info, "kd-digit-info"),
                      (w.picture, "kd-soft-figure")]:
        assert cls in part._dom_classes


def test_explorer_rejects_bad_input(fake_teacher):
    import kdlab.widgets

    x, logits, y = fake_teacher
    with pytest.raises(ValueError, match="same digits"):
        kdlab.widgets.soft_target_explorer(x[:10], logits, y)
    with pytest.raises(ValueError, match="T must be"):
        kdlab.widgets.soft_target_explorer(x, logits, y, T=0)
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        kdlab.widgets.soft_target_explorer(x, logits[0], y)
    with pytest.raises(ValueError, match="index must lie"):
        kdlab.widgets.soft_target_explorer(x, logits, y, index=40)


# ------------------------------------------------------------------ probe/verdict: fresh inputs, inputs left alone, references

from kdlab.checks import CHECKS  # noqa: E402
from kdlab.checks import lab02 as _lab02  # noqa: E402
from kdlab.checks._registry import answer_key, judge, probe_data  # noqa: E402

SEEDS = [0, 1, 7, 12345]


def _grade(name, fn, seed=None, params=None):
    check = CHECKS[name]
    return judge(check, probe_data(check, fn, seed, params), seed, params)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name, fn", [
    ("class_similarity", sim_loop), ("class_similarity", sim_index_add),
    ("class_similarity", sim_scatter_add_float64),
    ("dark_knowledge", dk_one_minus_true), ("dark_knowledge", dk_masked_sum),
    ("dark_knowledge", dk_loop)])
def test_right_answers_pass_on_fresh_inputs(name, fn, seed):
    assert _grade(name, fn, seed)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name, fn, message", [
    ("class_similarity", sim_sum, "rows are not normalised"),
    ("class_similarity", sim_transposed, "transposed"),
    ("class_similarity", sim_hard_argmax, "hard predictions"),
    ("class_similarity", sim_mean_wrong_axis, "averaged over the classes"),
    ("class_similarity", sim_broadcast_columns, "divided column j"),
    ("class_similarity", sim_divide_by_N, "total number of examples"),
    ("class_similarity", sim_ignores_labels, "ignored the labels"),
    ("class_similarity", sim_softmax_again, "already probabilities"),
    ("class_similarity", sim_ten_classes, "assuming 10"),
    ("dark_knowledge", dk_includes_true, "including the true one"),
    ("dark_knowledge", dk_argmax, "instead of the TRUE class"),
    ("dark_knowledge", dk_wrong_axis, "reduced over the examples"),
    ("dark_knowledge", dk_mean, "mean over the examples"),
    ("dark_knowledge", dk_column_indexing, "picks every label"),
    ("dark_knowledge", dk_keepdim, "drop keepdim=True"),
    ("dark_knowledge", dk_true_mass, "probability of the true class"),
    ("dark_knowledge", dk_max_wrong, "is wrong"),
])
def test_wrong_answers_fail_on_fresh_inputs(name, fn, message, seed):
    with pytest.raises(AssertionError, match=f"check_{name}") as e:
        _grade(name, fn, seed)
    assert message in str(e.value), str(e.value)


@pytest.mark.parametrize("seed", [None, 3])
def test_fresh_inputs_keep_their_kinds(seed):
    """Unequal counts, N = C * C in the first similarity case, misclassified digits, N != C."""
    sim = _lab02.similarity_inputs(seed)["cases"]
    (_, p1, l1), (_, p2, l2) = sim
    assert p1.shape[0] == p1.shape[1] ** 2
    counts = torch.bincount(l2, minlength=p2.shape[1])
    assert len(set(counts.tolist())) == p2.shape[1] and counts.min() >= 1
    for _, probs, labels in sim + _lab02.dark_inputs(seed)["cases"]:
        assert (probs.argmax(1) != labels).any()
        assert torch.allclose(probs.sum(1), torch.ones(len(labels)))
    for _, probs, labels in _lab02.dark_inputs(seed)["cases"]:
        assert probs.shape[0] != probs.shape[1]
    assert not torch.equal(_lab02.similarity_inputs(1)["cases"][1][1],
                           _lab02.similarity_inputs(2)["cases"][1][1])


def sim_sets_requires_grad(probs, labels):
    probs.requires_grad_()
    return sim_loop(probs, labels)


def dk_sorts_labels_in_place(probs, labels):
    out = dk_one_minus_true(probs, labels)
    labels.copy_(labels.flip(0))
    return out


@pytest.mark.parametrize("name, fn, message", [
    ("class_similarity", sim_sets_requires_grad, "changed the probs passed to it"),
    ("class_similarity", sim_in_place, "changed probs in place"),
    ("dark_knowledge", dk_sorts_labels_in_place, "changed the labels passed to it"),
])
def test_functions_that_change_their_inputs_are_rejected(name, fn, message):
    with pytest.raises(AssertionError, match=message):
        _grade(name, fn, 5)


@pytest.mark.filterwarnings("ignore")  # public functions called as answers misuse their inputs
def test_public_modules_hold_no_reference():
    """The references live only in the instructor-only kdlab.grading.keys: the old reference is
    gone from the public check module, and no function of the public tensor modules (the check
    modules, losses, compress, models, views), nor a course helper wrapped as the answer,
    passes a Lab 02 check."""
    import importlib
    import inspect
    import pkgutil

    import kdlab
    from kdlab import plot

    for old in ("_reference_similarity", "_complete", "_call_probe"):
        assert not hasattr(_lab02, old), old
    names = [m.name for m in pkgutil.walk_packages(kdlab.__path__, "kdlab.")
             if m.name.startswith("kdlab.checks")] + ["kdlab.compress", "kdlab.models", "kdlab.views"]
    public = []
    for name in names:
        mod = importlib.import_module(name)
        public += [f for f in vars(mod).values() if inspect.isfunction(f) and f.__module__ == name]
    assert sum(f.__module__ == _lab02.__name__ for f in public) >= 6
    wrapped = [lambda p, y: torch.from_numpy(plot.probabilities.soft_probabilities(p, 1.0)),
               lambda p, y: 1 - torch.from_numpy(plot.probabilities.soft_probabilities(p, 1.0))[torch.arange(len(y)), y]]
    for check in (CHECKS["class_similarity"], CHECKS["dark_knowledge"]):
        inp, key = check.inputs(None), answer_key(check)  # what judge() uses, made once
        for fn in public + wrapped:
            with pytest.raises(AssertionError, match=check.title):
                check.verdict(check, probe_data(check, fn, inputs=inp), inp, key)


@pytest.mark.parametrize("n_classes", [3, 7])
def test_params_change_the_inputs(n_classes):
    """A hidden test can ask for another number of classes; right answers pass, 'assume 10' fails."""
    for seed in (None, 4):
        for name in ("class_similarity", "dark_knowledge"):
            inp = CHECKS[name].inputs(seed, n_classes=n_classes)
            assert inp["cases"][1][1].shape[1] == n_classes
        assert _grade("class_similarity", sim_loop, seed, {"n_classes": n_classes})
        assert _grade("dark_knowledge", dk_gather, seed, {"n_classes": n_classes, "wrong": 2})
    with pytest.raises(AssertionError, match="assuming 10"):
        check_class_similarity(sim_ten_classes, n_classes=n_classes)
    with pytest.raises(ValueError, match="n_classes must be >= 3"):
        CHECKS["class_similarity"].inputs(None, n_classes=2)


@pytest.mark.parametrize("name, fn", [("class_similarity", sim_loop), ("dark_knowledge", dk_gather)])
def test_incomplete_probe_data_fails(name, fn):
    """A verdict never passes on data that leaves cases out (as a forged probe result might)."""
    data = probe_data(CHECKS[name], fn, 3)
    assert judge(CHECKS[name], data, 3)
    data["cases"] = []
    with pytest.raises(AssertionError, match="data is incomplete"):
        judge(CHECKS[name], data, 3)


# ------------------------------------------------------------------ PASSED in the notebook predicts the grade

SIM_RIGHT = [sim_loop, sim_onehot_matmul, sim_index_add, sim_scatter_add_float64,
             sim_sorted_loop_python]
DK_RIGHT = [dk_one_minus_true, dk_gather, dk_masked_sum, dk_where, dk_loop]
FRESH = [2, 31, 404]  # seeds the other tests do not use


@pytest.mark.parametrize("name, fn, message",
                         [("class_similarity", fn, m) for fn, m in SIM_WRONG]
                         + [("dark_knowledge", fn, m) for fn, m in DK_WRONG]
                         + [("class_similarity", sim_sets_requires_grad, "changed the probs"),
                            ("dark_knowledge", dk_sorts_labels_in_place, "changed the labels")])
def test_rejected_in_the_notebook_means_rejected_in_grading(name, fn, message):
    """Every mutant the notebook rejects is rejected on fresh seeds too, for the same mistake."""
    for seed in [None] + FRESH:
        with pytest.raises(AssertionError, match=f"check_{name}") as e:
            _grade(name, fn, seed)
        assert message in str(e.value), (seed, str(e.value))


@pytest.mark.parametrize("name, fn", [("class_similarity", fn) for fn in SIM_RIGHT]
                         + [("dark_knowledge", fn) for fn in DK_RIGHT])
def test_passed_in_the_notebook_means_passed_in_grading(name, fn):
    """Every right answer the notebook accepts passes on fresh seeds too."""
    for seed in [None] + FRESH:
        assert _grade(name, fn, seed), seed
