"""Terms that pull the network's features toward a target's: Content and FeatureDistance match the features,
Style their Gram matrices. Style transfer and feature inversion are built from these."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from ..errors import DeepCanvasError
from ..signature import check_choice
from ..tiling import Tile
from .base import Objective, scaled_mse
from .gram import gram
from .masks import Mask

LossMode = Literal["scaled", "mse"]
DistanceMode = Literal["normalized", "l2"]


class Content(Objective):
    """Features at ``layer`` should match ``target``.

    mode 'scaled' (default): scaled_mse divided by the target's RMS, so the
    loss does not change when a network's activations are k times larger (the
    Caffe VGGs' are ~20x torchvision's); together with scaled_mse's unit
    gradient this is the per-layer gradient normalisation that makes layer
    weights mean the same on every network. 'mse': plain mean squared error
    (neural-style-pt, and the seed's 2 * l2_loss / size).
    """

    name = "content"

    def __init__(self, layer: str, target: torch.Tensor, mode: LossMode = "scaled"):
        self.layer, self.target = layer, target.detach().float()
        self.mode = check_choice("content mode", mode, LossMode)
        self.layers = frozenset([layer])
        self.rms = self.target.pow(2).mean().sqrt().clamp_min(1e-6)

    def partial(self, acts, image, tile):
        x = tile.crop(acts[self.layer], image).float()
        d = x - tile.crop_target(self.target, acts[self.layer], image)
        return [d.pow(2).sum(), d.abs().sum()]

    def from_totals(self, t):
        if self.mode == "scaled":  # scaled_mse, from its two sums
            return t[0] / (t[1] + 1e-8) / self.rms
        return t[0] / self.target.numel()


class CoarseContent(Content):
    """Content at a coarser scale: ``layer``'s features of the picture downsampled ``factor`` times (area
    average) should match ``target``, the photo's at that size.

    The full-size content loss also pins the photo's fine texture; at a coarse scale the term holds the
    composition and contours and leaves the fine scale to the style. It runs its own forward pass of
    ``net`` on the small picture (in fp32: the run's autocast covers only the main pass), so its ``layers``
    are empty. ``factor`` divides 16, the tiles' alignment (tiling.ALIGN), so a tile's downsampled pixels
    are exactly the whole picture's there.
    """

    name = "content"

    def __init__(self, net, layer: str, target: torch.Tensor, factor: int, mode: LossMode = "scaled"):
        super().__init__(layer, target, mode)
        if factor not in (2, 4):
            raise DeepCanvasError(f"the coarse content factor must be 2 or 4, got {factor}")
        self.net, self.factor = net, factor
        self.layers = frozenset()

    @staticmethod
    def downsample(image: torch.Tensor, factor: int) -> torch.Tensor:
        """The area average over factor x factor blocks (a ragged last block: the mean of what it holds)."""
        return F.avg_pool2d(image, factor, ceil_mode=True)

    def partial(self, acts, image, tile):
        f = self.factor
        small = self.downsample(image, f)
        coarse = self.net(small, [self.layer])
        if tile.y1 is not None:  # the core's box at the small size (tile origins are multiples of 16)
            tile = Tile(tile.y0 // f, -(-tile.y1 // f), tile.x0 // f, -(-tile.x1 // f), tile.oy // f, tile.ox // f)
        return super().partial(coarse, small, tile)


class Style(Objective):
    """Gram matrix of ``layer`` should match ``target_gram`` (Gatys et al. 2015).

    mode 'scaled' (default): scaled_mse of Grams over H*W, divided by the
    style features' mean power, so it is invariant to the activations' scale
    like Content's. 'mse': MSE of Grams over C*H*W (neural-style-pt).
    mask: a :class:`Mask`: the Gram of the masked region only (Gatys et al. 2017's guided Gram,
    :func:`masked_gram`), so the term paints inside the mask and its gradient is zero where the mask is.
    """

    name = "style"

    def __init__(self, layer: str, target_gram: torch.Tensor, mode: LossMode = "scaled", mask: Mask | None = None):
        self.layer, self.target, self.mask = layer, target_gram.detach().float(), mask
        self.mode = check_choice("style mode", mode, LossMode)
        self.layers = frozenset([layer])
        # Mean squared activation of the style features (the Gram's mean diagonal).
        self.power = self.target.diagonal(dim1=-2, dim2=-1).mean().clamp_min(1e-12)

    def partial(self, acts, image, tile):
        f = tile.crop(acts[self.layer], image)
        n, c, h, w = f.shape
        if self.mask is not None:
            m = self.mask.at(acts[self.layer], image, tile)
            return [gram(f.float() * m.sqrt(), "none"), m.sum()]
        return [gram(f, "none"), torch.tensor(float(h * w), device=f.device)]

    def from_totals(self, t):
        g, count = t
        c = g.shape[-1]
        if self.mask is not None:
            count = count.clamp_min(1e-12)  # an empty region: a Gram of zeros, a constant loss, no gradient
        if self.mode == "scaled":
            return scaled_mse(g / count, self.target) / self.power
        return F.mse_loss(g / (c * count), self.target)


class FeatureDistance(Objective):
    """Inversion: ‖φ(x) − φ0‖² / ‖φ0‖² (Mahendran & Vedaldi 2015); mode='l2' gives the seed's plain ‖·‖²."""

    name = "features"

    def __init__(self, layer: str, target: torch.Tensor, mode: DistanceMode = "normalized"):
        self.layer, self.target = layer, target.detach().float()
        self.mode = check_choice("feature distance mode", mode, DistanceMode)
        self.layers = frozenset([layer])
        self.norm = self.target.pow(2).sum().clamp_min(1e-12)

    def partial(self, acts, image, tile):
        a = acts[self.layer]
        x = tile.crop(a, image).float()
        return [(x - tile.crop_target(self.target, a, image)).pow(2).sum()]

    def from_totals(self, t):
        return t[0] / self.norm if self.mode == "normalized" else t[0] / self.target.numel()
