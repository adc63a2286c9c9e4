"""Every check's mistakes table and its answer key name the same mistakes, in every lab.

A check (``kdlab.checks.Check``) carries its mistakes table; its key maker, on the instructor's
side, is joined to it by the check object (``kdlab.grading.keys.key_of``). A verdict names a
mistake by finding the key's entry [name, values, fields] whose values the student's match,
and looks up what to say in the table: an entry without a table row would crash the verdict
on the student whose answer matches it, and a keyed row without an entry is a message no
student can ever get.
"""
from __future__ import annotations

import inspect
import json
import sys

import pytest

from kdlab.checks import CHECKS
from kdlab.checks._registry import Check, answer_key
from kdlab.grading import keys


def named_entries(key) -> set:
    """The names of every [name, values, fields] entry anywhere in a key (plain data)."""
    out = set()
    if isinstance(key, list):
        if key and all(isinstance(e, list) and len(e) == 3 and isinstance(e[0], str)
                       and isinstance(e[2], dict) for e in key):
            out |= {e[0] for e in key}
        for e in key:
            out |= named_entries(e)
    elif isinstance(key, dict):
        for v in key.values():
            out |= named_entries(v)
    return out


def test_every_check_has_one_key_maker_joined_by_the_object():
    assert sorted(CHECKS) == sorted(keys.KEYS)
    for name, check in CHECKS.items():
        assert isinstance(check, Check) and check.name == name
        assert keys._table.CHECK_OF[name] is check, name
        assert check.key_file.name == f"{name}.json" and check.key_file.is_file()


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_mistakes_table_and_key_name_the_same_mistakes(name):
    """For the notebook's cases (the shipped key) and for fresh inputs (a key computed now):
    every key entry has its row in the table, and every keyed row its entry in the key."""
    check = CHECKS[name]
    table = {m.name for m in check.mistakes}
    keyed = {m.name for m in check.mistakes if m.keyed}
    shipped = json.loads(check.key_file.read_text(encoding="utf-8"))
    fresh = keys.make(check, check.inputs(7))
    for label, key in (("shipped", shipped), ("fresh", fresh), ("decoded", answer_key(check))):
        got = named_entries(key)
        assert got <= table, f"{name} ({label}): key entries with no row in the mistakes table: {sorted(got - table)}"
        assert got == keyed, f"{name} ({label}): keyed mistakes with no key entry: {sorted(keyed - got)}"


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_mistakes_named_without_a_key_are_used_by_their_verdict(name):
    """A row marked keyed=False is recognised by the verdict's own reading of the data: its
    name must be spelled in the check's module besides its row."""
    check = CHECKS[name]
    source = inspect.getsource(sys.modules[check.verdict.__module__])
    for m in check.mistakes:
        if not m.keyed:
            assert source.count(f'"{m.name}"') >= 2, f"{name}: mistake {m.name} is never named by the verdict"


def test_a_key_entry_without_a_table_row_is_caught():
    """The walk above finds entries at any depth (the test cannot pass vacuously)."""
    key = {"cases": [{"expected": [1.0], "mistakes": [["no_T", [2.0], {}], ["bits", [3.0], {"x": 1}]]}],
           "other": [[1, 2, 3]]}
    assert named_entries(key) == {"no_T", "bits"}
    assert named_entries({"a": [["x", 1, {}]], "b": {"c": [["y", [], {}]]}}) == {"x", "y"}


@pytest.mark.parametrize("name", sorted(n for n, c in CHECKS.items() if c.parts))
def test_every_part_of_a_verdict_is_judged(name):
    """A check's declared parts (on which a cell may split its points) each have their block
    in the verdict, so a right answer earns every one of them."""
    check = CHECKS[name]
    source = inspect.getsource(check.verdict)
    for p in check.parts:
        assert f'check.part("{p}")' in source, f"{name}: part {p!r} is never judged"


def test_keys_made_in_two_grader_threads_are_the_keys_made_alone():
    """The grader scores two notebooks at a time in threads of one process, and makes inputs
    and keys under RNG_LOCK (restore.draw, scoring.verdict): a key that samples
    (on_policy_batch) made while the other thread makes keys and inputs that seed torch's
    global generator (hint_regressor's reference calls, distill_step's training, on_policy's
    models) is the key made alone: a right answer is not failed by the other thread's draws."""
    import threading

    from kdlab.checks._registry import RNG_LOCK

    def key(name, seed):  # as the grader makes one
        with RNG_LOCK:
            return keys.public_text(name, CHECKS[name].inputs(seed))

    alone = {s: key("on_policy_batch", s) for s in (11, 12)}
    stop, got, errors = threading.Event(), [], []

    def noisy():
        try:
            while not stop.is_set():
                for name in ("hint_regressor", "distill_step", "on_policy_batch", "permute_dark_knowledge"):
                    key(name, 5)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t = threading.Thread(target=noisy)
    t.start()
    try:
        for _ in range(4):
            for s in (11, 12):
                got.append((s, key("on_policy_batch", s)))
    finally:
        stop.set()
        t.join()
    assert not errors, errors
    assert all(text == alone[s] for s, text in got), "a key differed when made beside another thread"
