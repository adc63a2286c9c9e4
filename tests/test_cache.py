"""kdlab.cache: files of tensors computed once, written atomically, checked by their digest."""
import pytest
import torch
import torch.nn.functional as F

import kdlab as kd
from kdlab import cache


def test_train_once_trains_then_reads_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLAB_CACHE", str(tmp_path))
    monkeypatch.delenv("KDLAB_QUICK", raising=False)
    calls = []

    def make():
        torch.manual_seed(0)
        return torch.nn.Linear(4, 3)

    def train_fn(m):
        calls.append(1)
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        x, y = torch.randn(16, 4, generator=torch.Generator().manual_seed(1)), torch.arange(16) % 3
        for _ in range(3):
            opt.zero_grad()
            F.cross_entropy(m(x), y).backward()
            opt.step()
        return {"steps": 3}

    recipe = {"n": 16, "steps": 3}
    m1, info1 = kd.cache.train_once("lin", recipe, make, train_fn, verbose=False)
    m2, info2 = kd.cache.train_once("lin", recipe, make, train_fn, verbose=False)
    assert calls == [1] and info1["source"] == "trained" and info2["source"] == "cache"
    assert info2["extra"] == info1["extra"] == {"steps": 3} and not m2.training
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert not torch.equal(m1.weight, make().weight)  # trained, not the fresh model
    kd.cache.train_once("lin", {**recipe, "steps": 4}, make, train_fn, verbose=False)
    assert len(calls) == 2  # another recipe: another file
    path = info1["path"]
    blob = torch.load(path, weights_only=True)
    blob["state"]["bias"] += 1  # corrupted: retrained, not trusted
    torch.save(blob, path)
    _, info3 = kd.cache.train_once("lin", recipe, make, train_fn, verbose=False)
    assert info3["source"] == "trained" and len(calls) == 3
    monkeypatch.setenv("KDLAB_QUICK", "1")  # the quick budget neither reads nor writes
    _, info4 = kd.cache.train_once("lin", recipe, make, train_fn, verbose=False)
    assert info4["source"] == "trained" and len(calls) == 4


def test_write_then_read_and_a_bad_file_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLAB_CACHE", str(tmp_path))
    f = cache.path("things", "a.pt")
    assert f == tmp_path / "things" / "a.pt"
    assert cache.read(f) == (None, "no cache file yet")
    t = torch.arange(6.0).reshape(2, 3)
    assert cache.write(f, {"t": t, "digest": cache.digest(t)}) == f"saved to {f}"
    assert [p.name for p in f.parent.iterdir()] == ["a.pt"]  # no temporary file left
    blob, why = cache.read(f)
    assert why == "" and torch.equal(blob["t"], t) and blob["digest"] == cache.digest(t)
    assert cache.digest(t) != cache.digest(t + 1) and cache.digest({"t": t}) != cache.digest({"u": t})
    f.write_bytes(f.read_bytes()[:50])
    blob, why = cache.read(f)
    assert blob is None and why.startswith("unreadable ("), why
    torch.save([1, 2], f)
    assert cache.read(f) == (None, "not a kdlab cache file (holds a list)")


def test_a_cache_folder_that_cannot_be_written_is_reported_not_fatal(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("a file where the cache folder should be")
    monkeypatch.setenv("KDLAB_CACHE", str(tmp_path / "file"))
    where = cache.write(cache.path("things", "a.pt"), {"t": torch.zeros(1)})
    assert where.startswith("not saved (") and where.endswith("; set KDLAB_CACHE to a writable folder")
