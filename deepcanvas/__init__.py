"""deepcanvas: backpropagate to the image.

Style transfer, DeepDream, class visualization and feature inversion on one engine; also on video clips.
The names below are imported on first use (PEP 562), so ``import deepcanvas`` and
``deepcanvas --help`` do not pay for torch until a technique is used.

Building blocks for new techniques: :mod:`deepcanvas.render` (``Stage``, the runner
``render.render``, ``Renderer``), :mod:`deepcanvas.objectives`, :mod:`deepcanvas.param`,
:mod:`deepcanvas.transforms` and :func:`load_model`.
"""

from __future__ import annotations

import importlib

from .errors import DeepCanvasError

__version__ = "0.1.0"

# name -> module that defines it
_API = {
    "style_transfer": "techniques.style", "style_transfer_steps": "techniques.style",
    "dream": "techniques.dream", "dream_steps": "techniques.dream",
    "dream_zoom": "techniques.zoom", "dream_zoom_steps": "techniques.zoom",
    "visualize_class": "techniques.classviz", "visualize_class_steps": "techniques.classviz",
    "invert": "techniques.invert", "invert_steps": "techniques.invert", "contact_sheet": "techniques.invert",
    "style_video": "techniques.style_video", "style_video_steps": "techniques.style_video",
    "dream_video": "techniques.dream_video", "dream_video_steps": "techniques.dream_video",
    "atlas": "techniques.atlas", "atlas_steps": "techniques.atlas",
    "load_model": "models", "LayeredNet": "models",
    "Interrupted": "render", "Progress": "render", "Stage": "render", "Renderer": "render", "drive": "render",
}
_MODULES = ("objectives", "param", "transforms", "models", "io", "imaging", "flow", "clip")

__all__ = ["DeepCanvasError", *_API, *_MODULES]


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _API:
        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'deepcanvas' has no attribute {name!r}")
