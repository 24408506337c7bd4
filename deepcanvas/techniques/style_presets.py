"""Style transfer's presets: how the losses are measured and the defaults each preset tunes.

A leaf of the style family, free of torch (the TV objective is built on use), so that
:class:`deepcanvas.options.StyleOptions` can check a preset's rules when it is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ..errors import DeepCanvasError
from ..limits import check_number
from ..signature import check_choice

Preset = Literal["deepcanvas", "neural-style-pt"]
Method = Literal["swd", "gram"]


@dataclass(frozen=True)
class LossSetup:
    """How the losses are measured (see objectives.py)."""

    mode: str  # 'scaled' or 'mse'
    content_weight: float
    style_weight: float
    tv_weight: float
    tv_kind: str  # objectives.TotalVariation's kind, scale and reduction
    tv_scale: float
    tv_reduction: str
    divide_style_weight: bool  # spread style_weight over the layers?
    optimizer: str  # the default one
    multiscale: bool  # the default schedule
    # Weight of OutOfRange under L-BFGS, by measurement: stiff enough that clipping the output barely
    # changes the losses, soft enough not to stall L-BFGS (100x stiffer did).
    range_weight: float
    method: str = "gram"  # the style loss: 'gram' (objectives.Style) or 'swd' (objectives.SlicedWasserstein)
    # Adam's epsilon as a share of the image's mean gradient RMS (render.RelativeEpsAdam); 0: plain Adam.
    adam_eps_rel: float = 0.0
    lr: float | None = None  # Adam's default learning rate (None: 0.02)
    iterations: int = 60
    pad_borders: bool = False  # optimise with a mirrored margin (border_pad), cropped off the result
    # swd: weight of the sliced-Wasserstein term on the RGB values (the palette), as a share of style_weight
    # like each layer's (2/7 or 1/7 by default). Without it chelsea x swirls came out lilac instead of the
    # painting's blues; at 1.0 the palette won over the photo's contours (edge_corr 0.56 at 256 px).
    pixel_weight: float = 0.0
    # swd: positions sorted per step at most (a fresh random subset; None: all), see SlicedWasserstein.
    swd_positions: int | None = None
    # The step falls along half a cosine to this share of itself by the last iteration (1: constant).
    lr_floor: float = 1.0
    # Weights of the model's default style layers, shallow to deep, when none are given (None: equal).
    style_layer_weights: tuple[float, ...] | None = None

    @property
    def tv(self):
        """The TV objective this preset measures (objectives.TotalVariation)."""
        from ..objectives import TotalVariation

        return TotalVariation(self.tv_kind, scale=self.tv_scale, reduction=self.tv_reduction)


def loss_setup(preset: str, method: str | None = None) -> LossSetup:
    """The preset's losses and defaults; ``method`` picks the style loss (default: the preset's own)."""
    if method is not None:
        check_choice("method", method, Method)
    if preset == "neural-style-pt":
        # Exactly neural-style-pt's defaults: MSE content (weight 5), MSE of Grams / (C*H*W),
        # weight 100 per style layer, TV 1e-3 on the L1 differences of 0..255 pixels (summed).
        # Single scale, as neural-style-pt: with this summed L1 TV, coarse-to-fine turned the
        # small sizes' flat patches into blocks (512 px content loss 295 against 198; README).
        setup = LossSetup("mse", 5.0, 100.0, 1e-3, "l1", 255.0, "sum", False, "lbfgs", False, 1e-2)
        if method == "swd":
            raise DeepCanvasError("the neural-style-pt preset is Gram matrices only (method gram)")
        return setup
    if preset == "deepcanvas":
        # Scale-invariant scaled MSE (objectives.py). Single scale from the content image: coarse to fine paints
        # large blobs at 128 px that the bigger sizes cannot undo (tubingen x Starry Night, 384 px: edge_corr
        # 0.74 against ~0.95). Adam with a relative epsilon (render.py) keeps flat areas clean.
        if method == "gram":
            return LossSetup("scaled", 0.3, 1.0, 2.0, "l2", 1.0, "mean", True, "adam", False, 1e-6,
                             method="gram", adam_eps_rel=0.1, pad_borders=True)
        # Sliced Wasserstein: a content weight near 0.1 and a step of 0.05 paint boldly and keep the photo's contours
        # (256 px screens: content weight 0.03 lost edges, 0.3 barely painted). Sorting a random 64k of the
        # positions (relu1_1 has 200k at 512 px) makes a step 0.76x as long, which pays for 52 iterations
        # instead of 40; the step falling to 0.3x settles the last iterates, whose noise cost contours (384 px,
        # 3 pairs: edge_corr 0.829 -> 0.861 and style_ratio 0.559 -> 0.519, better on every pair).
        # The two shallowest style layers count twice: they carry the painting's colours and brush marks, which
        # the content loss at relu4_2 leaves free, while style weight on the deep layers is spent pulling against
        # it (384 px, 3 pairs: relu4_1/relu5_1 x3 gave edge_corr 0.900 / style_ratio 0.688, relu1_1/relu2_1 x3
        # 0.780 / 0.396, against 0.861 / 0.519). Content weight 0.15 gives back some of the contours (2x with 0.15:
        # 0.834 / 0.467; 512 px, 8 pairs: 0.913 / 0.431 against 0.931 / 0.486, lower style_ratio on 7 of 8).
        # Ranking instead of sorting (swd.rank_levels) later made a step about 1.28x faster; spent on 62 iterations
        # it cost contours faster than a lower content weight does (docs/tuning.md), so it is kept as speed.
        return LossSetup("scaled", 0.15, 1.0, 2.0, "l2", 1.0, "mean", True, "adam", False, 1e-6,
                         method="swd", adam_eps_rel=0.1, pad_borders=True, lr=0.05, iterations=52,
                         pixel_weight=0.2, swd_positions=65536, lr_floor=0.3, style_layer_weights=(2, 2, 1, 1, 1))
    check_choice("preset", preset, Preset)
    raise AssertionError(preset)  # every preset is handled above


def strength_weights(strength: float, content_weight: float, style_weight: float,
                     tv_weight: float, *, stepped: bool = False) -> tuple[float, float, float]:
    """(content, style, tv) weights for ``style_strength``: 0.5 keeps them, 0 keeps only the content, 1 drops it.

    The ratio of the painting's side (style, and TV, which only tidies what the style paints) to the
    content is multiplied by (s / (1 - s))^2: x1/9 at 0.25, x9 at 0.75. The larger side's weights never
    grow, so the step sizes stay those the defaults were tuned with. At 0 the content loss alone is
    left, which the content image already minimises: the photo comes back.

    ``stepped`` (Adam, whose step is set by :func:`strength_reach`): below 0.5 the weights stay as they are,
    and the shorter step alone keeps the picture nearer the photo. Adam normalises the gradient, so a
    weaker style term still moves every pixel by about the step: it painted a fine speckle over flat areas
    instead of less of the painting.
    """
    s = check_number("style_strength", strength, minimum=0)
    if s > 1:
        raise DeepCanvasError(f"style_strength must be between 0 and 1, got {strength}")
    if s <= 0.5:
        if stepped:
            return content_weight, style_weight, tv_weight
        k = (s / (1 - s)) ** 2
        return content_weight, style_weight * k, tv_weight * k
    return content_weight * ((1 - s) / s) ** 2, style_weight, tv_weight


def reaches(optimizer: str) -> bool:
    """Does ``style_strength`` act on this optimiser's step and iterations (:func:`strength_reach`)? Not on
    L-BFGS's: its step is its line search's, so its strength is the weights alone."""
    return optimizer != "lbfgs"


def strength_reach(strength: float) -> tuple[float, float]:
    """(step, iterations) multipliers of a first-order optimiser for ``style_strength``: min(1, 2s), max(1, 2s).

    From the photo, 52 steps of Adam take the picture only so far, whatever the weights: at 512 px, the
    content weight 9x and 81x smaller (strengths 0.75 and 0.9) barely changed astronaut x cubist (style_ratio
    0.478 -> 0.441), 1.5x the iterations did (0.378). So a strength above 0.5 also takes more steps (1.5x at
    0.75, at 1.5x the time) and one below takes shorter ones (half at 0.25; 0 leaves the photo as it is).
    """
    s = check_number("style_strength", strength, minimum=0)
    return min(1.0, 2 * s), max(1.0, 2 * s)


#: A painting up to this many times as loud as the photo (mid-level features' RMS, see :func:`loudness_step`)
#: keeps the full step.
LOUDNESS_FREE = 1.5


def loudness_step(loudness: float) -> float:
    """Adam's step multiplier for a painting ``loudness`` times as loud as its photo: 1 up to LOUDNESS_FREE, then
    sqrt(LOUDNESS_FREE / loudness).

    Loudness is the RMS of the painting's features at a mid-level layer (VGG's relu3_1) over the photo's. A
    painting far louder than the photo overwrites the photo's contours within the default's steps (fauvist
    colour fields over a town), so its step shrinks; a quieter one keeps the default step.
    """
    r = check_number("loudness", loudness, minimum=0)
    return 1.0 if r <= LOUDNESS_FREE else math.sqrt(LOUDNESS_FREE / r)


def scale_schedule(size: int, min_size: int, iterations: int, multiscale: bool) -> list[tuple[int, int]]:
    """[(longest side, iterations), ...] from coarse to fine, sizes a factor sqrt(2) apart.

    Smaller sizes are cheap (cost ~ pixels), so they get more iterations: up to
    twice the final size's count, growing as the side shrinks.
    """
    if not multiscale or size <= min_size:
        return [(size, iterations)]
    sizes = []
    s = float(size)
    while round(s) >= min_size:
        sizes.append(round(s))
        s /= math.sqrt(2)
    sizes.reverse()
    return [(s, iterations if s == size else min(2 * iterations, round(iterations * size / s))) for s in sizes]


@dataclass(frozen=True)
class LossWeights:
    """The weights of a run's losses, the preset's defaults and style_strength applied."""

    content: float
    style: float
    tv: float
    range: float  # OutOfRange (L-BFGS's unclipped pixels); 0 under Adam, whose pixels are clipped


def loss_weights(options, setup: LossSetup, optimizer: str) -> LossWeights:
    """The weights for ``options`` (a checked deepcanvas.options.StyleOptions) under its preset's ``setup``."""
    def given(value, default):
        return default if value is None else value

    content, style, tv = strength_weights(options.style_strength, given(options.content_weight, setup.content_weight),
                                          given(options.style_weight, setup.style_weight),
                                          given(options.tv_weight, setup.tv_weight), stepped=reaches(optimizer))
    # L-BFGS's pixels are never clipped (param.py): OutOfRange keeps them in range.
    rng = given(options.range_weight, setup.range_weight) if optimizer == "lbfgs" else 0.0
    return LossWeights(content, style, tv, rng)
