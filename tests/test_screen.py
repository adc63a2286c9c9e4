"""The grader's syntax screen: honest code passes, reference use and tampering are named."""
import pytest

from kdlab.grading import restore, screen

LAB = {"cells": [
    {"cell_type": "code", "id": "setup", "metadata": {},
     "source": "import kdlab as kd\nimport torch\nimport torch.nn.functional as F"},
    {"cell_type": "code", "id": "ex", "metadata": {"kdlab": {"exercise": "kd_loss"}},
     "source": "def kd_loss(s, t, y, T, alpha):\n    raise NotImplementedError"},
    {"cell_type": "code", "id": "chk", "metadata": {"kdlab": {"check": "kd_loss", "points": 3}},
     "source": "kd.checks.check_kd_loss(kd_loss)"},
    {"cell_type": "code", "id": "train", "metadata": {},
     "source": "fn = kd.losses.kd_loss\nkd.train.fit(model, data, fn, 1)"}]}
CHECKS = restore.canonical_checks(LAB)


def run(exercise, extra=None, edit_train=None):
    cells = [dict(c) for c in LAB["cells"]]
    cells[1] = dict(cells[1], source=exercise)
    if edit_train is not None:
        cells[3] = dict(cells[3], source=edit_train)
    if extra:
        cells.insert(2, {"cell_type": "code", "id": "mine", "metadata": {}, "source": extra})
    return screen.screen(cells, LAB, CHECKS)


HONEST = [
    "def kd_loss(s, t, y, T, alpha):\n    if T <= 0:\n        raise ValueError('T')\n"
    "    soft = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t.detach() / T, 1), reduction='batchmean')\n"
    "    return (1 - alpha) * F.cross_entropy(s, y) + alpha * T * T * soft",
    "%matplotlib inline\nimport math\nclass M(torch.nn.Module):\n    def __init__(self):\n"
    "        super().__init__()\n        self.fc = torch.nn.Linear(2, 2)\n"
    "model = M()\nmodel.eval()\nprint(type(model).__name__, getattr(model, 'fc'))",
    "import numpy as np\nx = np.zeros(3)\nx[0] = 1\nd = {}\nd['a'] = kd.data.mnist",
]


@pytest.mark.parametrize("src", HONEST)
def test_honest_code_is_not_flagged(src):
    got = run(src)
    assert got.reference == {} and got.tampering == ""


def test_editing_a_lab_cell_that_uses_references_is_fine():
    got = run(HONEST[0], edit_train="fn = kd.losses.kd_loss\nkd.train.fit(model, data, fn, 3)")
    assert got.reference == {} and got.tampering == ""


@pytest.mark.parametrize("src,extra", [
    ("kd_loss = kd.losses.kd_loss", None),
    ("from kdlab.losses import kd_loss", None),
    ("import kdlab.losses as L\ndef kd_loss(*a):\n    return L.kd_loss(*a)", None),
    ("def kd_loss(*a):\n    return helper(*a)", "def helper(*a):\n    return kd.losses.kd_loss(*a)"),
    ("def kd_loss(*a):\n    raise NotImplementedError", "kd_loss = kd.checks.lab03.reference"),
    ("def kd_loss(*a):\n    return kd.compress.fake_quantize(*a)", None),
])
def test_reference_use_is_named(src, extra):
    got = run(src, extra)
    assert "uses the course's reference implementation" in got.reference.get("kd_loss", "")


@pytest.mark.parametrize("src,construct", [
    ("torch.allclose = lambda *a, **k: True", "assigning to torch.allclose"),
    ("from kdlab.checks import _probe\n_probe.tensor = None", "assigning to _probe.tensor"),
    ("import sys\nsys.modules['x'] = 1", "sys.modules"),
    ("f = sys._getframe(1).f_back", "sys._getframe"),
    ("exec('1')", "exec()"),
    ("setattr(kd, 'x', 1)", "setattr()"),
    ("getattr(kd, 'lo' + 'sses')", "getattr(kd, <computed name>)"),
    ("get_ipython().input_transformers_post.append(f)", "input_transformers_post"),
    ("ip = get_ipython()\nip.events.register('pre_run_cell', f)", "the IPython attribute events"),
    ("%run evil.py", "the magic %run"),
    ("!cat /etc/passwd", "get_ipython().system"),
    ("import subprocess", "import subprocess"),
    ("x = kd.__dict__", "the attribute __dict__"),
    ("import os\nos.system('ls')", "os.system"),
])
def test_tampering_is_named(src, construct):
    got = run("def kd_loss(*a):\n    raise NotImplementedError", src)
    assert construct in got.tampering, got.tampering
