"""deepcanvas: backpropagate to the image.

Style transfer, DeepDream, class visualization and feature inversion on one engine.
"""

from .errors import DeepCanvasError
from .models import load_model
from .render import Interrupted, Progress
from .techniques.classviz import visualize_class, visualize_class_steps
from .techniques.dream import dream, dream_steps, dream_zoom
from .techniques.invert import contact_sheet, invert, invert_steps
from .techniques.style import style_transfer, style_transfer_steps

__version__ = "0.1.0"

__all__ = [
    "DeepCanvasError",
    "contact_sheet",
    "invert",
    "invert_steps",
    "visualize_class",
    "visualize_class_steps",
    "dream",
    "dream_steps",
    "dream_zoom",
    "Interrupted",
    "Progress",
    "load_model",
    "style_transfer",
    "style_transfer_steps",
]
