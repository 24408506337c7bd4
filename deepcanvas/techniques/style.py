"""Style transfer (Gatys, Ecker & Bethge 2015; sliced-Wasserstein style loss, Heitz et al. 2021).

Configuration of the one loop: pixels initialised from the content image,
no random transforms, content + style (sliced-Wasserstein by default, or
Gram matrices) + TV objective, Adam or L-BFGS, and a schedule of sizes
(single scale by default; coarse to fine on request, each size starting from
the previous result upsampled).
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Sequence, get_args

import torch

from .. import models
from ..errors import DeepCanvasError
from ..limits import check_number
from .. import regions as R
from ..objectives import (Content, Mask, Objective, OutOfRange, SlicedWasserstein, Style, Sum, TotalVariation,
                          masked_gram, tiled_grams)
from ..param import PixelParam, resize
from ..render import Progress, Stage, cosine_decay, drive, render
from ..signature import check_choice
from ..tiling import tiled_features
from . import color
from .common import (Pooling, Precision, begin, check_layer_names, fit_size, load_tensor, longest_side, parse_floats,
                     parse_layers, seed_everything)

Preset = Literal["deepcanvas", "neural-style-pt"]
Method = Literal["swd", "gram"]
Colors = Literal["style", "luma", "luminance", "histogram"]
Init = Literal["content", "palette", "noise", "blend"]
Optimizer = Literal["adam", "lbfgs"]
INITS = get_args(Init)
TILE_MARGIN = 96  # context around each tile's core: half of relu5_1's receptive field


@dataclass(frozen=True)
class LossSetup:
    """How the losses are measured (see deepcanvas.objectives)."""

    mode: str  # 'scaled' or 'mse'
    content_weight: float
    style_weight: float
    tv_weight: float
    tv: TotalVariation
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
    t, b, l, r = box
    mode = "reflect" if min(img.shape[-2:]) > max(box) else "replicate"
    return torch.nn.functional.pad(img, (l, r, t, b), mode=mode)


def crop_image(img: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    t, b, l, r = box
    return img[..., t:img.shape[-2] - b, l:img.shape[-1] - r]


def loss_setup(preset: str, method: str | None = None) -> LossSetup:
    """The preset's losses and defaults; ``method`` picks the style loss (default: the preset's own)."""
    if method is not None:
        check_choice("method", method, Method)
    if preset == "neural-style-pt":
        # Exactly neural-style-pt's defaults: MSE content (weight 5), MSE of Grams / (C*H*W),
        # weight 100 per style layer, TV 1e-3 on the L1 differences of 0..255 pixels (summed).
        # Single scale, as neural-style-pt: with this summed L1 TV, coarse-to-fine turned the
        # small sizes' flat patches into blocks (512 px content loss 295 against 198; README).
        setup = LossSetup("mse", 5.0, 100.0, 1e-3, TotalVariation("l1", scale=255.0, reduction="sum"), False,
                          "lbfgs", False, 1e-2)
        if method == "swd":
            raise DeepCanvasError("the neural-style-pt preset is Gram matrices only (method gram)")
        return setup
    if preset == "deepcanvas":
        # Scale-invariant scaled MSE (objectives.py). Single scale from the content image: coarse to fine paints
        # large blobs at 128 px that the bigger sizes cannot undo (tubingen x Starry Night, 384 px: edge_corr
        # 0.74 against ~0.95). Adam with a relative epsilon (render.py) keeps flat areas clean.
        if method == "gram":
            return LossSetup("scaled", 0.3, 1.0, 2.0, TotalVariation("l2"), True, "adam", False, 1e-6,
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
        return LossSetup("scaled", 0.15, 1.0, 2.0, TotalVariation("l2"), True, "adam", False, 1e-6,
                         method="swd", adam_eps_rel=0.1, pad_borders=True, lr=0.05, iterations=52,
                         pixel_weight=0.2, swd_positions=65536, lr_floor=0.3, style_layer_weights=(2, 2, 1, 1, 1))
    check_choice("preset", preset, Preset)
    raise AssertionError(preset)  # every preset is handled above


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


_TARGETS: "OrderedDict[tuple, dict]" = OrderedDict()


def _memoised(kind: str, net, style_imgs, blend, *key, compute):
    """``compute()`` for these style images at these settings, remembered (the last 16).

    A batch of content images (video frames), or a rerun in the studio, pays
    for the style images' forward passes once per size, not once per image.
    """
    digest = hashlib.sha1()
    for t in style_imgs:
        digest.update(t.cpu().numpy().tobytes())
        digest.update(str(tuple(t.shape)).encode())
    full_key = (kind, id(net), digest.hexdigest(), tuple(blend), *key)
    if full_key in _TARGETS:
        _TARGETS.move_to_end(full_key)
        return _TARGETS[full_key]
    with torch.no_grad():
        _TARGETS[full_key] = value = compute()
    while len(_TARGETS) > 16:
        _TARGETS.popitem(last=False)
    return value


def style_targets(net, style_imgs, blend, layers: tuple, side: int, norm: str,
                  tile: int | None = None) -> dict[str, torch.Tensor]:
    """Blended Gram matrices of the style images at one size (tile by tile above ``tile`` px), memoised."""
    def compute():
        dev = next(net.parameters()).device
        grams: dict[str, torch.Tensor] = {}
        for simg, b in zip(style_imgs, blend):
            s_hw = fit_size(*simg.shape[-2:], max(16, side))
            g = tiled_grams(resize(simg, s_hw).to(dev), lambda p: net(p, layers), layers, norm,
                            tile=tile or max(s_hw), margin=TILE_MARGIN)
            for l in layers:
                grams[l] = grams.get(l, 0) + b * g[l]
        return grams

    return _memoised("grams", net, style_imgs, blend, layers, side, norm, tile, compute=compute)


def style_features(net, style_imgs, blend, layers: tuple, side: int) -> dict[str, list[tuple[torch.Tensor, float]]]:
    """The style images' activations at one size, with their blend weights, memoised like style_targets."""
    def compute():
        dev = next(net.parameters()).device
        out: dict[str, list] = {l: [] for l in layers}
        for simg, b in zip(style_imgs, blend):
            acts = net(resize(simg, fit_size(*simg.shape[-2:], max(16, side))).to(dev), layers)
            for l in layers:
                out[l].append((acts[l].float(), b))
        return out

    return _memoised("features", net, style_imgs, blend, layers, side, compute=compute)


