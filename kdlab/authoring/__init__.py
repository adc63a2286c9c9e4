"""Instructor-only: making the course from solutions/: labs, answer keys, saved outputs, release.

    python -m kdlab.authoring make-labs | make-keys | refresh-outputs | release

Modules: ``generator`` (labs/ from solutions/: answers and hidden tests out, outputs
cleared), ``outputs`` (re-execute the solutions at the full budget and save their outputs),
``release`` (what an instructor hands to students). The answer keys live beside the grader
that judges with them (``kdlab.grading.keys``); ``make-keys`` writes the shipped keys of the
notebooks' own cases. Neither the student release nor the grading sandbox contains this
package (``kdlab.grading.sandbox.INSTRUCTOR_ONLY``).
"""
from .generator import generate_lab, make_labs

__all__ = ["generate_lab", "make_labs"]
