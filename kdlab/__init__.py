"""kdlab: the helper package of the kd-lab course on knowledge distillation.

    import kdlab as kd
    x, y = kd.data.mnist("train")
    teacher = kd.teacher.load_teacher()
    kd.train.fit(student, kd.data.Batches(x, y), loss_fn, epochs=kd.budget(full=5, quick=1))
"""
from . import (cache, checks, compress, data, lm, lm_zoo, models, plot, runtime, stats, teacher, text,
               train, views, widgets, zoo)
from .runtime import budget, quick

__version__ = "0.1.0"
__all__ = ["cache", "checks", "compress", "data", "lm", "lm_zoo", "models", "plot", "runtime", "stats",
           "teacher", "text", "train", "views", "widgets", "zoo", "budget", "quick"]