def guided_targets(net, style_imgs, blend, masks, layers: tuple, side: int, norm: str) -> dict[str, torch.Tensor]:
    """Blended guided Gram matrices (Gatys et al. 2017) of the style images' masked regions, memoised.

    ``masks``: per style image, a (1, 1, h, w) map of its region at any resolution (stretched over the image and
    area-averaged to each layer).
    """
    def compute():
        dev = next(net.parameters()).device
        grams: dict[str, torch.Tensor] = {}
        for simg, b, sm in zip(style_imgs, blend, masks):
            acts = net(resize(simg, fit_size(*simg.shape[-2:], max(16, side))).to(dev), layers)
            for l in layers:
                m = R.fit(sm, tuple(acts[l].shape[-2:])).to(dev)
                grams[l] = grams.get(l, 0) + b * masked_gram(acts[l], m, norm)
        return grams

    return _memoised("guided", net, list(style_imgs) + list(masks), blend, layers, side, norm, compute=compute)


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


def _style_terms(net, method: str, mode: str, live: tuple, s_layers: dict, style_imgs, side: int, sw: float,
                 tile: int, generator, pixel_weight: float, region: StyleRegion, device,
                 positions: int | None = None) -> Objective:
    """The style terms of one region (regions of the picture: masks, style masks, semantic maps)."""
    imgs = [style_imgs[i] for i in region.styles]
    w = sw * region.area
    out = Sum([])
    if method == "swd":
        feats = style_features(net, imgs, region.blend, live, side)
        for l in live:
            entries = feats[l]
            if region.style_masks is not None:
                entries = [(f, b, R.fit(sm, tuple(f.shape[-2:])).to(f.device))
                           for (f, b), sm in zip(entries, region.style_masks)]
            out = out + w * s_layers[l] * SlicedWasserstein(l, entries, mode=mode, generator=generator,
                                                            positions=positions,
                                                            mask=region.mask)
        if pixel_weight > 0:
            pix = []
            for k, (simg, b) in enumerate(zip(imgs, region.blend)):
                p = resize(simg, fit_size(*simg.shape[-2:], max(16, side))).to(device)
                sm = None if region.style_masks is None else R.fit(region.style_masks[k], tuple(p.shape[-2:]))
                pix.append((p, b) if sm is None else (p, b, sm.to(device)))
            out = out + w * pixel_weight * SlicedWasserstein(SlicedWasserstein.PIXELS, pix, projections=16,
                                                             mode=mode, generator=generator, mask=region.mask)
        return out
    norm = "chw" if mode == "mse" else "hw"
    if region.style_masks is None:
        grams = style_targets(net, imgs, region.blend, live, side, norm, tile)
    else:
        grams = guided_targets(net, imgs, region.blend, region.style_masks, live, side, norm)
    for l in live:
        out = out + w * s_layers[l] * Style(l, grams[l], mode, mask=region.mask)
    return out


