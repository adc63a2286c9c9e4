"""The course's interactive explorers (ipywidgets), one function per explorer.

Each explorer draws its initial figure when created, so a notebook executed headless (nbval)
shows a picture and raises no error; in JupyterLab the sliders redraw it in place.
"""
from __future__ import annotations
