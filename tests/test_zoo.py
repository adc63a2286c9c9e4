"""kdlab.zoo: Lab 06's other teachers ship verified, say what they are, and the script makes them."""
import json
import shutil

import pytest
import torch

import kdlab as kd
from kdlab import teacher as T
from kdlab import zoo


def test_the_zoo_ships_snapshots_and_a_small_teacher():
    names = zoo.names()
    assert names == [zoo.snapshot_name(s) for s in zoo.SNAPSHOT_STEPS] + [zoo.SMALL]
    for name in names:
        assert (zoo.ASSETS / name / T.CHECKPOINT).stat().st_size < 2 * 2**20


@pytest.mark.parametrize("name", [zoo.snapshot_name(s) for s in zoo.SNAPSHOT_STEPS] + [zoo.SMALL])
def test_each_teacher_loads_verified_in_eval_mode_with_true_metadata(name):
    model = zoo.load(name, device="cpu")
    meta = zoo.metadata(name)
    assert not model.training
    assert meta["sha256"] == T._sha256(zoo.ASSETS / name / T.CHECKPOINT)
    assert meta["params"] == kd.models.num_params(model)
    assert meta["recipe"]["seed"] == 0 and "made_by" in meta["recipe"]
    arch = kd.models.TinyCNN if name == zoo.SMALL else kd.models.Teacher
    assert type(model) is arch
    if name != zoo.SMALL:
        assert meta["recipe"]["steps"] == int(name.rpartition("-")[2])
        assert zoo.curve_report()["snapshots"][name] == meta["test_errors"]


def test_snapshots_improve_and_the_small_teacher_is_measured_on_the_test_set():
    errs = [zoo.metadata(zoo.snapshot_name(s))["test_errors"] for s in zoo.SNAPSHOT_STEPS]
    assert errs == sorted(errs, reverse=True) and errs[-1] > T.metadata()["test_errors"]
    xt, yt = kd.data.mnist("test")
    small = zoo.load(zoo.SMALL, device="cpu")
    assert kd.evaluation.evaluate(small, xt, yt)["errors"] == zoo.metadata(zoo.SMALL)["test_errors"]


def test_the_curve_says_whether_the_rerun_is_the_shipped_teachers_run():
    rep = zoo.curve_report()
    steps = [s for s, _ in zoo.curve()]
    total = rep["recipe"]["epochs"] * rep["steps_per_epoch"]
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] == total and rep["complete"]
    assert set(range(0, total + 1, rep["eval_every"])) <= set(steps)
    shipped = T.metadata()["val_errors_per_epoch"]
    assert [b for _, b in rep["epoch_errors_rerun_vs_shipped"].values()] == shipped
    for name in zoo.names()[:-1]:  # each snapshot is a point of the curve
        assert (zoo.metadata(name)["recipe"]["steps"], zoo.metadata(name)["test_errors"]) in zoo.curve()
    assert rep["same_run_as_shipped"] == all(a == b for a, b in
                                             rep["epoch_errors_rerun_vs_shipped"].values())


def test_unknown_or_corrupted_teacher_is_refused(tmp_path):
    with pytest.raises(T.CheckpointError, match="no teacher 'resnet-step-9999'.*--make"):
        zoo.load("resnet-step-9999")
    shutil.copytree(zoo.ASSETS / zoo.SMALL, tmp_path / zoo.SMALL)
    p = tmp_path / zoo.SMALL / T.CHECKPOINT
    b = bytearray(p.read_bytes())
    b[-10] ^= 0xFF
    p.write_bytes(bytes(b))
    with pytest.raises(T.CheckpointError, match="corrupted"):
        zoo.load(zoo.SMALL, folder=tmp_path)


def test_build_refuses_an_unknown_architecture():
    with pytest.raises(T.CheckpointError, match="unknown architecture"):
        T.build({"architecture": "os.system"})


@pytest.fixture
def tiny_mnist(monkeypatch):
    """The teacher's recipe on 200 training images and 100 test images (2 steps per epoch)."""
    x, y = kd.data.mnist("train")
    xt, yt = kd.data.mnist("test")
    idx = kd.data.balanced_indices(y, 20)
    monkeypatch.setattr(T.data, "mnist", lambda split="train": (x[idx], y[idx]) if split == "train"
                        else (xt[:100], yt[:100]))


def test_make_snapshots_saves_the_run_it_evaluates(tmp_path, tiny_mnist):
    rep = zoo.make_snapshots(tmp_path, steps=(1, 3), eval_every=2, to_end=False, progress=False)
    assert [s for s, _ in rep["test_errors"]] == [0, 1, 2, 3] and rep["complete"]
    assert list(rep["epoch_errors_rerun_vs_shipped"]) == ["1"]  # 2 steps per epoch here
    assert zoo.names(tmp_path) == ["resnet-step-0001", "resnet-step-0003"]
    m3 = zoo.load("resnet-step-0003", folder=tmp_path, device="cpu")
    assert rep["snapshots"]["resnet-step-0003"] == kd.evaluation.evaluate(m3, *T.data.mnist("test"))["errors"]
    # the same run saved after step 3 = the recipe trained for 3 steps by hand
    model, batches, opt, sched = T.setup(T.RECIPE)
    stream = zoo._stream(batches, T.RECIPE["epochs"])
    kd.train.fit(model, [next(stream) for _ in range(3)], torch.nn.functional.cross_entropy, 1,
                 optimizer=opt, scheduler=sched, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 m3.state_dict().values()))
    assert json.loads((tmp_path / zoo.CURVE).read_text())["steps_per_epoch"] == 2


def test_make_snapshots_runs_to_the_end_of_the_recipe(tmp_path, tiny_mnist):
    rep = zoo.make_snapshots(tmp_path, steps=(3,), eval_every=5, progress=False)
    assert [s for s, _ in rep["test_errors"]] == [0, 2, 3, 4, 5, 6, 8] and rep["complete"]
    assert list(rep["epoch_errors_rerun_vs_shipped"]) == ["1", "2", "3", "4"]
    assert zoo.names(tmp_path) == ["resnet-step-0003"]  # the last weights are not saved


def test_make_small_trains_a_verified_tinycnn(tmp_path, tiny_mnist, monkeypatch):
    monkeypatch.setitem(T.RECIPE, "epochs", 1)
    meta = zoo.make_small(tmp_path, progress=False)
    assert meta["recipe"]["architecture"] == "kdlab.models.TinyCNN" and "width" not in meta["recipe"]
    assert type(zoo.load(zoo.SMALL, folder=tmp_path, device="cpu")) is kd.models.TinyCNN