def strength_weights(strength: float, content_weight: float, style_weight: float,
                     tv_weight: float) -> tuple[float, float, float]:
    """(content, style, tv) weights for ``style_strength``: 0.5 keeps them, 0 keeps only the content, 1 drops it.

    The ratio of the painting's side (style, and TV, which only tidies what the style paints) to the
    content is multiplied by (s / (1 - s))^2: x1/9 at 0.25, x9 at 0.75. The larger side's weights never
    grow, so the step sizes stay those the defaults were tuned with. At 0 the content loss alone is
    left, which the content image already minimises: the photo comes back.
    """
    s = check_number("style_strength", strength, minimum=0)
    if s > 1:
        raise DeepCanvasError(f"style_strength must be between 0 and 1, got {strength}")
    if s <= 0.5:
        k = (s / (1 - s)) ** 2
        return content_weight, style_weight * k, tv_weight * k
    return content_weight * ((1 - s) / s) ** 2, style_weight, tv_weight


def style_objective(net, method: str, mode: str, content: torch.Tensor, c_layers: dict, s_layers: dict,
                    style_imgs, blend, side: int, *, cw: float, sw: float, tw: float, tv: Objective,
                    rw: float, tile: int, generator: torch.Generator | None = None,
                    pixel_weight: float = 0.0, regions: list[StyleRegion] | None = None,
                    positions: int | None = None) -> Objective:
    """Content + style + TV (+ OutOfRange when ``rw``) for one size; ``content`` is the target at that size.

    ``regions``: where which style paints (:class:`StyleRegion`); None: every style everywhere.
    """
    with torch.no_grad():
        # Memory bounded by the tile here too (one piece when the image fits in a tile).
        c_acts = tiled_features(content, lambda p: net(p, c_layers), list(c_layers), tile=tile, margin=TILE_MARGIN)
    objective = Sum([])
    for l, w in c_layers.items():
        if w > 0 and cw > 0:
            objective = objective + cw * w * Content(l, c_acts[l], mode)
    live = tuple(l for l, w in s_layers.items() if w > 0)
    if sw > 0 and live:
        # No regions: one region that is the whole picture, with every style at its blend weight.
        for region in regions if regions is not None else [StyleRegion(None, 1.0, list(range(len(style_imgs))),
                                                                       list(blend), None)]:
            objective = objective + _style_terms(net, method, mode, live, s_layers, style_imgs, side, sw, tile,
                                                 generator, pixel_weight, region, content.device, positions)
    if tw > 0:
        objective = objective + tw * tv
    if rw > 0:
        objective = objective + rw * OutOfRange()
    return objective


