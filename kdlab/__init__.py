"""kdlab: the helper package of the kd-lab course on knowledge distillation.

    import kdlab as kd
    kd.seed(0)
    x, y = kd.data.mnist("train")
    teacher = kd.teacher.load_teacher()
    kd.train.fit(student, kd.data.Batches(x, y), loss_fn, epochs=kd.budget(full=5, quick=1))
    kd.evaluation.evaluate(student, *kd.data.mnist("test"))

The run's policy (``budget``, ``quick``, ``quick_banner``, ``seed``, ``threads``, ``device``)
lives in ``kdlab.runtime`` and is called from the top: ``kd.seed(0)``, ``kd.device()``.

The submodules load on first use (``kd.plot`` imports matplotlib when a notebook first
touches it, not when kdlab is imported); ``dir(kd)`` and tab completion list them all.
"""
from . import lm  # noqa: F401 - on import, sets Hugging Face's offline switches before a notebook imports transformers
from . import runtime  # noqa: F401
from .runtime import budget, device, quick, quick_banner, seed, threads

__version__ = "0.1.0"
_SUBMODULES = ("cache", "checks", "compress", "data", "distill", "evaluation", "lm", "lm_zoo", "models",
               "plot", "runtime", "stats", "teacher", "text", "train", "views", "widgets", "zoo")
__all__ = list(_SUBMODULES) + ["budget", "device", "quick", "quick_banner", "seed", "threads"]


def __getattr__(name: str):
    """``kd.<submodule>``: import it on first use (PEP 562)."""
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    """The submodules too, loaded or not (tab completion)."""
    return sorted(set(globals()) | set(__all__))
