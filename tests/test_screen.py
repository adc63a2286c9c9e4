"""The grader's screen: an allow-list of what a graded notebook may use, read from the syntax
tree after IPython's rewriting (magic bodies included), in a process with a time limit."""
import time

import pytest

from kdlab.grading import screen

LAB = ["import kdlab as kd\nimport torch\nimport torch.nn.functional as F\nimport os",
       "print(os.getloadavg())\nfn = kd.distill.loss(4.0, 0.9)"]


def run(src, canonical=None):
    return screen.screen_cells([("cell 1 (id 'x')", src, canonical)], LAB)


HONEST = [
    "def kd_loss(s, t, y, T, alpha):\n    if T <= 0:\n        raise ValueError('T')\n"
    "    soft = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t.detach() / T, 1), reduction='batchmean')\n"
    "    return (1 - alpha) * F.cross_entropy(s, y) + alpha * T * T * soft",
    "%matplotlib inline\nimport math\nclass M(torch.nn.Module):\n    def __init__(self):\n"
    "        super().__init__()\n        self.fc = torch.nn.Linear(2, 2)\n"
    "model = M()\nmodel.eval()\nprint(type(model).__name__, getattr(model, 'fc'))",
    "import numpy as np\nx = np.zeros(3)\nx[0] = 1\nd = {}\nd['a'] = kd.data.mnist",
    "%%time\nfor _ in range(3):\n    y = torch.ones(2)",
    "%timeit -n 3 -r 2 torch.ones(2)",
    "%%capture out\nprint('quiet')",
    "kd.compress.global_prune??",
    "from IPython.display import Markdown, display\ndisplay(Markdown('**done**'))",
    "import functools, copy, itertools, collections\nf = functools.partial(print, 1)",
    "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    print(e)",
]


@pytest.mark.parametrize("src", HONEST)
def test_honest_code_is_not_flagged(src):
    assert run(src) == ""


def test_only_the_statements_a_student_adds_to_a_lab_cell_are_read():
    """A lab cell that imports os stays usable when edited; a new use of os is not."""
    assert run(LAB[1] + "\nprint(fn)", canonical=LAB[1]) == ""
    assert "the name os" in run(LAB[1] + "\nos.system('ls')", canonical=LAB[1])
    assert "the name os" in run("os.listdir('/')")


@pytest.mark.parametrize("src,construct", [
    ("torch.allclose = lambda *a, **k: True", "assigning to torch.allclose"),
    ("from kdlab.checks import _probe\n_probe.tensor = None", "from kdlab.checks import _probe"),
    ("m = kd\nm.checks._probe.provenance = None", "the attribute _probe"),
    ("import sys\nsys.modules['x'] = 1", "import sys"),
    ("exec('1')", "the name exec"),
    ("e = eval\ne('1')", "the name eval"),
    ("setattr(kd, 'x', 1)", "the name setattr"),
    ("getattr(kd, 'lo' + 'sses')", "getattr(..., <computed name>)"),
    ("getattr(kd.checks, '_registry')", "getattr(..., '_registry')"),
    ("get_ipython().input_transformers_post.append(f)", "get_ipython"),
    ("ip = get_ipython()\nip.kernel.get_parent()", "the name get_ipython"),
    ("x = In[-1]", "the name In"),
    ("x = _ih[-1]", "the name _ih"),
    ("%run evil.py", "the magic %run"),
    ("%config Completer.greedy = bool(kd)", "the magic %config"),
    ("!cat /etc/passwd", "get_ipython().system"),
    ("%time import subprocess", "import subprocess"),
    ("%%time\nkd.checks._registry.emit = print", "assigning to kd.checks._registry.emit"),
    ("%%timeit -n 1 import os\nx = 1", "import os"),
    ("%%capture out\nimport ctypes", "import ctypes"),
    ("import concurrent.futures", "import concurrent.futures"),
    ("from unittest import mock", "from unittest import mock"),
    ("import asyncio", "import asyncio"),
    ("import mmap", "import mmap"),
    ("import threading", "import threading"),
    ("import operator", "import operator"),
    ("x = kd.__dict__", "the attribute __dict__"),
    ("x = __builtins__", "the name __builtins__"),
    ("torch.os.system('ls')", "the attribute os"),
    ("torch.multiprocessing.Process", "the attribute multiprocessing"),
    ("g = (i for i in [])\nf = g.gi_frame", "the interpreter attribute gi_frame"),
    ("class T(torch.Tensor):\n    def __torch_function__(cls, *a):\n        pass", "defining __torch_function__"),
    ("/exec 'import os'", "the name exec"),
    ("x = open('/etc/passwd')", "the name open"),
])
def test_each_construct_is_named(src, construct):
    got = run(src)
    assert construct in got, got


