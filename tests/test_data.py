"""kdlab.data: bundled MNIST, verification, atomic extraction, subsets, batches."""
import gzip
import hashlib
import shutil
import sys

import pytest
import torch

import kdlab as kd
from kdlab import data

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture
def assets_copy(tmp_path):
    """A private copy of the bundled archives that a test may damage."""
    dst = tmp_path / "assets"
    shutil.copytree(data.ASSETS, dst)
    for p in dst.iterdir():
        p.chmod(0o644)
    return dst


def test_counts_and_classes():
    x, y = kd.data.mnist("train")
    xt, yt = kd.data.mnist("test")
    assert x.shape == (60000, 1, 28, 28) and x.dtype == torch.float32
    assert xt.shape == (10000, 1, 28, 28)
    assert y.bincount().tolist() == TRAIN_COUNTS
    assert yt.bincount().tolist() == TEST_COUNTS
    assert abs(x.mean().item()) < 1e-3 and abs(x.std().item() - 1) < 1e-2


def test_unnormalized_pixels_match_raw_idx():
    x, _ = kd.data.mnist("test", normalize=False)
    with gzip.open(data.ASSETS / "t10k-images-idx3-ubyte.gz", "rb") as f:
        raw = torch.frombuffer(bytearray(f.read()[16:]), dtype=torch.uint8)
    assert torch.equal((x * 255).round().to(torch.uint8).flatten(), raw)


def test_bad_split():
    with pytest.raises(ValueError, match="'train' or 'test'"):
        kd.data.mnist("validation")


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("KDLAB_CACHE", str(tmp_path / "c"))
    assert data.cache_dir() == tmp_path / "c"