@dataclass
class RegionPlan:
    """The regions of a run as read from the files, before any size is chosen (raw masks at their own sizes).

    ``effect``: the ``mask`` (where anything paints; the result is the photo elsewhere), None for everywhere.
    ``regions``: (output mask or None, style indices, blend weights, style-side masks or None) per region.
    ``union``: composite with the union of the region masks (style masks that may not cover the picture).
    """

    effect: torch.Tensor | None
    regions: list[tuple]
    union: bool = False

    def masks(self, hw: tuple[int, int], share: float) -> tuple[torch.Tensor | None, list[torch.Tensor | None]]:
        """The feathered effect mask and region masks at ``hw`` (each region's mask times the effect mask)."""
        effect = R.feather(R.fit(self.effect, hw), share) if self.effect is not None else None
        out = []
        for m, *_ in self.regions:
            m = R.feather(R.fit(m, hw), share) if m is not None else None
            if effect is not None:
                m = effect if m is None else m * effect
            out.append(m)
        if self.union:
            u = torch.stack([m for m in out if m is not None]).sum(0).clamp(0, 1)
            effect = u if effect is None else effect * u
        return effect, out


def plan_regions(mask, style_masks, content_map, style_map, n_styles: int, blend: list[float],
                 blend_given: bool) -> RegionPlan | None:
    """Read and check the masks and maps (a one-line error for each kind of bad input); None if none given."""
    s_masks, s_maps = R.split_list(style_masks), R.split_list(style_map)
    if mask is None and not s_masks and content_map is None and not s_maps:
        return None
    effect = None
    if mask is not None:
        effect = R.load_mask(mask, "mask")
        R.check_not_empty(effect, "the mask")
    if s_masks and (content_map is not None or s_maps):
        raise DeepCanvasError("give either style_masks (a region per style) or content_map and style_map "
                              "(regions matched by colour), not both")
    if s_masks:
        if len(s_masks) != n_styles:
            raise DeepCanvasError(f"style_masks: got {len(s_masks)} masks for {n_styles} style images; give one "
                                  "mask per style image, in the same order")
        if blend_given:
            raise DeepCanvasError("style_blend_weights mixes styles in one place; with style_masks each style has "
                                  "its own region")
        regions = []
        for i, sm in enumerate(s_masks):
            what = f"style mask {i + 1}" + (f" ('{sm}')" if isinstance(sm, (str, Path)) else "")
            m = R.load_mask(sm, what)
            R.check_not_empty(m, what)
            regions.append((m, [i], [1.0], None))
        return RegionPlan(effect, regions, union=True)
    if content_map is not None or s_maps:
        if content_map is None or not s_maps:
            raise DeepCanvasError("semantic maps come in pairs: give content_map and style_map together")
        regions = []
        for label in R.load_semantic_maps(content_map, s_maps, n_styles):
            idx = [i for i, sm in enumerate(label.styles) if sm is not None]
            total = sum(blend[i] for i in idx) or 1.0
            regions.append((label.content, idx, [blend[i] / total for i in idx], [label.styles[i] for i in idx]))
        return RegionPlan(effect, regions)
    return RegionPlan(effect, [(None, list(range(n_styles)), list(blend), None)])


