"""Style transfer's objective for one size: content + style (per region) + TV (+ OutOfRange).

Also the mirrored margin the picture is optimised with (:func:`border_pad`), which the
objective's images and masks are padded by.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import regions as R
from ..objectives import CoarseContent, Content, Mask, Objective, OutOfRange, Style, Sum
from ..param import resize
from ..objectives import SlicedWasserstein
from ..objectives.swd import SAMPLES
from ..tiling import tiled_features
from .common import fit_size
from .style_presets import LossSetup, LossWeights
from .style_targets import TILE_MARGIN, StyleTargets

BORDER = 8  # mirrored margin around the image, cropped off the result (border_pad)


def border_pad(hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) margins: at least BORDER px each side, padded sides a multiple of 16.

    Without them the picture's edges get what only its edges see: the network's zero padding (a bright
    or dark line along the top row) and, where a side is not a multiple of 16, rows and columns that
    VGG's pooling drops, so that only the shallow layers shape them (a rainbow stripe along the bottom).
    The margins mirror the image, so its border pixels see a continuation of the picture instead; the
    artefacts move into the margins, which are cropped off.
    """
    out = []
    for n in hw:
        total = -(-(n + 2 * BORDER) // 16) * 16 - n
        out += [total // 2, total - total // 2]
    return out[0], out[1], out[2], out[3]


def pad_image(img: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    """``img`` with the (top, bottom, left, right) margins of ``box`` mirrored on (repeated on a tiny image)."""
    t, b, l, r = box
    mode = "reflect" if min(img.shape[-2:]) > max(box) else "replicate"
    return torch.nn.functional.pad(img, (l, r, t, b), mode=mode)


def crop_image(img: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    t, b, l, r = box
    return img[..., t:img.shape[-2] - b, l:img.shape[-1] - r]


@dataclass
class StyleRegion:
    """Where some of the style images paint: one term per style layer, weighted by an output mask.

    ``mask``: a :class:`~deepcanvas.objectives.Mask` on the (padded) output, None for everywhere; ``area``: its
    mean weight (each term is weighted by it, so a region is painted as strongly per pixel as the whole picture
    would be); ``styles``: indices of the style images; ``blend``: their weights (sum 1); ``style_masks``: per
    style image, its region on the painting (semantic maps), or None for the whole painting.
    """

    mask: Mask | None
    area: float
    styles: list[int]
    blend: list[float]
    style_masks: list[torch.Tensor] | None = None


#: The pixel term's positions a step: every one up to about 720 x 720 px; above, a fresh random subset, so that a
#: print's step does not sort (and hold) 16 projections of every one of its pixels (about 13 GB at 8192 px).
PIXEL_POSITIONS = 2 ** 19


def style_terms(net, setup: LossSetup, live: tuple, style_layers: dict, style_imgs, side: int, style_weight: float,
                tile: int, generator, region: StyleRegion, device, targets: StyleTargets) -> Objective:
    """The style terms of one region (regions of the picture: masks, style masks, semantic maps)."""
    imgs = [style_imgs[i] for i in region.styles]
    w = style_weight * region.area
    mode = setup.mode
    out = Sum([])
    if setup.method == "swd":
        # A semantic map's style masks need the whole maps; otherwise a subset is all the loss keeps.
        feats = targets.features(net, imgs, region.blend, live, side, tile,
                                 samples=SAMPLES if region.style_masks is None else None)
        for l in live:
            entries = feats[l]
            if region.style_masks is not None:
                entries = [(f, b, R.fit(sm, tuple(f.shape[-2:])).to(f.device))
                           for (f, b), sm in zip(entries, region.style_masks)]
            out = out + w * style_layers[l] * SlicedWasserstein(l, entries, mode=mode, generator=generator,
                                                                positions=setup.swd_positions, mask=region.mask)
        if setup.pixel_weight > 0:
            pix = []
            for k, (simg, b) in enumerate(zip(imgs, region.blend)):
                p = resize(simg, fit_size(*simg.shape[-2:], max(16, side))).to(device)
                sm = None if region.style_masks is None else R.fit(region.style_masks[k], tuple(p.shape[-2:]))
                pix.append((p, b) if sm is None else (p, b, sm.to(device)))
            out = out + w * setup.pixel_weight * SlicedWasserstein(SlicedWasserstein.PIXELS, pix, projections=16,
                                                                   mode=mode, generator=generator, mask=region.mask,
                                                                   positions=PIXEL_POSITIONS)
        return out
    norm = "chw" if mode == "mse" else "hw"
    if region.style_masks is None:
        grams = targets.grams(net, imgs, region.blend, live, side, norm, tile)
    else:
        grams = targets.guided(net, imgs, region.blend, region.style_masks, live, side, norm)
    for l in live:
        out = out + w * style_layers[l] * Style(l, grams[l], mode, mask=region.mask)
    return out


def style_objective(net, setup: LossSetup, content: torch.Tensor, content_layers: dict, style_layers: dict,
                    style_imgs, blend, side: int, *, weights: LossWeights, tile: int,
                    generator: torch.Generator | None = None, regions: list[StyleRegion] | None = None,
                    targets: StyleTargets, content_scale: int = 1) -> Objective:
    """Content + style + TV (+ OutOfRange when ``weights.range``) for one size; ``content`` is the target there.

    ``regions``: where which style paints (:class:`StyleRegion`); None: every style everywhere.
    ``content_scale``: the content loss on the picture downsampled this many times (CoarseContent; 1: full size).
    """
    small = content if content_scale == 1 else CoarseContent.downsample(content, content_scale)
    with torch.no_grad():
        # Memory bounded by the tile here too (one piece when the image fits in a tile).
        c_acts = tiled_features(small, lambda p: net(p, content_layers), list(content_layers), tile=tile,
                                margin=TILE_MARGIN)
    objective = Sum([])
    for l, w in content_layers.items():
        if w > 0 and weights.content > 0:
            term = (Content(l, c_acts[l], setup.mode) if content_scale == 1 else
                    CoarseContent(net, l, c_acts[l], content_scale, setup.mode))
            objective = objective + weights.content * w * term
    live = tuple(l for l, w in style_layers.items() if w > 0)
    if weights.style > 0 and live:
        # No regions: one region that is the whole picture, with every style at its blend weight.
        for region in regions if regions is not None else [StyleRegion(None, 1.0, list(range(len(style_imgs))),
                                                                       list(blend), None)]:
            objective = objective + style_terms(net, setup, live, style_layers, style_imgs, side, weights.style, tile,
                                                generator, region, content.device, targets)
    if weights.tv > 0:
        objective = objective + weights.tv * setup.tv
    if weights.range > 0:
        objective = objective + weights.range * OutOfRange()
    return objective
