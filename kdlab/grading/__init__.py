"""Instructor-only: grading submissions into a gradebook, and the answer keys it judges with.

    python -m kdlab.grading collect | grade | merge | answers | export | gradescope | validate

Modules, in the order a grading uses them: ``collect`` (an LMS's download -> one folder per
student and a roster), ``course`` (where the labs and solutions are; each lab's checks),
``pick`` (which notebook of a student's folder is graded), ``notebook_io`` (read, validate,
write notebooks deterministically), ``markers`` (the solutions' markers and the student version
of a cell, also what generates labs/),
``restore`` (put the canonical check cells back into a copy of a submission; draw the
probes' secret inputs), ``screen`` (what a graded notebook may use), ``sandbox`` and
``runner`` (execute that copy with nbval in a sandboxed kernel under limits), ``nbval_plugin``
(the pytest plugin that reports per-cell results), ``scoring`` (judge each check in the
grader's process: typed rows), ``report`` (the CSV, feedback files, merging gradebooks),
``answers`` (free-text answers out, manual scores in), ``lms`` (the files each LMS imports);
``gradebook`` runs that pipeline over a folder of submissions, ``gradescope`` on
Gradescope's workers. ``keys`` holds the answer keys
(reference implementations and mistakes). Making the course (labs/, keys, the solutions'
outputs, the release) is ``kdlab.authoring``'s job. Neither the student release nor the
grading sandbox contains either package (``sandbox.INSTRUCTOR_ONLY``; the release has copies
of ``pick`` and ``screen``, for ``kdlab.validate``).
"""
from .gradebook import GradingCancelled, grade_submissions
from .markers import MarkerError
from .notebook_io import NotebookError

__all__ = ["grade_submissions", "GradingCancelled", "MarkerError", "NotebookError"]
