"""kdlab.teacher: the shipped checkpoint loads, is verified, and is as good as promised."""
import json
import shutil

import pytest
import torch

import kdlab as kd
from kdlab import teacher as T


@pytest.fixture
def ckpt_copy(tmp_path):
    dst = tmp_path / "teacher"
    shutil.copytree(T.ASSETS, dst)
    return dst


def test_teacher_at_most_50_test_errors_and_metadata_is_true():
    """The checkpoint's errors on the 10,000 test images, counted from its test logits: those
    of the kdlab cache when Lab 02 (or another test) made them, checked against this
    checkpoint's sha256 and their digest, else computed here (and cached)."""
    model = kd.teacher.load_teacher(device="cpu")
    assert not model.training
    _, yt = kd.data.mnist("test")
    logits = kd.teacher.fetch_logits("test", model, progress=False).logits
    errors = int((logits.argmax(1) != yt).sum())
    assert errors <= 50, f"teacher makes {errors} errors on the 10,000 test images"
    meta = T.metadata()
    assert meta["test_errors"] == errors
    for key in ("recipe", "train_seconds", "torch", "sha256", "test_accuracy"):
        assert key in meta
    assert meta["recipe"]["seed"] == 0 and meta["recipe"]["epochs"] >= 1


def test_checkpoint_is_small():
    assert (T.ASSETS / T.CHECKPOINT).stat().st_size < 5 * 2**20


def test_corrupted_checkpoint_is_refused(ckpt_copy):
    p = ckpt_copy / T.CHECKPOINT
    b = bytearray(p.read_bytes())
    b[-10] ^= 0xFF
    p.write_bytes(bytes(b))
    with pytest.raises(T.CheckpointError, match=r"corrupted: .*teacher\.pt.*--retrain"):
        T.load_teacher(ckpt_copy)


def test_missing_checkpoint_is_named(ckpt_copy):
    (ckpt_copy / T.CHECKPOINT).unlink()
    with pytest.raises(T.CheckpointError, match="missing"):
        T.load_teacher(ckpt_copy)


def test_wrong_architecture_is_refused(ckpt_copy):
    torch.save(kd.models.Teacher(width=8).state_dict(), ckpt_copy / T.CHECKPOINT)
    meta = json.loads((ckpt_copy / T.METADATA).read_text())
    meta["sha256"] = T._sha256(ckpt_copy / T.CHECKPOINT)
    (ckpt_copy / T.METADATA).write_text(json.dumps(meta))
    with pytest.raises(T.CheckpointError, match="does not match the Teacher architecture"):
        T.load_teacher(ckpt_copy)


def test_retrain_recipe_runs_and_writes_verified_checkpoint(tmp_path, monkeypatch):
    """The retraining script end to end, on a tiny budget (the real run takes minutes)."""
    x, y = kd.data.mnist("train")
    xt, yt = kd.data.mnist("test")
    idx = kd.data.balanced_indices(y, 20)
    monkeypatch.setattr(T.data, "mnist", lambda split="train": (x[idx], y[idx]) if split == "train"
                        else (xt[:200], yt[:200]))
    meta = T.retrain(tmp_path, epochs=1, progress=False)
    assert meta["recipe"]["epochs"] == 1 and meta["sha256"] == T._sha256(tmp_path / T.CHECKPOINT)
    assert T.load_teacher(tmp_path, device="cpu").width == meta["recipe"]["width"]


def test_shift_augmentation_moves_pixels():
    x, _ = kd.data.mnist("test")
    g = torch.Generator().manual_seed(0)
    from kdlab.views import shift
    s = shift(x[:8], 2.0, g)
    assert s.shape == (8, 1, 28, 28) and not torch.allclose(s, x[:8])
    assert torch.allclose(shift(x[:8], 0.0, g), x[:8], atol=1e-5)


# ------------------------------------------------------------------ teacher logits cached on disk

@pytest.fixture
def small_cache(tmp_path, monkeypatch):
    """A fresh cache folder and a 300-image 'train' / 200-image 'test' MNIST (fast)."""
    monkeypatch.setenv("KDLAB_CACHE", str(tmp_path / "cache"))
    x, y = kd.data.mnist("test")
    monkeypatch.setattr(T.data, "mnist", lambda split="train": (x[:300], y[:300]) if split == "train"
                        else (x[300:500], y[300:500]))
    calls = []
    real = T.evaluation.predict_logits

    def counting(model, xs, *a, **k):
        calls.append(len(xs))
        return real(model, xs, *a, **k)
    monkeypatch.setattr(T.evaluation, "predict_logits", counting)
    return {"x": x, "calls": calls, "root": tmp_path / "cache"}


