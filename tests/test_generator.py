"""solutions -> labs generator: markers, cleaning, determinism, and the committed labs/."""
import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from kdlab.authoring import generator
from kdlab.grading import markers, notebook_io
from kdlab.authoring.__main__ import main
from kdlab.authoring.generator import make_labs
from kdlab.grading.markers import MarkerError, strip_source
from kdlab.grading.notebook_io import NotebookError

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob(markers.NOTEBOOK_GLOB))


def solution_nb():
    """A small solution notebook with executed outputs, volatile metadata and every marker."""
    ex = new_code_cell(
        "def f(x):\n    y = x + 1\n    ### BEGIN SOLUTION\n    return y * 2\n    ### END SOLUTION\n",
        id="ex-f", metadata={"kdlab": {"exercise": "f"}, "execution": {"iopub.status.busy": "2026"},
                              "scrolled": True, "tags": ["keep"]},
        execution_count=3, outputs=[new_output("stream", name="stdout", text="hi\n")])
    check = new_code_cell("kd.checks.check_f(f)", id="check-f", execution_count=4,
                          metadata={"kdlab": {"check": "f", "points": 2}})
    hidden = new_code_cell("x = 1\n### BEGIN HIDDEN TESTS\nassert f(1) == 4\n### END HIDDEN TESTS\n",
                           id="hidden")
    md = new_markdown_cell("Why?\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION", id="why")
    nb = new_notebook(cells=[new_markdown_cell("# Lab", id="intro"), ex, check, hidden, md],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                               "language": "python"},
                                "language_info": {"name": "python", "version": "3.11.2"},
                                "widgets": {"application/vnd.jupyter.widget-state+json": {}}})
    return nb


def write(nb, path):
    nbformat.write(nb, str(path))
    return path


def test_solution_block_becomes_stub_at_marker_indentation():
    src = "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\nprint(1)"
    assert strip_source(src) == ("def f(x):\n    # YOUR CODE HERE\n"
                                 "    raise NotImplementedError\nprint(1)")


def test_hidden_tests_removed_and_markdown_answer():
    assert strip_source("a = 1\n### BEGIN HIDDEN TESTS\nassert a\n### END HIDDEN TESTS\n") == "a = 1\n"
    assert strip_source("Q\n### BEGIN SOLUTION\nA\n### END SOLUTION", markdown=True) == "Q\nYOUR ANSWER HERE"


@pytest.mark.parametrize("src, words", [
    ("### BEGIN SOLUTION\nx = 1", "never closed"),
    ("x = 1\n### END SOLUTION", "without a matching"),
    ("### BEGIN SOLUTION\n### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS\n### END SOLUTION", "inside"),
    ("### BEGIN HIDDEN TESTS\n### END SOLUTION", "without a matching"),
])
def test_bad_markers_are_errors_naming_the_cell(src, words):
    with pytest.raises(MarkerError, match=words) as e:
        strip_source(src, where="sol.ipynb: cell 3 (id 'ex')")
    assert "sol.ipynb: cell 3 (id 'ex')" in str(e.value)


def test_generated_lab_is_clean(tmp_path):
    lab = generator.generate_lab(notebook_io.loads(nbformat.writes(solution_nb())), "sol")
    cells = {c["id"]: c for c in lab["cells"]}
    assert [c["id"] for c in lab["cells"]] == ["intro", "ex-f", "check-f", "hidden", "why"]
    assert cells["ex-f"]["source"] == ("def f(x):\n    y = x + 1\n    # YOUR CODE HERE\n"
                                       "    raise NotImplementedError\n")
    assert cells["ex-f"]["outputs"] == [] and cells["ex-f"]["execution_count"] is None
    assert cells["ex-f"]["metadata"] == {"kdlab": {"exercise": "f"}, "tags": ["keep"]}
    assert cells["check-f"]["metadata"] == {"kdlab": {"check": "f", "points": 2},
                                            "editable": False, "deletable": False}
    assert cells["hidden"]["source"] == "x = 1\n"
    assert cells["why"]["source"] == "Why?\nYOUR ANSWER HERE"
    assert lab["metadata"] == {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                              "language": "python"},
                               "language_info": {"name": "python"}}
    nbformat.validate(nbformat.from_dict(json.loads(notebook_io.dumps(lab))))


