"""deepcanvas: backpropagate to the image.

Style transfer, DeepDream, class visualization and feature inversion on one engine.
"""

from .errors import DeepCanvasError
from .models import load_model
from .render import Interrupted, Progress
from .techniques.dream import dream, dream_steps, dream_zoom
from .techniques.style import style_transfer, style_transfer_steps

__version__ = "0.1.0"

__all__ = [
    "DeepCanvasError",
    "dream",
    "dream_steps",
    "dream_zoom",
    "Interrupted",
    "Progress",
    "load_model",
    "style_transfer",
    "style_transfer_steps",
]
