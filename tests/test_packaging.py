"""Packaging: the built wheel carries MNIST and the teachers; conda and pip ask for the same pins."""
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(ROOT)], check=True)
    (whl,) = out.glob("kdlab-*.whl")
    return whl


def test_wheel_contains_data_and_teacher(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "SHA256SUMS",
              "PROVENANCE.md"]:
        assert f"kdlab/assets/mnist/{f}" in names
    assert "kdlab/assets/teacher/teacher.pt" in names
    assert "kdlab/assets/teacher/teacher.json" in names
    from kdlab import zoo
    assert "kdlab/assets/zoo/resnet_curve.json" in names
    for name in zoo.names():  # Lab 06's other teachers
        assert f"kdlab/assets/zoo/{name}/teacher.pt" in names
        assert f"kdlab/assets/zoo/{name}/teacher.json" in names
    for f in ["text/tinyshakespeare.txt", "text/PROVENANCE.md", "lm_teacher/teacher.pt",
              "lm_teacher/teacher.json"]:  # Lab 07's text and teacher
        assert f"kdlab/assets/{f}" in names


def test_installed_wheel_loads_its_own_data(wheel, tmp_path):
    """Install the wheel into a bare folder and use it from there, not from the source tree."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True)
    code = ("import kdlab, kdlab.data as d, kdlab.teacher as t; "
            "assert kdlab.__file__.startswith(%r), kdlab.__file__; "
            "d.verify_archives(); t.load_teacher(device='cpu'); "
            "x, y = d.mnist('test'); print(len(y))" % str(target))
    env = dict(os.environ, PYTHONPATH=str(target), KDLAB_CACHE=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "10000"


def _pep508_pins(reqs):
    pins = {}
    for r in reqs:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", r.strip())
        assert m, f"requirement {r!r} is not pinned with =="
        pins[m.group(1).lower()] = m.group(2)
    return pins


def test_environment_yml_matches_pyproject():
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    py = _pep508_pins(proj["dependencies"] + proj["optional-dependencies"]["test"])
    yml = (ROOT / "environment.yml").read_text()
    conda = dict((n.lower(), v) for n, v in re.findall(r"^\s*-\s+([A-Za-z0-9_.\-]+)==(\S+)\s*$",
                                                        yml, flags=re.M))
    assert conda == py
    assert re.search(r"^\s*-\s+-e \.\[test\]\s*$", yml, flags=re.M)


def test_python_version_is_the_same_everywhere():
    """pyproject, environment.yml and the README name one minimum Python: 3.11 (numpy 2.4 and
    the tests' tomllib need it)."""
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert proj["requires-python"] == ">=3.11"
    assert re.search(r"^\s*-\s+python=3\.11\s*$", (ROOT / "environment.yml").read_text(),
                     flags=re.M)
    readme = (ROOT / "README.md").read_text()
    assert "Python 3.11 or newer" in readme
    assert not re.search(r"Python 3\.(?:[0-9]|10)\b", readme)
    assert sys.version_info >= (3, 11)