def test_corrupted_archive_is_named(assets_copy, tmp_path):
    p = assets_copy / "t10k-labels-idx1-ubyte.gz"
    b = bytearray(p.read_bytes())
    b[100] ^= 0xFF
    p.write_bytes(bytes(b))
    with pytest.raises(data.DataError, match=r"corrupted: .*t10k-labels-idx1-ubyte\.gz.*Repair"):
        data.prepare(tmp_path / "root", assets=assets_copy)
    assert not (tmp_path / "root" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").exists()


def test_a_file_is_hashed_again_only_when_it_changed(assets_copy, monkeypatch):
    """A file's digest is kept while the file is unchanged (prepare() is called by every
    loader: the archives are not read again each time); a change in place, same size, is seen;
    a file written in the last seconds is hashed at every call (a change within the clock's
    tick would not show in its times)."""
    import os
    import time

    p = assets_copy / "t10k-labels-idx1-ubyte.gz"
    data._digest(p)  # the copy was just made: not kept
    assert (os.path.realpath(p), "sha256") not in data._DIGESTS
    monkeypatch.setattr(data, "_SETTLED_NS", 0)  # from here on, count every file settled
    first = data._digest(p)
    reads, real_open = [], open

    def counting_open(f, *a, **k):
        reads.append(f)
        return real_open(f, *a, **k)

    monkeypatch.setattr(data, "open", counting_open, raising=False)
    assert data._digest(p) == first and reads == []  # unchanged: not read again
    time.sleep(0.05)  # past the clock's tick of the copy
    b = bytearray(p.read_bytes())
    b[100] ^= 0xFF
    p.write_bytes(bytes(b))  # same size, changed in place
    assert data._digest(p) != first and reads == [p]
    with pytest.raises(data.DataError, match="corrupted"):
        data.verify_archives(assets_copy)


def test_missing_archive_is_named(assets_copy, tmp_path):
    (assets_copy / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(data.DataError, match=r"missing: .*train-images-idx3-ubyte\.gz"):
        data.prepare(tmp_path / "root", assets=assets_copy)


def test_prepare_extracts_for_torchvision(tmp_path):
    from torchvision.datasets import MNIST

    root = data.prepare(tmp_path / "root")
    ds = MNIST(str(root), train=False, download=False)
    assert len(ds) == 10000
    for name, md5 in data.RAW_MD5.items():
        assert hashlib.md5((root / "MNIST" / "raw" / name).read_bytes()).hexdigest() == md5


def test_interrupted_extraction_leaves_no_half_file(tmp_path, monkeypatch):
    root = tmp_path / "root"
    real_open = gzip.open

    class Boom:
        def __init__(self, *a, **k):
            self.f = real_open(*a, **k)
            self.n = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def read(self, n):
            self.n += 1
            if self.n > 2:
                raise KeyboardInterrupt("simulated interruption")
            return self.f.read(n)

    monkeypatch.setattr(data.gzip, "open", Boom)
    with pytest.raises(KeyboardInterrupt):
        data.prepare(root)
    raw = root / "MNIST" / "raw"
    assert not list(raw.glob("*.part")), "temporary file left behind"
    assert not (raw / "train-images-idx3-ubyte").exists(), "half-written file left behind"
    monkeypatch.setattr(data.gzip, "open", real_open)
    data.prepare(root)
    assert (raw / "train-images-idx3-ubyte").stat().st_size == 47040016


def test_truncated_extracted_file_is_replaced(tmp_path):
    root = data.prepare(tmp_path / "root")
    f = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    f.write_bytes(f.read_bytes()[:100])
    data.prepare(root)
    assert hashlib.md5(f.read_bytes()).hexdigest() == data.RAW_MD5[f.name]


def test_torchvision_tensors_are_kept_and_checked_against_the_files(tmp_path, monkeypatch):
    """The tensors torchvision read are kept beside the files: the next load takes them without
    importing torchvision; a kept file whose pixels or labels differ from the files' content
    (one pixel changed, one label changed, not a tensor file) is not used: torchvision reads
    the files again and the kept file is replaced by what it read."""
    monkeypatch.setenv("KDLAB_CACHE", str(tmp_path / "c"))
    data._load_uint8.cache_clear()
    try:
        x, y = data._load_uint8("test")
        kept = tmp_path / "c" / "MNIST" / "tensors" / "test.pt"
        assert kept.is_file()

        def load_without_torchvision():
            data._load_uint8.cache_clear()
            with monkeypatch.context() as m:
                m.setitem(sys.modules, "torchvision.datasets", None)  # importing it fails
                return data._load_uint8("test")

        x2, y2 = load_without_torchvision()
        assert torch.equal(x2, x) and torch.equal(y2, y)
        for damage in ("pixel", "label", "bytes"):
            if damage == "bytes":
                kept.write_bytes(b"not a tensor file")
            else:
                saved = torch.load(kept, weights_only=True)
                saved["data" if damage == "pixel" else "targets"].view(-1)[123] += 1
                torch.save(saved, kept)
            with pytest.raises(ImportError):  # the damaged file was not taken
                load_without_torchvision()
            data._load_uint8.cache_clear()
            x3, y3 = data._load_uint8("test")  # read by torchvision again, and kept again
            assert torch.equal(x3, x) and torch.equal(y3, y), damage
            x4, y4 = load_without_torchvision()
            assert torch.equal(x4, x) and torch.equal(y4, y), damage
    finally:
        data._load_uint8.cache_clear()


def test_balanced_indices():
    _, y = kd.data.mnist("train")
    idx = kd.data.balanced_indices(y, 7, seed=1)
    assert y[idx].bincount().tolist() == [7] * 10
    assert torch.equal(idx, kd.data.balanced_indices(y, 7, seed=1))
    assert not torch.equal(idx, kd.data.balanced_indices(y, 7, seed=2))
    with pytest.raises(ValueError, match="only"):
        kd.data.balanced_indices(y, 7000)
    with pytest.raises(ValueError, match="positive"):
        kd.data.balanced_indices(y, 0)


def test_indices_without():
    _, y = kd.data.mnist("train")
    idx = kd.data.indices_without(y, 3)
    assert len(idx) == 60000 - TRAIN_COUNTS[3] and (y[idx] != 3).all()
    idx2 = kd.data.indices_without(y, [3, 5])
    assert len(idx2) == 60000 - TRAIN_COUNTS[3] - TRAIN_COUNTS[5]


def test_batches_cover_each_example_once_and_repeat_by_seed():
    x = torch.arange(10).float().view(10, 1)
    y = torch.arange(10)
    b = kd.data.Batches(x, y, batch_size=4, seed=3)
    assert len(b) == 3
    e1 = torch.cat([i for _, _, i in b])
    e2 = torch.cat([i for _, _, i in b])
    assert sorted(e1.tolist()) == list(range(10)) and not torch.equal(e1, e2)
    again = kd.data.Batches(x, y, batch_size=4, seed=3)
    assert torch.equal(torch.cat([i for _, _, i in again]), e1)
    for xb, yb, ib in kd.data.Batches(x, y, batch_size=4, shuffle=False):
        assert torch.equal(yb, ib) and torch.equal(xb.flatten().long(), ib)
    with pytest.raises(ValueError, match="differ in length"):
        kd.data.Batches(x, y[:5])


def test_steps_gives_a_fixed_number_of_batches_over_epochs():
    x, y = torch.arange(10.0).reshape(10, 1), torch.arange(10) % 3
    b = kd.data.Batches(x, y, batch_size=4, seed=0)  # 3 batches per epoch
    s = kd.data.Steps(b, 7)
    got = list(s)
    assert len(s) == 7 and len(got) == 7
    assert sorted(torch.cat([g[2] for g in got[:3]]).tolist()) == list(range(10))  # epoch 1 whole
    assert not torch.equal(got[0][2], got[3][2])  # the next epoch is reshuffled
    with pytest.raises(ValueError, match="at least 1"):
        kd.data.Steps(b, 0)
