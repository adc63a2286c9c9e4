"""Test-suite default: the quick budget, set before any notebook kernel starts (nbval's
kernels inherit it). Students get the full budget: they do not run pytest.
"""
import os

os.environ.setdefault("KDLAB_QUICK", "1")
