"""deepcanvas: backpropagate to the image.

Style transfer, DeepDream, class visualization and feature inversion on one engine; also on video clips.
The names below are imported on first use (PEP 562), so ``import deepcanvas`` and
``deepcanvas --help`` do not pay for torch until a technique is used.

The techniques are listed once, in :mod:`deepcanvas.registry`. Building blocks for new techniques:
:mod:`deepcanvas.render` (``Stage``, ``Elsewhere``, the runner ``render.render``, ``drive``), :mod:`deepcanvas.objectives`,
:mod:`deepcanvas.param`, :mod:`deepcanvas.transforms` and :func:`load_model`.
"""

from __future__ import annotations

import importlib

from .errors import DeepCanvasError
from . import registry

__version__ = "0.1.0"

# name -> module that defines it: the techniques' two functions each, and the building blocks
_API = registry.api()
_MODULES = ("objectives", "param", "transforms", "models", "io", "imaging", "flow", "clip")

__all__ = ["DeepCanvasError", *_API, *_MODULES]


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _API:
        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'deepcanvas' has no attribute {name!r}")
