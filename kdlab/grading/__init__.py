"""Instructor tooling: generate labs/ from solutions/, answer keys, and grading.

    python -m kdlab.grading make-labs | make-keys | collect | grade | merge | answers | export
                            | gradescope | validate | release
                            | refresh-outputs

Modules, in the order a grading uses them: ``collect`` (an LMS's download -> one folder per
student and a roster), ``course`` (where the labs and solutions are; each lab's checks),
``pick`` (which notebook of a student's folder is graded), ``notebook_io`` (read, validate,
write notebooks deterministically),
``restore`` (put the canonical check cells back into a copy of a submission; draw the
probes' secret inputs), ``screen`` (what a graded notebook may use), ``sandbox`` and
``runner`` (execute that copy with nbval in a sandboxed kernel under limits), ``nbval_plugin``
(the pytest plugin that reports per-cell results), ``scoring`` (judge each check in the
grader's process: typed rows), ``report`` (the CSV, feedback files, merging gradebooks),
``answers`` (free-text answers out, manual scores in), ``lms`` (the files each LMS imports);
``gradebook`` runs that pipeline over a folder of submissions, ``gradescope`` on
Gradescope's workers. ``keys`` holds the answer keys
(reference implementations and mistakes); ``generator`` and ``release`` make what students get;
``outputs`` re-executes the solutions and saves their outputs.
Neither the student release nor the grading sandbox contains this package (the release has
copies of ``pick`` and ``screen``, for ``kdlab.validate``).
"""
from .generator import MarkerError, generate_lab, make_labs
from .gradebook import GradingCancelled, grade_submissions
from .notebook_io import NotebookError

__all__ = ["make_labs", "generate_lab", "grade_submissions", "GradingCancelled", "MarkerError",
           "NotebookError"]
