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
    model = kd.teacher.load_teacher(device="cpu")
    assert not model.training
    xt, yt = kd.data.mnist("test")
    r = kd.train.evaluate(model, xt, yt)
    assert r["errors"] <= 50, f"teacher makes {r['errors']} errors on the 10,000 test images"
    meta = T.metadata()
    assert meta["test_errors"] == r["errors"]
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
    s = T.shift(x[:8], 2.0, g)
    assert s.shape == (8, 1, 28, 28) and not torch.allclose(s, x[:8])
    assert torch.allclose(T.shift(x[:8], 0.0, g), x[:8], atol=1e-5)
