"""The autograder checks the labs call, one per exercise: ``kd.checks.check_<exercise>(fn)``.

Each ``check_<exercise>`` is a ``Check`` object declared once in its lab module (``labNN.py``):
its name, inputs, probe, verdict, mistakes table and parts; calling it runs the check.

Each check runs the student's function on small fixed inputs with known answers. It prints
one line starting with PASSED, or raises AssertionError saying what is wrong and a hint.
"""
from ._common import PASS_MARK  # noqa: F401
from ._registry import CHECKS, Check, bind_probes  # noqa: F401

from . import lab01, lab02, lab03, lab04, lab05, lab06, lab07  # noqa: F401,E402 - they declare the checks

globals().update({check.title: check for check in CHECKS.values()})  # kd.checks.check_<name>
