"""Gram matrices (Gatys et al. 2015): of a whole feature map, of a masked region, and of an image too large
for one pass, summed tile by tile."""

from __future__ import annotations

from typing import Literal

import torch

from ..signature import check_choice
from ..tiling import tile_boxes

GramNorm = Literal["hw", "chw", "none"]


def gram(feat: torch.Tensor, norm: GramNorm = "hw") -> torch.Tensor:
    """Gram matrices of (N, C, H, W) features: (N, C, C), averaged over positions.

    ``norm='hw'`` divides by H*W (independent of image size, so statistics from
    a style image of any size compare); ``'chw'`` divides by C*H*W as
    neural-style-pt does; ``'none'`` is the raw inner products.
    """
    check_choice("gram norm", norm, GramNorm)
    n, c, h, w = feat.shape
    f = feat.reshape(n, c, h * w).float()  # Gram sums in fp32: half precision overflows here
    g = torch.bmm(f, f.transpose(1, 2))
    if norm == "hw":
        g = g / (h * w)
    elif norm == "chw":
        g = g / (c * h * w)
    return g


def masked_gram(feat: torch.Tensor, mask: torch.Tensor | None, norm: GramNorm = "hw") -> torch.Tensor:
    """Guided Gram matrices (Gatys et al. 2017): sum_p m_p f_p f_p^T / sum_p m_p, the Gram of a region.

    ``mask`` (1, 1, H, W) weights each position of ``feat`` (N, C, H, W); a soft weight counts the position
    partly. ``norm='chw'`` divides by C as well (neural-style-pt's scale); a mask of None is :func:`gram`.
    """
    check_choice("gram norm", norm, GramNorm)
    if mask is None:
        return gram(feat, norm)
    n, c, h, w = feat.shape
    g = gram(feat.float() * mask.float().sqrt(), "none")
    count = mask.float().sum().clamp_min(1e-12)
    return g / (count * (c if norm == "chw" else 1)) if norm != "none" else g


@torch.no_grad()
def tiled_grams(img: torch.Tensor, forward, layers, norm: GramNorm, *, tile: int,
                margin: int) -> dict[str, torch.Tensor]:
    """:func:`gram` of the whole image's features, summed over the tiles' cores when it is larger than ``tile``
    (tiling.tile_boxes): the sums that Style.partial makes for a tiled step."""
    check_choice("gram norm", norm, GramNorm)
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    for (ty0, ty1, tx0, tx1), core in tile_boxes(*img.shape[-2:], tile, margin):
        pix = img[..., ty0:ty1, tx0:tx1]
        acts = forward(pix)
        for l in layers:
            f = core.crop(acts[l], pix)
            sums[l] = sums.get(l, 0) + gram(f, "none")
            counts[l] = counts.get(l, 0) + f.shape[-2] * f.shape[-1]
    return {l: g / (counts[l] * (g.shape[-1] if norm == "chw" else 1)) if norm != "none" else g
            for l, g in sums.items()}
