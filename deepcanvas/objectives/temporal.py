"""Video's temporal consistency term (Ruder et al. 2016): each frame should agree with the previous output
frame warped to it, where the optical flow is reliable."""

from __future__ import annotations

from typing import Literal

import torch

from ..signature import check_choice
from .base import Objective

TemporalMode = Literal["scaled", "mse"]


class Temporal(Objective):
    """The image should equal ``target`` where ``mask`` is 1: Ruder et al.'s short-term temporal loss.

    ``target`` is the previous output frame warped to this frame by the optical flow, ``mask``
    (N or 1, 1, H, W) its consistency weights (0 on disoccluded pixels and motion boundaries, so those
    pixels feel no pull at all). Several earlier frames (the long-term loss) are several terms.
    mode 'scaled': the masked scaled_mse, whose gradient has an L1 norm of about one like the
    other deepcanvas losses, so its weight compares directly with theirs; 'mse': the paper's
    (1/D) sum c (x - w)^2 over the D pixel values.
    """

    name = "temporal"

    def __init__(self, target: torch.Tensor, mask: torch.Tensor, mode: TemporalMode = "scaled"):
        self.target = target.detach().float()
        self.mask = mask.detach().float()
        if self.mask.dim() == 2:
            self.mask = self.mask[None, None]
        if self.mask.shape[-2:] != self.target.shape[-2:]:
            raise ValueError(f"mask {tuple(self.mask.shape)} and target {tuple(self.target.shape)} differ in size")
        self.mode = check_choice("temporal mode", mode, TemporalMode)

    def partial(self, acts, image, tile):
        y1, x1 = (image.shape[-2], image.shape[-1]) if tile.y1 is None else (tile.y1, tile.x1)
        x = image[..., tile.y0:y1, tile.x0:x1].float()
        sl = (..., slice(tile.oy + tile.y0, tile.oy + y1), slice(tile.ox + tile.x0, tile.ox + x1))
        m = self.mask.to(x.device)[sl]
        d = (x - self.target.to(x.device)[sl]) * m
        return [d.pow(2).sum(), d.abs().sum(), m.sum() * x.shape[1]]

    def from_totals(self, t):
        if self.mode == "scaled":
            return t[0] / (t[1] + 1e-8)
        return t[0] / (t[2] + 1e-8)
