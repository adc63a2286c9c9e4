"""The autograder checks the labs call, one per exercise: ``kd.checks.check_<exercise>(fn)``.

Each ``check_<exercise>`` is a ``Check`` object declared once in its lab module (``labNN.py``):
its name, inputs, probe, verdict, mistakes table and parts; calling it runs the check.

Each check runs the student's function on small fixed inputs with known answers. It prints
one line starting with PASSED, or raises AssertionError saying what is wrong and a hint.
"""
from ._common import PASS_MARK  # noqa: F401
from ._registry import CHECKS, Check, bind_probes  # noqa: F401

# one import line per lab module below
from .lab01 import check_entropy, check_gradient_scale, check_softmax_with_temperature  # noqa: F401,E501
from .lab02 import check_class_similarity, check_dark_knowledge  # noqa: F401
from .lab03 import check_distill_step, check_kd_loss  # noqa: F401
from .lab04 import check_hint_loss, check_hint_regressor  # noqa: F401
from .lab05 import check_fake_quantize, check_prune_mask  # noqa: F401
from .lab06 import check_dkd_loss, check_permute_dark_knowledge  # noqa: F401
from .lab07 import check_distill_trainer, check_token_kd_loss  # noqa: F401
