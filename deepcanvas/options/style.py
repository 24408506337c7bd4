"""Style transfer's options: how a still picture starts (StillOptions) and how style transfer paints
(StyleOptions, shared by style transfer, a batch and style video)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence, get_args

from .. import limits
from ..errors import DeepCanvasError
from ..signature import check_record
from ..techniques.style_presets import Method, Preset, loss_setup
from .common import option

Colors = Literal["style", "luma", "luminance", "histogram"]
Init = Literal["content", "palette", "noise", "blend"]
Optimizer = Literal["adam", "lbfgs"]
INITS = get_args(Init)


@dataclass(frozen=True)
class StillOptions:
    """How a still picture is started and scheduled: its size, its first pixels, its scales. (A video's frames
    start from the previous frame's output instead, and a frame's size is the clip's.)"""

    size: int = option(512, "longest side of the output in pixels.", integer=True, positive=True)
    init: Init | str = option(
        "content", "start from content, palette (the photo recoloured to the paintings' colour mean and "
                   "covariance), noise, blend (of content and noise), or an image file.")
    init_noise: float = option(0.5, "share of noise in a blend init.", minimum=0)
    multiscale: bool | None = option(
        None, "coarse-to-fine schedule from min_size up to size (default off: single scale from the content).")
    min_size: int = option(128, "longest side of the first, coarsest scale.", integer=True, positive=True)

    def __post_init__(self):
        check_record(self)
        if self.init not in INITS and not Path(str(self.init)).exists():
            raise DeepCanvasError(f"init must be one of {', '.join(INITS)} or an image file; '{self.init}' is "
                                  "neither")


@dataclass(frozen=True)
class StyleOptions:
    """How style transfer paints, as given (None: the preset's default), checked when built.

    Shared by style transfer, a batch of images and style video, so that they cannot drift apart.
    """

    style_blend_weights: Sequence[float] | str | None = option(
        None, 'one weight per style image, e.g. "3,1" (default: equal).')
    style_scale: float = option(1.0, "style image size relative to the output size.", positive=True)
    content_layers: str | None = option(
        None, 'content layers with optional weights, e.g. "relu4_2:0.7,relu5_2:0.3".')
    content_scale: int = option(
        1, "compute the content loss on the picture downsampled 2 or 4 times (1: full size), so that it holds "
           "the composition and contours and leaves the fine texture to the style.", integer=True, positive=True)
    style_layers: str | None = option(None, 'style layers with optional weights, e.g. "relu1_1,relu2_1:2".')
    content_weight: float | None = option(None, "weight of the content loss (default from the preset).", minimum=0)
    style_weight: float | None = option(None, "weight of the style loss (default from the preset).", minimum=0)
    tv_weight: float | None = option(None, "weight of the total-variation loss (default from the preset).",
                                     minimum=0)
    range_weight: float | None = option(
        None, "weight of the penalty that keeps L-BFGS's unclipped pixels in [0, 1] (default from the preset; "
              "0 for none, as in neural-style-pt itself).", minimum=0)
    preset: Preset = option("deepcanvas", "loss definitions and default weights: deepcanvas or neural-style-pt.")
    method: Method | None = option(
        None, "style loss: swd (sliced Wasserstein: sorted random projections of the features, Heitz et al. "
              "2021; the deepcanvas default) or gram (Gram matrices, Gatys et al.; neural-style-pt's).")
    style_strength: float = option(
        0.5, "from 0 (the photo) to 1 (the painting's texture alone): 0.5 is the default look, higher paints more "
             "boldly (a weaker content_weight and more iterations: 1.5x at 0.75), lower keeps more of the photo "
             "(shorter steps under Adam, a weaker style_weight under L-BFGS).",
        minimum=0)
    adaptive_step: bool = option(
        True, "under Adam, shorten the step for a painting much louder than the photo (its mid-level features over "
              "1.5x as strong as the photo's), so that the photo's contours survive it; off: the same step for "
              "every pair. An explicit lr is kept as given.")
    optimizer: Optimizer | None = option(
        None, "adam or lbfgs (default from the preset: adam for deepcanvas, lbfgs for neural-style-pt).")
    lr: float | None = option(None, "learning rate (default 1 for lbfgs, 0.02 for adam).", positive=True)
    line_search: bool = option(
        True, "L-BFGS with a strong-Wolfe line search (off: neural-style-pt's plain L-BFGS, which can overshoot "
              "and stall).")
    adam_beta1: float = option(0.9, "Adam's beta1.")
    adam_beta2: float = option(0.999, "Adam's beta2.")
    adam_eps: float = option(1e-8, "Adam's epsilon.")
    adam_eps_rel: float | None = option(
        None, "Adam's epsilon as a share of the image's mean gradient size, so that pixels with tiny gradients "
              "(flat skies) take tiny steps rather than full ones (default from the preset; 0 for plain Adam).",
        minimum=0)
    iterations: int | None = option(
        None, "iterations at the full size (smaller sizes get more; a video's first frame; default from the "
              "preset; times 2 x style_strength above 0.5 under Adam).", integer=True,
        positive=True)
    colors: Colors = option(
        "style", "style (the painting's colours), luma (keep the content's colours by swapping luminance), "
                 "luminance (luminance-only transfer), histogram (recolour the style images to the content's "
                 "palette first).")
    original_colors: bool = option(False, "keep the content's colours (same as colors=luma).")
    mask: str | None = option(
        None, "image of where to paint: white gets the style, black keeps the photo, grey is in between (any "
              "size and mode: luminance, or alpha where it has transparency).")
    style_masks: str | None = option(
        None, "one mask image per style image, comma-separated: each style paints its own region.")
    content_map: str | None = option(
        None, "colour-labelled map of the content image (semantic style transfer, with style_map).")
    style_map: str | None = option(
        None, "colour-labelled map of the style image (one per style image, comma-separated): each colour of "
              "the content map takes its texture from the same colour's region of the painting.")
    feather: float = option(
        0.01, "soft edge of the masks and maps, as a share of the image's longest side (0: hard edges).",
        minimum=0)
    # The smallest tile holds 4 tile margins (techniques.style_targets.TILE_MARGIN): limits.py says how many px.
    tile: int = option(
        1024, "sizes above this are computed in tiles of this many pixels, so memory is bounded by the tile.",
        integer=True, minimum=limits.range_of("tile", "style_transfer_steps").minimum)

    def __post_init__(self):
        if self.original_colors:
            object.__setattr__(self, "colors", "luma")
        check_record(self)
        if self.content_scale not in (1, 2, 4):  # factors that divide the tiles' 16 px alignment
            raise DeepCanvasError(f"content_scale must be 1, 2 or 4, got {self.content_scale}")
        setup = self.setup  # the preset's own rules (neural-style-pt is Gram matrices only)
        if setup.method == "swd" and (self.optimizer or setup.optimizer) == "lbfgs":
            # L-BFGS's curvature model and line search assume one fixed function; new projections each step
            # break both.
            raise DeepCanvasError("method swd draws new random projections every step; use optimizer adam with it")

    @property
    def setup(self):
        """The preset's losses and defaults, for this method (techniques.style_presets.LossSetup)."""
        return loss_setup(self.preset, self.method)