def test_make_labs_is_deterministic_and_check_mode(tmp_path):
    sol, labs = tmp_path / "solutions", tmp_path / "labs"
    sol.mkdir()
    write(solution_nb(), sol / "01_x.ipynb")
    logs = []
    assert make_labs(sol, labs, log=logs.append) == 0
    first = (labs / "01_x.ipynb").read_bytes()
    assert first.endswith(b"}\n") and b"\r" not in first
    assert make_labs(sol, labs, check=True, log=logs.append) == 0
    # same bytes when generated again, also from a re-serialised solution
    nb = nbformat.read(str(sol / "01_x.ipynb"), as_version=4)
    nb.cells[1].outputs = []
    nb.cells[1].metadata["execution"] = {"iopub.execute_input": "2027"}
    write(nb, sol / "01_x.ipynb")
    assert make_labs(sol, labs, log=logs.append) == 0
    assert (labs / "01_x.ipynb").read_bytes() == first
    # a hand edit of labs/ is caught by --check
    (labs / "01_x.ipynb").write_bytes(first.replace(b"YOUR CODE HERE", b"my code"))
    logs.clear()
    assert make_labs(sol, labs, check=True, log=logs.append) == 1
    assert any("differs" in line for line in logs)
    (labs / "02_stale.ipynb").write_bytes(first)
    assert make_labs(sol, labs, check=True, log=logs.append) == 1
    assert any("02_stale.ipynb has no solution" in line for line in logs)


def test_malformed_solution_is_a_clear_error(tmp_path):
    sol = tmp_path / "solutions"
    sol.mkdir()
    (sol / "01_bad.ipynb").write_text('{"cells": [', encoding="utf-8")
    logs = []
    assert make_labs(sol, tmp_path / "labs", log=logs.append) == 2
    assert "01_bad.ipynb" in logs[0] and "not valid JSON" in logs[0]
    with pytest.raises(NotebookError, match="nbformat 4"):
        notebook_io.loads('{"cells": [], "nbformat": 3}', "x.ipynb")
    nb = solution_nb()
    nb.cells[1].source = "### BEGIN SOLUTION\nx = 1"
    write(nb, sol / "01_bad.ipynb")
    logs.clear()
    assert make_labs(sol, tmp_path / "labs", log=logs.append) == 2
    assert "01_bad.ipynb: cell 1 (id 'ex-f')" in logs[0] and "never closed" in logs[0]


def test_cli_check_mode(tmp_path, capsys):
    sol = tmp_path / "solutions"
    sol.mkdir()
    write(solution_nb(), sol / "01_x.ipynb")
    args = ["make-labs", "--solutions", str(sol), "--labs", str(tmp_path / "labs")]
    assert main(args + ["--check"]) == 1
    assert "01_x.ipynb is missing" in capsys.readouterr().out
    assert main(args) == 0
    assert main(args + ["--check"]) == 0


@pytest.mark.skipif(not SOLUTIONS, reason="no solutions/NN_*.ipynb yet")
def test_committed_labs_match_solutions():
    logs = []
    code = make_labs(ROOT / "solutions", ROOT / "labs", check=True, log=logs.append)
    assert code == 0, "labs/ are out of date:\n" + "\n".join(logs)


def test_making_the_course_is_kdlab_authoring(capsys):
    """The authoring commands live in kdlab.authoring; the grader's command line names the
    right one instead of running them."""
    from kdlab.grading.__main__ import main as grading_main
    for verb in ("make-labs", "make-keys", "refresh-outputs", "release"):
        assert grading_main([verb, "--check"]) == 2
        assert f"run python -m kdlab.authoring {verb} --check" in capsys.readouterr().out
    assert main(["make-keys", "--check"]) == 0
    assert "answer keys: up to date" in capsys.readouterr().out
