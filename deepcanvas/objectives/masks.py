"""Masks on the image's positions (region control): which positions a loss term counts, and how much."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import DeepCanvasError
from ..tiling import Tile


def layer_stride(act: torch.Tensor, image: torch.Tensor) -> int:
    """How many image pixels one position of ``act`` spans (a power of two; 1 for the image itself)."""
    return max(1, 2 ** round(math.log2(max(image.shape[-2], 1) / max(act.shape[-2], 1))))


class Mask:
    """A weight map over the image's positions: which positions a term counts, and how much (region control).

    ``weights`` is (1, 1, H, W) in [0, 1] at the resolution of the image the objective sees (style transfer's
    padded image). A layer reads it at its own resolution by averaging each layer position's s x s pixels
    (Gatys et al. 2017 downsample their guidance channels to every layer; area averaging keeps soft edges soft).
    The averages are taken over the whole image, once per stride, so a tile reads the same values at the same
    positions as the whole image does (``Tile.crop_target``): tiled equals whole.

    ``shift``: a function returning the (dy, dx) roll of the network's input this evaluation (DeepDream's
    jitter), so that the mask moves with the picture.
    """

    def __init__(self, weights: torch.Tensor, shift=None):
        w = weights.detach().float()
        while w.dim() < 4:
            w = w.unsqueeze(0)
        if w.shape[0] != 1 or w.shape[1] != 1:
            raise DeepCanvasError(f"a mask must be one channel of weights, got shape {tuple(weights.shape)}")
        self.weights, self.shift = w, shift
        self._cache: dict = {}

    def area(self) -> float:
        """The mask's mean weight: the share of the image it covers."""
        return float(self.weights.mean())

    def _strided(self, s: int, shift: tuple[int, int]) -> torch.Tensor:
        key = (s, shift)
        if key not in self._cache:
            m = torch.roll(self.weights, shifts=shift, dims=(-2, -1)) if any(shift) else self.weights
            if s > 1:  # ceil: a layer with ceil(H / s) rows (strided convolutions) is covered too
                m = F.avg_pool2d(m, s, ceil_mode=True)
            if len(self._cache) > 16:
                self._cache.clear()
            self._cache[key] = m
        return self._cache[key]

    def at(self, act: torch.Tensor, image: torch.Tensor, tile: Tile | None = None) -> torch.Tensor:
        """(1, 1, h, w) weights for the positions of ``act`` (cropped to ``tile``'s core in a tile)."""
        tile = tile or Tile()
        shift = tuple(self.shift()) if self.shift is not None else (0, 0)
        if tile.y1 is None and tuple(self.weights.shape[-2:]) != tuple(image.shape[-2:]):
            # Not the image this mask was made for: stretch it over the image (robustness, not the usual path).
            m = F.interpolate(torch.roll(self.weights, shifts=shift, dims=(-2, -1)), size=act.shape[-2:],
                              mode="area" if act.shape[-2] <= self.weights.shape[-2] else "bilinear")
            return m.to(act.device)
        m = self._strided(layer_stride(act, image), shift).to(act.device)
        if tile.y1 is None:
            h, w = act.shape[-2:]
            if m.shape[-2] >= h and m.shape[-1] >= w:
                return m[..., :h, :w]
            return F.interpolate(self.weights.to(act.device), size=(h, w), mode="area")
        return tile.crop_target(m, act, image)
