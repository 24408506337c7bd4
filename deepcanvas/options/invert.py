"""Feature inversion's options (with NetworkOptions and RunOptions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..signature import check_record
from .common import option
from .style import Optimizer

Loss = Literal["normalized", "l2"]
ParamKind = Literal["auto", "pixel", "fourier", "pyramid", "dip"]


@dataclass(frozen=True)
class InvertOptions:
    """Which layers are inverted, and the priors and optimiser that rebuild the image (None: a default that
    depends on the layer or the parameterisation)."""

    layer: str | None = option(None, "the layer to invert (default: the model's invert layer).")
    layers: str | None = option(None, 'several layers, each inverted on its own, e.g. "relu1_2,relu3_3,relu5_3".')
    size: int = option(224, "longest side of the output in pixels.", integer=True, positive=True)
    iterations: int | None = option(
        None, "optimisation steps per layer (default: 600 down to relu3_x, 300 from relu4_x on and on dip).",
        integer=True, positive=True)
    lr: float | None = option(
        None, "learning rate (default 0.05 for adam on pixels, fourier or pyramid, 0.01 for adam on dip, 1 for "
              "lbfgs).", positive=True)
    optimizer: Optimizer = option("adam", "adam or lbfgs.")
    loss: Loss = option(
        "normalized", "normalized (Mahendran & Vedaldi's distance over the target's energy) or l2 (mean squared "
                      "error).")
    alpha: float = option(6.0, "exponent of the alpha-norm prior.", positive=True)
    alpha_weight: float = option(
        1e-3, "weight of the alpha-norm prior (a guard against pixels running off; Adam also clips).", minimum=0)
    beta: float = option(2.0, "exponent of the total-variation prior.", positive=True)
    tv_weight: float | None = option(
        None, "weight of the TV^beta prior (default: 2 times the square root of the layer's stride, so deeper "
              "layers get more, as in M&V).", minimum=0)
    colour_weight: float | None = option(
        None, "weight of a natural-colour prior (a Gaussian over ImageNet's colours, never the photo's; default: "
              "0.01 on dip, 0 on the others).", minimum=0)
    jitter: int | None = option(
        None, "largest random shift in pixels before each step (default 0: none; a roll hurt deep inversions).",
        integer=True, minimum=0)
    param: ParamKind = option(
        "auto", "the image's parameterisation: pixel, fourier (a 1/f^decay_power spectrum in decorrelated colour), "
                "pyramid (a Laplacian-like sum of levels at 1/1 .. 1/16 of the size, in decorrelated colour), dip "
                "(a deep image prior: the weights of a small random encoder-decoder fed fixed noise), or auto "
                "(pixels at every depth: none of the others did better on photos held apart).")
    decay_power: float = option(
        1.5, "fourier and pyramid only: how much the coarse scales are favoured (higher: smoother).", minimum=0)

    def __post_init__(self):
        check_record(self)
