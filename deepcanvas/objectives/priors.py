"""Priors on the image's own pixels: smoothness (total variation), staying near grey (L2, the α-norm),
natural colours, and staying inside [0, 1]. They read no network layer."""

from __future__ import annotations

from typing import Literal

import torch

from ..param import COLOR_CORRELATION_SVD_SQRT
from ..signature import check_choice
from .base import Objective

TVKind = Literal["l2", "l1", "beta"]
Reduction = Literal["mean", "sum"]


class TotalVariation(Objective):
    """Smoothness prior on the image.

    kind='l2': mean squared neighbour differences (the seed's TV);
    'l1': mean absolute differences (neural-style-pt's);
    'beta': Mahendran & Vedaldi's TV^beta, mean of (dx^2 + dy^2)^(beta/2).
    ``scale`` multiplies pixel values first (255 makes it act on 0..255 pixels).
    reduction 'sum' adds the differences up instead of averaging them (neural-style-pt's).
    """

    name = "tv"

    def __init__(self, kind: TVKind = "l2", beta: float = 2.0, scale: float = 1.0, reduction: Reduction = "mean"):
        self.kind, self.beta, self.scale = check_choice("tv kind", kind, TVKind), beta, scale
        self.reduction = check_choice("tv reduction", reduction, Reduction)

    def partial(self, acts, image, tile):
        # Differences from each core pixel to its right / lower neighbour (which may lie in the margin).
        y1, x1 = (image.shape[-2], image.shape[-1]) if tile.y1 is None else (tile.y1, tile.x1)
        x = image[..., tile.y0:y1 + 1, tile.x0:x1 + 1].float() * self.scale
        hh, ww = min(y1 - tile.y0, x.shape[-2]), min(x1 - tile.x0, x.shape[-1])
        dx = (x[..., :, 1:] - x[..., :, :-1])[..., :hh, :]
        dy = (x[..., 1:, :] - x[..., :-1, :])[..., :, :ww]
        if self.kind == "beta":
            d = dx[..., : dy.shape[-2], : dy.shape[-1]].pow(2) + dy[..., : dx.shape[-2], : dx.shape[-1]].pow(2)
            v = (d + 1e-8).pow(self.beta / 2)
            return [v.sum(), torch.tensor(float(v.numel())), v.sum(), torch.tensor(0.0)]
        f = (lambda t: t.abs()) if self.kind == "l1" else (lambda t: t.pow(2))
        return [f(dx).sum(), torch.tensor(float(dx.numel())), f(dy).sum(), torch.tensor(float(dy.numel()))]

    def from_totals(self, t):
        sx, nx, sy, ny = t
        if self.kind == "beta":
            return sx if self.reduction == "sum" else sx / nx
        if self.reduction == "sum":
            return sx + sy
        return sx / nx + sy / ny


class L2(Objective):
    """The seed's L2 decay on the image (centred on grey)."""

    name = "l2"

    def partial(self, acts, image, tile):
        x = image[..., tile.y0:tile.y1, tile.x0:tile.x1].float()
        return [(x - 0.5).pow(2).sum(), torch.tensor(float(x.numel()))]

    def from_totals(self, t):
        return t[0] / t[1]


class AlphaNorm(Objective):
    """Mahendran & Vedaldi's α-norm prior: mean |x − grey|^α, keeps pixels from running off."""

    name = "alpha"

    def __init__(self, alpha: float = 6.0):
        self.alpha = alpha

    def partial(self, acts, image, tile):
        x = image[..., tile.y0:tile.y1, tile.x0:tile.x1].float()
        return [((x - 0.5).abs() * 2 + 1e-8).pow(self.alpha).sum(), torch.tensor(float(x.numel()))]

    def from_totals(self, t):
        return t[0] / t[1]


# Natural photos' colours as a Gaussian: ImageNet's mean and per-channel spread, with the channel
# correlations of lucid's colour matrix (param.COLOR_CORRELATION_SVD_SQRT); never the target photo's own.
_NATURAL_MEAN = (0.485, 0.456, 0.406)
_NATURAL_STD = (0.229, 0.224, 0.225)


def _natural_colour_whitening() -> torch.Tensor:
    """L with L L^T the inverse covariance of natural photos' colours: L^T (x - mean) is white noise."""
    c = torch.tensor(COLOR_CORRELATION_SVD_SQRT, dtype=torch.float64)
    c = c @ c.T
    d = c.diagonal().sqrt()
    std = torch.tensor(_NATURAL_STD, dtype=torch.float64)
    cov = c / torch.outer(d, d) * torch.outer(std, std)
    return torch.linalg.cholesky(torch.linalg.inv(cov)).float()


class ColourPrior(Objective):
    """Mean squared Mahalanobis distance of each pixel's colour from natural photos' colours, over 3.

    About 1 on a photo, 16 on bright yellow, 34 on magenta: where a deep layer leaves the colour open, it
    pulls towards plausible colours instead of the saturated ones a sigmoid output drifts to.
    """

    name = "colour"

    def __init__(self):
        self.whiten = _natural_colour_whitening()
        self.mean = torch.tensor(_NATURAL_MEAN)

    def partial(self, acts, image, tile):
        x = image[..., tile.y0:tile.y1, tile.x0:tile.x1].float()
        d = x - self.mean.to(x.device).view(1, 3, 1, 1)
        z = torch.einsum("nchw,cd->ndhw", d, self.whiten.to(x.device))
        return [z.pow(2).sum() / 3, torch.tensor(float(x[:, 0].numel()), device=x.device)]

    def from_totals(self, t):
        return t[0] / t[1]


class OutOfRange(Objective):
    """Squared excursions of the pixels beyond [0, 1] (in 0..255 units), summed.

    Keeps an optimizer that must not be clipped (L-BFGS) inside the range the
    written image is clipped to, with a smooth, honest gradient.
    """

    name = "range"

    def partial(self, acts, image, tile):
        x = image[..., tile.y0:tile.y1, tile.x0:tile.x1].float()
        return [((x - 1).clamp_min(0).pow(2) + x.neg().clamp_min(0).pow(2)).sum() * 255.0 ** 2]

    def from_totals(self, t):
        return t[0]