def test_a_cell_dressed_as_a_check_is_read_too():
    """The screen reads every cell it is given; the grader gives it every cell that is not
    the lab's own (metadata does not exempt a cell)."""
    from kdlab.grading.gradebook import _student_cells
    lab_nb = {"cells": [{"cell_type": "code", "id": "c", "metadata": {"kdlab": {"check": "x", "points": 1}},
                         "source": "kd.checks.check_x(x)"}]}
    cells = [{"cell_type": "code", "id": "mine", "metadata": {"kdlab": {"check": "extra", "points": 0}},
              "source": "import sys"}, lab_nb["cells"][0]]
    got = _student_cells(cells, lab_nb)
    assert [w for w, _, _ in got] == ["cell 0 (id 'mine')"]


def test_the_screen_has_a_time_limit():
    """A notebook built to be slow to parse (many magics in a long cell) is refused after the
    time limit instead of holding the grader for hours."""
    src = "%time x = 1\n" * 100 + "y = 2\n" * 20000
    t0 = time.monotonic()
    got = screen.run([("cell 0 (id 'slow')", src, None)], LAB, timeout=5)
    assert time.monotonic() - t0 < 90  # unbounded, it takes minutes (hours for 10 MB)
    assert "took longer than 5 s" in got


def test_a_busy_machine_does_not_refuse_an_honest_notebook():
    """The limit is the screen's CPU time, not wall time: an honest notebook whose screen
    process is held still for longer than the limit (a busy grading machine, a loaded CI
    runner) is read and passes; past the wall-clock allowance the grader is told to regrade
    (ScreenBusy, graded as an error), and the notebook is never refused for it."""
    import os
    import signal
    import threading

    import psutil

    def hold(seconds):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            kids = [p for p in psutil.Process().children() if "screen.py" in " ".join(p.cmdline())]
            if kids:
                os.kill(kids[0].pid, signal.SIGSTOP)
                time.sleep(seconds)
                try:
                    os.kill(kids[0].pid, signal.SIGCONT)
                except ProcessLookupError:  # killed while held (past its wall-clock allowance)
                    pass
                return
            time.sleep(0.01)

    t = threading.Thread(target=hold, args=(4,))
    t.start()
    t0 = time.monotonic()
    got = screen.run([("cell 0 (id 'ok')", HONEST[0], None)], LAB, timeout=2)
    t.join()
    assert time.monotonic() - t0 > 4 and got == ""
    t = threading.Thread(target=hold, args=(3,))
    t.start()
    with pytest.raises(screen.ScreenBusy, match="grade this notebook again"):
        screen.run([("cell 0 (id 'ok')", HONEST[0], None)], LAB, timeout=2, wall_factor=1)
    t.join()


def test_too_much_code_is_refused():
    got = screen.screen_cells([("c", "x = 1\n" * 200_000, None)], LAB)
    assert "more than the" in got


def test_lab07_may_subclass_the_trainer_and_nothing_more_of_transformers():
    """Lab 07's exercise subclasses transformers.Trainer: that one name (and TrainingArguments)
    may be imported and used, also when a lab cell imported it; the rest of transformers not."""
    lab = ["import kdlab as kd\nfrom transformers import Trainer"]
    cls = ("class D(Trainer):\n    def compute_loss(self, model, inputs, return_outputs=False):\n"
           "        return model(**inputs).loss")
    assert screen.screen_cells([("cell 1", cls, None)], lab) == ""
    assert screen.screen_cells([("cell 1", "from transformers import Trainer\n" + cls, None)], lab) == ""
    for bad, construct in [("import transformers", "import transformers"),
                           ("from transformers import utils", "from transformers import utils"),
                           ("from transformers.utils import hub", "from transformers.utils import hub"),
                           ("from transformers import _x", "from transformers import _x")]:
        assert construct in screen.screen_cells([("cell 1", bad, None)], lab)
    assert screen.screen_cells([("cell 1", "x = kd.lm.build('student')\ny = kd.text.ids('val')",
                                 None)], lab) == ""
