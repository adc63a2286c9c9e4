"""Every check's verdict rejects probe data that is incomplete or not what its probe writes.

In grading the verdict reads JSON displayed by a kernel that runs student code, so it must
never pass on data with cases left out (empty lists), missing keys, or the wrong types.
"""
import pytest
import torch

from kdlab.checks import CHECKS
from kdlab.checks._registry import judge, probe_data


def _emptied(d):
    if isinstance(d, dict):
        return {k: _emptied(v) for k, v in d.items()}
    if isinstance(d, list):
        return []
    return d


def _anything(*args, **kwargs):
    return torch.zeros(3)


@pytest.mark.parametrize("name", sorted(CHECKS))
@pytest.mark.parametrize("forge", ["empty lists", "no keys", "not a dict", "wrong types"])
def test_verdict_rejects_forged_data(name, forge):
    check = CHECKS[name]
    data = probe_data(check, _anything, seed=5)
    forged = {"empty lists": _emptied(data), "no keys": {}, "not a dict": [1, 2, 3],
              "wrong types": {k: "x" for k in data}}[forge]
    with pytest.raises(Exception):  # AssertionError, or a KeyError/TypeError: never a pass
        judge(check, forged, 5)
