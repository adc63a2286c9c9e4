"""nbformat, imported without the grammar jsonschema would otherwise compile on import.

jsonschema imports the optional package rfc3987_syntax when it is installed (JupyterLab's
jupyter-events asks for it), which compiles 39 grammars: about 1.7 s of CPU in every process
that imports nbformat (make-labs, validate, refresh-outputs, the grader). It serves only the
"iri" string formats, which nbformat's notebook schema never checks; without it jsonschema
validates notebooks exactly as before. (The grader's nbval runs do the same in
``kdlab/grading/nbval_plugin.py``, a standalone file.)

    from kdlab._nbformat import nbformat
"""
import sys

sys.modules.setdefault("rfc3987_syntax", None)

import nbformat  # noqa: E402

__all__ = ["nbformat"]
