"""kdlab: the helper package of the kd-lab course on knowledge distillation.

    import kdlab as kd
    kd.seed(0)
    x, y = kd.data.mnist("train")
    teacher = kd.teacher.load_teacher()
    kd.train.fit(student, kd.data.Batches(x, y), loss_fn, epochs=kd.budget(full=5, quick=1))
    kd.evaluation.evaluate(student, *kd.data.mnist("test"))

The run's policy (``budget``, ``quick``, ``quick_banner``, ``seed``, ``threads``, ``device``)
lives in ``kdlab.runtime`` and is called from the top: ``kd.seed(0)``, ``kd.device()``.
"""
from . import (cache, checks, compress, data, distill, evaluation, lm, lm_zoo, models, plot, runtime,
               stats, teacher, text, train, views, widgets, zoo)
from .runtime import budget, device, quick, quick_banner, seed, threads

__version__ = "0.1.0"
__all__ = ["cache", "checks", "compress", "data", "distill", "evaluation", "lm", "lm_zoo", "models",
           "plot", "runtime", "stats", "teacher", "text", "train", "views", "widgets", "zoo",
           "budget", "device", "quick", "quick_banner", "seed", "threads"]
