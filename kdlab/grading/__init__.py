"""Instructor tooling: generate labs/ from solutions/ and grade submissions into a gradebook.

    python -m kdlab.grading make-labs [--check]
    python -m kdlab.grading grade SUBMISSIONS_DIR --out gradebook.csv

Modules: ``notebook_io`` (read, validate, write notebooks byte-for-byte deterministically),
``generator`` (solutions -> labs), ``restore`` (put the canonical check cells back into a copy
of a submission), ``runner`` (execute that copy with nbval under time and output limits),
``nbval_plugin`` (the pytest plugin that reports per-cell results), ``gradebook`` (grade a
folder of submissions in parallel; write the CSV and the feedback files).
"""
from .generator import MarkerError, generate_lab, make_labs
from .gradebook import GradingCancelled, grade_submissions
from .notebook_io import NotebookError

__all__ = ["make_labs", "generate_lab", "grade_submissions", "GradingCancelled", "MarkerError",
           "NotebookError"]