def style_transfer_steps(
    content,
    styles,
    *,
    style_blend_weights: Sequence[float] | str | None = None,
    size: int = 512,
    style_scale: float = 1.0,
    model: str | models.LayeredNet = "vgg16",
    weights: str | None = None,
    pooling: Pooling = "max",
    content_layers: str | None = None,
    style_layers: str | None = None,
    content_weight: float | None = None,
    style_weight: float | None = None,
    tv_weight: float | None = None,
    range_weight: float | None = None,
    preset: Preset = "deepcanvas",
    method: Method | None = None,
    style_strength: float = 0.5,
    init: Init | str = "content",
    init_noise: float = 0.5,
    optimizer: Optimizer | None = None,
    lr: float | None = None,
    line_search: bool = True,
    adam_beta1: float = 0.9,
    adam_beta2: float = 0.999,
    adam_eps: float = 1e-8,
    adam_eps_rel: float | None = None,
    iterations: int | None = None,
    multiscale: bool | None = None,
    min_size: int = 128,
    colors: Colors = "style",
    original_colors: bool = False,
    mask: str | None = None,
    style_masks: str | None = None,
    content_map: str | None = None,
    style_map: str | None = None,
    feather: float = 0.01,
    tile: int = 1024,
    seed: int | None = None,
    device: str = "auto",
    precision: Precision = "auto",
) -> Iterator[Progress]:
    """Yield a Progress after every iteration; the last one has ``done=True`` and the best image.

    Args:
        content: content image (path or PIL image).
        styles: one or more style images (paths or PIL images).
        style_blend_weights: one weight per style image, e.g. "3,1" (default: equal).
        size: longest side of the output in pixels.
        style_scale: style image size relative to the output size.
        model: network from `deepcanvas models`, or a network object (models.LayeredNet).
        weights: local checkpoint for the model's architecture.
        pooling: max or avg.
        content_layers: content layers with optional weights, e.g. "relu4_2:0.7,relu5_2:0.3".
        style_layers: style layers with optional weights, e.g. "relu1_1,relu2_1:2".
        content_weight: weight of the content loss (default from the preset).
        style_weight: weight of the style loss (default from the preset).
        tv_weight: weight of the total-variation loss (default from the preset).
        range_weight: weight of the penalty that keeps L-BFGS's unclipped pixels in [0, 1] (default from the
            preset; 0 for none, as in neural-style-pt itself).
        preset: loss definitions and default weights: deepcanvas or neural-style-pt.
        method: style loss: swd (sliced Wasserstein: sorted random projections of the features, Heitz et al. 2021;
            the deepcanvas default) or gram (Gram matrices, Gatys et al.; neural-style-pt's).
        style_strength: from 0 (the photo) to 1 (the painting's texture alone): 0.5 keeps the weights as they are,
            higher paints more boldly, lower keeps more of the photo; it scales content_weight and style_weight.
        init: start from content, palette (the photo recoloured to the paintings' colour mean and covariance),
            noise, blend (of content and noise), or an image file.
        init_noise: share of noise in a blend init.
        optimizer: adam or lbfgs (default from the preset: adam for deepcanvas, lbfgs for neural-style-pt).
        lr: learning rate (default 1 for lbfgs, 0.02 for adam).
        line_search: L-BFGS with a strong-Wolfe line search (off: neural-style-pt's plain L-BFGS, which can
            overshoot and stall).
        adam_beta1: Adam's beta1.
        adam_beta2: Adam's beta2.
        adam_eps: Adam's epsilon.
        adam_eps_rel: Adam's epsilon as a share of the image's mean gradient size, so that pixels with tiny
            gradients (flat skies) take tiny steps rather than full ones (default from the preset; 0 for plain Adam).
        iterations: iterations at the full size (smaller sizes get more; default from the preset).
        multiscale: coarse-to-fine schedule from min_size up to size (default off: single scale from the content).
        min_size: longest side of the first, coarsest scale.
        colors: style (the painting's colours), luma (keep the content's colours by swapping luminance),
            luminance (luminance-only transfer), histogram (recolour the style images to the content's palette first).
        original_colors: keep the content's colours (same as colors=luma).
        mask: image of where to paint: white gets the style, black keeps the photo, grey is in between (any size
            and mode: luminance, or alpha where it has transparency).
        style_masks: one mask image per style image, comma-separated: each style paints its own region.
        content_map: colour-labelled map of the content image (semantic style transfer, with style_map).
        style_map: colour-labelled map of the style image (one per style image, comma-separated): each colour of
            the content map takes its texture from the same colour's region of the painting.
        feather: soft edge of the masks and maps, as a share of the image's longest side (0: hard edges).
        tile: sizes above this are computed in tiles of this many pixels, so memory is bounded by the tile.
        seed: random seed for reproducible results.
        device: auto, cpu, cuda or mps.
        precision: auto (bf16 on CUDA, fp32 elsewhere), fp32, bf16 or fp16.
    """
    plan = prepare_style(**{k: v for k, v in locals().items() if k != "plan"})
    schedule = scale_schedule(plan.size, plan.min_size, plan.iterations,
                              plan.setup.multiscale if multiscale is None else multiscale)

    def scale_stage(k: int, side: int, n_iter: int):
        def build(prev: torch.Tensor | None) -> Stage:
            hw = fit_size(*plan.content_img.shape[-2:], side)
            floor = plan.setup.lr_floor
            return plan.stage(plan.work_content, plan.start_image(hw, prev), side, n_iter,
                              name=f"scale {k + 1}/{len(schedule)} ({max(hw)} px)",
                              lr_schedule=cosine_decay(floor) if floor < 1 else None)
        return build

    stages = [scale_stage(k, side, n) for k, (side, n) in enumerate(schedule)]
    yield from render(plan.net, stages, total=sum(n for _, n in schedule), precision=plan.precision, rng=plan.rng,
                      finish=lambda results: plan.finish(results[-1], plan.content_img))