def test_logits_are_cached_keyed_by_sha_and_reread(small_cache, capsys):
    teacher = T.load_teacher(device="cpu")
    first, source, _, where = T.fetch_logits("train", teacher, progress=False)
    assert small_cache["calls"] == [300] and first.shape == (300, 10) and source == "computed"
    sha = T._sha256(T.ASSETS / T.CHECKPOINT)
    path = T.logits_cache_path("train", sha)
    assert path.exists() and str(path).startswith(str(small_cache["root"])) and sha[:16] in path.name
    assert "computed" in capsys.readouterr().out and where == str(path)
    again, source, seconds, _ = T.fetch_logits("train", progress=False)  # no teacher: from disk
    assert source == "cache" and seconds == 0.0
    assert small_cache["calls"] == [300], "the second call must not run the teacher"
    assert torch.equal(first, again) and "read from the cache" in capsys.readouterr().out
    assert torch.allclose(first, kd.evaluation.predict_logits(teacher, small_cache["x"][:300]), atol=1e-5)
    assert T.mnist_logits("test", teacher, progress=False).shape == (200, 10)
    assert T.logits_cache_path("test", sha) != path


def _rewrite(path, **changes):
    blob = torch.load(path, weights_only=True)
    blob.update(changes)
    torch.save(blob, path)


@pytest.mark.parametrize("damage,why", [
    ("truncate", "unreadable"),
    ("values", "corrupted"),
    ("sha", "another checkpoint"),
    ("shape", "expected 'train' (300, 10)"),
])
def test_bad_cache_file_is_detected_and_recomputed(small_cache, capsys, damage, why):
    teacher = T.load_teacher(device="cpu")
    good = T.mnist_logits("train", teacher, progress=False)
    path = T.logits_cache_path("train", T._sha256(T.ASSETS / T.CHECKPOINT))
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "values":  # same digest, other values: a silently corrupted file
        _rewrite(path, logits=good + 1.0)
    elif damage == "sha":
        _rewrite(path, sha256="0" * 64)
    else:
        _rewrite(path, logits=good[:100])
    capsys.readouterr()
    again = T.mnist_logits("train", teacher, progress=False)
    out = capsys.readouterr().out
    assert "not usable" in out and why in out and "recomputing" in out, out
    assert torch.equal(again, good) and small_cache["calls"] == [300, 300]
    T.mnist_logits("train", teacher, progress=False)  # repaired: read again
    assert small_cache["calls"] == [300, 300]


def test_subset_without_cache_runs_only_the_subset(small_cache, capsys):
    teacher = T.load_teacher(device="cpu")
    idx = torch.tensor([5, 1, 250])
    sub, source, _, where = T.fetch_logits("train", teacher, indices=idx, progress=False)
    assert sub.shape == (3, 10) and small_cache["calls"] == [3]
    assert source == "subset" and where == ""
    assert not T.logits_cache_path("train", T._sha256(T.ASSETS / T.CHECKPOINT)).exists()
    assert "not cached" in capsys.readouterr().out
    full = T.mnist_logits("train", teacher, progress=False)
    assert torch.allclose(full[idx], sub, atol=1e-5)
    assert torch.equal(T.mnist_logits("train", indices=idx, progress=False), full[idx])
    assert small_cache["calls"] == [3, 300]


def test_retrained_checkpoint_gets_its_own_cache(small_cache, ckpt_copy):
    torch.save(kd.models.Teacher(width=24).state_dict(), ckpt_copy / T.CHECKPOINT)
    meta = json.loads((ckpt_copy / T.METADATA).read_text())
    meta["sha256"] = T._sha256(ckpt_copy / T.CHECKPOINT)
    (ckpt_copy / T.METADATA).write_text(json.dumps(meta))
    a = T.mnist_logits("test", folder=T.ASSETS, progress=False, verbose=False)
    b = T.mnist_logits("test", folder=ckpt_copy, progress=False, verbose=False)
    assert small_cache["calls"] == [200, 200] and not torch.allclose(a, b)


def test_bad_split_is_named():
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        T.mnist_logits("validation")
