"""Lab 07's text and models: the bundled Tiny Shakespeare (verified, split), the vocabulary,
the batches, the tiny GPT-2 builders and the measures (nats per character, samples)."""
import math

import pytest
import torch

from kdlab import data, lm, text


def test_text_is_verified_and_split():
    assert len(text.raw()) == text.N_CHARS
    assert len(text.vocab()) == 65
    tr, va = text.ids("train"), text.ids("val")
    assert len(tr) == int(0.9 * text.N_CHARS) and len(tr) + len(va) == text.N_CHARS
    assert text.vocab().decode(tr[:14]) == "First Citizen:"
    assert text.vocab().decode(va[-20:]) == text.raw()[-20:]


def test_corrupt_or_missing_text_is_named(tmp_path):
    bad = tmp_path / "t.txt"
    bad.write_text("To be, or not to be")
    with pytest.raises(data.DataError, match="corrupted.*expected 86c4e6aa.*Repair"):
        text.verify(bad)
    with pytest.raises(data.DataError, match="missing.*Repair"):
        text.verify(tmp_path / "nothing.txt")


def test_vocab_round_trip_and_unknown_characters():
    v = text.vocab()
    s = "ROMEO:\nO, she doth teach the torches to burn bright!"
    assert v.decode(v.encode(s)) == s
    with pytest.raises(ValueError, match="not in the vocabulary"):
        v.encode("café")


def test_windows_are_seeded_and_of_the_right_shape():
    x = text.head(text.ids("train"), 0.01)
    a = list(text.windows(x, 16, 4, 3, seed=1))
    b = list(text.windows(x, 16, 4, 3, seed=1))
    c = list(text.windows(x, 16, 4, 3, seed=2))
    assert all(u.shape == (4, 16) for u in a)
    assert all(torch.equal(u, w) for u, w in zip(a, b))
    assert not all(torch.equal(u, w) for u, w in zip(a, c))
    with pytest.raises(ValueError, match="fraction"):
        text.head(x, 0)
    assert text.chunks(x, 16, max_chars=100).shape == (6, 16)


def test_models_sizes_and_same_init_per_seed():
    t, s = lm.build("teacher"), lm.build("student", seed=3)
    assert 0.8e6 < lm.num_params(t) < 0.85e6 and 0.1e6 < lm.num_params(s) < 0.12e6
    s2 = lm.build("student", seed=3)
    assert all(torch.equal(p, q) for p, q in zip(s.parameters(), s2.parameters()))
    assert not torch.equal(next(lm.build("student", seed=4).parameters()), next(s.parameters()))


def test_untrained_model_is_near_uniform_and_measures_run():
    s = lm.build("student", seed=0)
    nats = lm.nats_per_char(s, text.ids("val"), max_chars=2048)
    assert abs(nats - math.log(65)) < 0.3
    x = lm.sample(s, n=2, length=20, seed=0)
    assert x.shape == (2, 20) and torch.equal(x, lm.sample(s, n=2, length=20, seed=0))
    assert 0 < lm.distinct_ngrams(x, 2) <= 1 and 0 < lm.char_entropy(x) <= math.log(65)
    assert abs(lm.score(s, x) - math.log(65)) < 0.5


def test_shipped_teacher_is_verified_and_better_than_a_student(tmp_path):
    import shutil

    from kdlab import lm_zoo
    from kdlab.teacher import CheckpointError
    meta = lm_zoo.metadata()
    assert meta["recipe"]["made_by"] == "python -m kdlab.lm_zoo --make"
    teacher = lm_zoo.load()
    assert not teacher.training and lm.num_params(teacher) == meta["params"]
    nats = lm.nats_per_char(teacher, text.ids("val"), max_chars=4096)
    assert nats < 2.7 < lm.nats_per_char(lm.build("student"), text.ids("val"), max_chars=4096)
    bad = tmp_path / "t"
    shutil.copytree(lm_zoo.ASSETS, bad)
    with open(bad / lm_zoo.CHECKPOINT, "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    with pytest.raises(CheckpointError, match="corrupted.*python -m kdlab.lm_zoo --make"):
        lm_zoo.load(bad)
    (bad / lm_zoo.METADATA).unlink()
    with pytest.raises(CheckpointError, match="metadata missing"):
        lm_zoo.load(bad)


def test_training_args_freezes_what_is_alive_once(monkeypatch):
    """Trainer.train() begins with a full garbage collection (accelerate's free_memory): the
    first training_args call collects once and freezes the objects then alive (torch,
    transformers), so that every later collection scans only the objects made since."""
    import gc
    monkeypatch.setattr(lm, "_FROZEN", False)
    gc.unfreeze()  # as in a fresh process: nothing frozen yet
    lm.training_args(1)
    frozen = gc.get_freeze_count()
    assert frozen > 10_000 and len(gc.get_objects()) < frozen / 10
    later = [[] for _ in range(1000)]  # made after the first call: left to the collector
    lm.training_args(1)
    assert gc.get_freeze_count() == frozen and len(gc.get_objects()) >= len(later)