@dataclass
class StylePlan:
    """A style transfer with every argument checked and the network and style images loaded.

    :func:`style_transfer_steps` builds one stage per scale from it; a video (techniques/video.py)
    one stage per frame, each with its own content and start image, sharing the style targets.
    """

    net: torch.nn.Module
    dev: torch.device
    setup: LossSetup
    method: str
    c_layers: dict
    s_layers: dict
    style_imgs: list
    blend: list
    weights: tuple  # cw, sw, tw, rw
    optimizer: str
    lr: float
    optimizer_options: dict
    tile: int
    generator: torch.Generator | None
    style_scale: float
    colors: str
    rng: Any
    precision: str
    size: int
    min_size: int
    iterations: int
    content_img: torch.Tensor
    work_content: torch.Tensor
    init: str
    init_img: torch.Tensor | None
    init_noise: float
    regions: RegionPlan | None = None  # masks, style masks or semantic maps (None: every style everywhere)
    feather: float = 0.01

    def work(self, content: torch.Tensor) -> torch.Tensor:
        """What the content loss sees of a content image (its luminance with colors='luminance')."""
        return color.luminance(content) if self.colors == "luminance" else content

    def start_image(self, hw, prev) -> torch.Tensor:
        if prev is not None:
            return resize(prev, hw)
        if self.init_img is not None:
            return resize(self.init_img, hw)
        if self.init == "noise":  # neural-style-pt's random init: the mean colour with faint noise
            mean = torch.tensor(models.vgg.CAFFE_MEAN_BGR[::-1]).view(1, 3, 1, 1) / 255
            return (mean + torch.randn(1, 3, *hw) * 0.001).clamp(0, 1)
        if self.init == "palette":
            return resize(color.match_palette(self.work_content, self.style_imgs, self.blend), hw)
        if self.init == "blend":
            return (1 - self.init_noise) * resize(self.work_content, hw) + self.init_noise * torch.rand(1, 3, *hw)
        return resize(self.work_content, hw)

    def stage(self, content: torch.Tensor, start: torch.Tensor, side: int, steps: int, *, name: str = "",
              extra: Callable[[tuple[int, int, int, int]], Objective] | None = None,
              after: Callable[[torch.Tensor], None] | None = None, lr: float | None = None,
              lr_schedule: Callable[[float], float] | None = None) -> Stage:
        """One stage styling ``content`` (resized to ``start``'s size) from ``start``.

        ``extra(box)`` adds a term to the objective (the image it sees is padded by ``box``:
        top, bottom, left, right); ``after`` gets the stage's (cropped) result.
        """
        hw = tuple(start.shape[-2:])
        box = border_pad(hw) if self.setup.pad_borders else (0, 0, 0, 0)
        cw, sw, tw, rw = self.weights
        regions = None
        if self.regions is not None:  # each region's mask at this size, on the padded picture the network sees
            _, masks = self.regions.masks(hw, self.feather)
            regions = [StyleRegion(None if m is None else Mask(pad_image(m, box).to(self.dev)),
                                   1.0 if m is None else float(m.mean()), idx, b, sm)
                       for m, (_, idx, b, sm) in zip(masks, self.regions.regions)]
        # L-BFGS's pixels are never clipped (param.py): OutOfRange keeps them in range.
        objective = style_objective(self.net, self.method, self.setup.mode, pad_image(resize(content, hw).to(self.dev), box),
                                    self.c_layers, self.s_layers, self.style_imgs, self.blend,
                                    round(side * self.style_scale), cw=cw, sw=sw, tw=tw, tv=self.setup.tv,
                                    rw=rw if self.optimizer == "lbfgs" else 0.0, tile=self.tile,
                                    generator=self.generator, pixel_weight=self.setup.pixel_weight,
                                    regions=regions, positions=self.setup.swd_positions)
        if extra is not None:
            objective = objective + extra(box)
        param = PixelParam(pad_image(start.to(self.dev), box), clip=self.optimizer != "lbfgs")
        return Stage(param, objective, steps, name=name, optimizer=self.optimizer, lr=self.lr if lr is None else lr,
                     lr_schedule=lr_schedule,
                     tile=self.tile, tile_margin=TILE_MARGIN,
                     # A noisy loss (new random projections each step) would keep a lucky sample: keep the last.
                     keep_best=self.method != "swd", optimizer_options=self.optimizer_options,
                     view=lambda img: crop_image(img, box), result=lambda img: crop_image(img, box).cpu(),
                     after=after)

    def finish(self, img: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        """The final picture from a stage's result: at the output size, the content's colours if asked, and the
        photo itself outside the mask (blended across its feathered edge)."""
        final_hw = fit_size(*content.shape[-2:], self.size)
        img = resize(img, final_hw)
        if self.colors == "luminance":
            img = color.luma_swap(color.luminance(img), resize(content, final_hw))
        elif self.colors == "luma":
            img = color.luma_swap(img, resize(content, final_hw))
        if self.regions is not None:
            effect_mask, _ = self.regions.masks(final_hw, self.feather)
            if effect_mask is not None:
                img = R.composite(img, resize(content, final_hw), effect_mask)
        return img


def prepare_style(content, styles, *, style_blend_weights=None, size=512, style_scale=1.0, model="vgg16",
                  weights=None, pooling="max", content_layers=None, style_layers=None, content_weight=None,
                  style_weight=None, tv_weight=None, range_weight=None, preset="deepcanvas", method=None,
                  style_strength=0.5, init="content", init_noise=0.5, optimizer=None, lr=None, line_search=True,
                  adam_beta1=0.9, adam_beta2=0.999, adam_eps=1e-8, adam_eps_rel=None, iterations=None,
                  multiscale=None, min_size=128, colors="style", original_colors=False, mask=None, style_masks=None,
                  content_map=None, style_map=None, feather=0.01, tile=1024, seed=None, device="auto",
                  precision="auto") -> StylePlan:
    """Check every argument of :func:`style_transfer_steps`, then load the images and the network."""
    # -- check everything before any slow work -------------------------------------
    size = longest_side(size)
    min_size = longest_side(min_size, "min_size")
    setup = loss_setup(preset, method)
    method = setup.method
    iterations = int(check_number("iterations", setup.iterations if iterations is None else iterations,
                                  integer=True, positive=True))
    style_scale = check_number("style_scale", style_scale, positive=True)
    tile = int(check_number("tile", tile, integer=True, minimum=4 * TILE_MARGIN))
    init_noise = check_number("init_noise", init_noise, minimum=0)
    cw = check_number("content_weight", setup.content_weight if content_weight is None else content_weight, minimum=0)
    sw = check_number("style_weight", setup.style_weight if style_weight is None else style_weight, minimum=0)
    eps_rel = check_number("adam_eps_rel", setup.adam_eps_rel if adam_eps_rel is None else adam_eps_rel, minimum=0)
    tw = check_number("tv_weight", setup.tv_weight if tv_weight is None else tv_weight, minimum=0)
    rw = check_number("range_weight", setup.range_weight if range_weight is None else range_weight, minimum=0)
    cw, sw, tw = strength_weights(style_strength, cw, sw, tw)
    colors = check_choice("colors", "luma" if original_colors else colors, Colors)
    optimizer = check_choice("optimizer", optimizer or setup.optimizer, Optimizer)
    if method == "swd" and optimizer == "lbfgs":
        # L-BFGS's curvature model and line search assume one fixed function; new projections each step break both.
        raise DeepCanvasError("method swd draws new random projections every step; use optimizer adam with it")
    lr = check_number("lr", lr if lr is not None else (1.0 if optimizer == "lbfgs" else setup.lr or 0.02),
                      positive=True)
    if isinstance(styles, (str, Path)) or hasattr(styles, "mode"):
        styles = [styles]
    styles = list(styles)
    if not styles:
        raise DeepCanvasError("no style image given")
    blend = parse_floats(style_blend_weights, len(styles), "style_blend_weights")
    blend = [b / sum(blend) for b in blend]
    if init not in INITS and not Path(str(init)).exists():
        raise DeepCanvasError(f"init must be one of {', '.join(INITS)} or an image file; '{init}' is neither")
    feather = check_number("feather", feather, minimum=0)

    info, dev = begin(model, device=device, precision=precision, pooling=pooling)
    c_layers = parse_layers(content_layers or info.defaults.get("content_layers"), "content layers")
    s_layers = parse_layers(style_layers or info.defaults.get("style_layers"), "style layers")
    if not style_layers and setup.style_layer_weights and len(setup.style_layer_weights) == len(s_layers):
        s_layers = {l: w * k for (l, w), k in zip(s_layers.items(), setup.style_layer_weights)}
    check_layer_names(info, list(c_layers) + list(s_layers))
    content_img = load_tensor(content, "content image")
    style_imgs = [load_tensor(s, "style image") for s in styles]
    init_img = load_tensor(init, "init image") if init not in INITS else None
    regions = plan_regions(mask, style_masks, content_map, style_map, len(styles), blend,
                           style_blend_weights is not None)
    rng = seed_everything(seed)
    net = models.load_model(model, weights=weights, pooling=pooling, device=dev)

    if setup.divide_style_weight:
        total_w = sum(s_layers.values()) or 1.0
        s_layers = {k: v / total_w for k, v in s_layers.items()}

    if colors == "histogram":
        style_imgs = [color.match_histogram(s, content_img) for s in style_imgs]
    work_content = content_img
    if colors == "luminance":
        style_imgs = [color.match_luminance(s, content_img) for s in style_imgs]
        work_content = color.luminance(content_img)

    final_hw = fit_size(*content_img.shape[-2:], size)
    if method == "swd" and max(final_hw) > tile:
        raise DeepCanvasError(f"method swd sorts the whole image's features and cannot be computed in tiles: "
                              f"use method gram for images above the tile size ({tile} px), or a larger tile")
    # The random projections of the sliced-Wasserstein loss: seeded from the run's seed.
    generator = torch.Generator().manual_seed(rng.randrange(2 ** 31)) if method == "swd" else None

    return StylePlan(net, dev, setup, method, c_layers, s_layers, style_imgs, blend, (cw, sw, tw, rw), optimizer, lr,
                     {"betas": (adam_beta1, adam_beta2), "eps": adam_eps, "eps_rel": eps_rel, "line_search": line_search},
                     tile, generator, style_scale, colors, rng, precision, size, min_size, iterations, content_img,
                     work_content, init, init_img, init_noise, regions, feather)


def style_transfer(content, styles, *, callback: Callable[[Progress], None] | None = None, **kwargs):
    """Run style transfer and return the result as a PIL image. See :func:`style_transfer_steps`."""
    return drive(style_transfer_steps(content, styles, **kwargs), callback).image
