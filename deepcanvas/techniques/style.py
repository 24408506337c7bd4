"""Style transfer (Gatys, Ecker & Bethge 2015), coarse to fine.

Configuration of the one loop: pixels initialised from the content image,
no random transforms, content + Gram style + TV objective, L-BFGS or Adam,
and a schedule of growing sizes; each size starts from the previous result
upsampled, so the big, slow sizes only refine.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Literal, Sequence, get_args

import torch

from .. import models
from ..errors import DeepCanvasError, check_number
from ..objectives import Content, OutOfRange, Style, Sum, TotalVariation
from ..param import PixelParam, resize
from ..render import Progress, Stage, drive, render
from ..signature import check_choice
from ..tiling import tiled_features, tiled_grams
from . import color
from .common import (Pooling, Precision, begin, check_layer_names, fit_size, load_tensor, longest_side, parse_floats, parse_layers,
                     seed_everything)

Preset = Literal["deepcanvas", "neural-style-pt"]
Colors = Literal["style", "luma", "luminance", "histogram"]
Init = Literal["content", "noise", "blend"]
Optimizer = Literal["adam", "lbfgs"]
INITS = get_args(Init)
TILE_MARGIN = 96  # context around each tile's core: half of relu5_1's receptive field


@dataclass(frozen=True)
class LossSetup:
    """How the losses are measured (see objectives.py)."""

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


def loss_setup(preset: str) -> LossSetup:
    if preset == "neural-style-pt":
        # Exactly neural-style-pt's defaults: MSE content (weight 5), MSE of Grams / (C*H*W),
        # weight 100 per style layer, TV 1e-3 on the L1 differences of 0..255 pixels (summed).
        # Single scale, as neural-style-pt: with this summed L1 TV, coarse-to-fine turned the
        # small sizes' flat patches into blocks (512 px content loss 295 against 198; README).
        return LossSetup("mse", 5.0, 100.0, 1e-3, TotalVariation("l1", scale=255.0, reduction="sum"), False,
                         "lbfgs", False, 1e-2)
    if preset == "deepcanvas":
        # Scale-invariant scaled MSE (objectives.py): weights chosen by eye on photos x paintings.
        return LossSetup("scaled", 0.3, 1.0, 2.0, TotalVariation("l2"), True, "adam", True, 1e-6)
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


def style_targets(net, style_imgs, blend, layers: tuple, side: int, norm: str,
                  tile: int | None = None) -> dict[str, torch.Tensor]:
    """Blended Gram matrices of the style images at one size (tile by tile above ``tile`` px), memoised.

    A batch of content images (video frames), or a rerun in the studio, pays
    for the style images' forward passes once per size, not once per image.
    """
    digest = hashlib.sha1()
    for t in style_imgs:
        digest.update(t.cpu().numpy().tobytes())
        digest.update(str(tuple(t.shape)).encode())
    key = (id(net), digest.hexdigest(), tuple(blend), layers, side, norm, tile)
    if key in _TARGETS:
        _TARGETS.move_to_end(key)
        return _TARGETS[key]
    dev = next(net.parameters()).device
    grams: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for simg, b in zip(style_imgs, blend):
            s_hw = fit_size(*simg.shape[-2:], max(16, side))
            g = tiled_grams(resize(simg, s_hw).to(dev), lambda p: net(p, layers), layers, norm,
                            tile=tile or max(s_hw), margin=TILE_MARGIN)
            for l in layers:
                grams[l] = grams.get(l, 0) + b * g[l]
    _TARGETS[key] = grams
    while len(_TARGETS) > 16:
        _TARGETS.popitem(last=False)
    return grams


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
    init: Init | str = "content",
    init_noise: float = 0.5,
    optimizer: Optimizer | None = None,
    lr: float | None = None,
    line_search: bool = True,
    adam_beta1: float = 0.9,
    adam_beta2: float = 0.999,
    adam_eps: float = 1e-8,
    iterations: int = 60,
    multiscale: bool | None = None,
    min_size: int = 128,
    colors: Colors = "style",
    original_colors: bool = False,
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
        init: start from content, noise, blend (of content and noise), or an image file.
        init_noise: share of noise in a blend init.
        optimizer: adam or lbfgs (default from the preset: adam for deepcanvas, lbfgs for neural-style-pt).
        lr: learning rate (default 1 for lbfgs, 0.02 for adam).
        line_search: L-BFGS with a strong-Wolfe line search (off: neural-style-pt's plain L-BFGS, which can
            overshoot and stall).
        adam_beta1: Adam's beta1.
        adam_beta2: Adam's beta2.
        adam_eps: Adam's epsilon.
        iterations: iterations at the full size (smaller sizes get more).
        multiscale: coarse-to-fine schedule from min_size up to size (default from the preset: on for
            deepcanvas, off for neural-style-pt).
        min_size: longest side of the first, coarsest scale.
        colors: style (the painting's colours), luma (keep the content's colours by swapping luminance),
            luminance (luminance-only transfer), histogram (recolour the style images to the content's palette first).
        original_colors: keep the content's colours (same as colors=luma).
        tile: sizes above this are computed in tiles of this many pixels, so memory is bounded by the tile.
        seed: random seed for reproducible results.
        device: auto, cpu, cuda or mps.
        precision: auto (bf16 on CUDA, fp32 elsewhere), fp32, bf16 or fp16.
    """
    # -- check everything before any slow work -------------------------------------
    size = longest_side(size)
    min_size = longest_side(min_size, "min_size")
    iterations = int(check_number("iterations", iterations, integer=True, positive=True))
    style_scale = check_number("style_scale", style_scale, positive=True)
    tile = int(check_number("tile", tile, integer=True, minimum=4 * TILE_MARGIN))
    init_noise = check_number("init_noise", init_noise, minimum=0)
    setup = loss_setup(preset)
    cw = check_number("content_weight", setup.content_weight if content_weight is None else content_weight, minimum=0)
    sw = check_number("style_weight", setup.style_weight if style_weight is None else style_weight, minimum=0)
    tw = check_number("tv_weight", setup.tv_weight if tv_weight is None else tv_weight, minimum=0)
    rw = check_number("range_weight", setup.range_weight if range_weight is None else range_weight, minimum=0)
    colors = check_choice("colors", "luma" if original_colors else colors, Colors)
    optimizer = check_choice("optimizer", optimizer or setup.optimizer, Optimizer)
    lr = check_number("lr", lr if lr is not None else (1.0 if optimizer == "lbfgs" else 0.02), positive=True)
    if isinstance(styles, (str, Path)) or hasattr(styles, "mode"):
        styles = [styles]
    styles = list(styles)
    if not styles:
        raise DeepCanvasError("no style image given")
    blend = parse_floats(style_blend_weights, len(styles), "style_blend_weights")
    blend = [b / sum(blend) for b in blend]
    if init not in INITS and not Path(str(init)).exists():
        raise DeepCanvasError(f"init must be one of {', '.join(INITS)} or an image file; '{init}' is neither")
    info, dev = begin(model, device=device, precision=precision, pooling=pooling)
    c_layers = parse_layers(content_layers or info.defaults.get("content_layers"), "content layers")
    s_layers = parse_layers(style_layers or info.defaults.get("style_layers"), "style layers")
    check_layer_names(info, list(c_layers) + list(s_layers))
    content_img = load_tensor(content, "content image")
    style_imgs = [load_tensor(s, "style image") for s in styles]
    init_img = load_tensor(init, "init image") if init not in INITS else None
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

    # -- the run: one stage per scale, each starting from the previous result upsampled -------------
    h0, w0 = content_img.shape[-2:]
    final_hw = fit_size(h0, w0, size)
    schedule = scale_schedule(size, min_size, iterations, setup.multiscale if multiscale is None else multiscale)

    def objective_at(hw, side) -> Sum:
        with torch.no_grad():
            target = resize(work_content, hw).to(dev)
            # Memory bounded by the tile here too (one piece when the image fits in a tile).
            c_acts = tiled_features(target, lambda p: net(p, c_layers), list(c_layers), tile=tile,
                                    margin=TILE_MARGIN)
            grams = style_targets(net, style_imgs, blend, tuple(s_layers), round(side * style_scale),
                                  "chw" if setup.mode == "mse" else "hw", tile)
        objective = Sum([])
        for l, w in c_layers.items():
            if w > 0:
                objective = objective + cw * w * Content(l, c_acts[l], setup.mode)
        for l, w in s_layers.items():
            if w > 0:
                objective = objective + sw * w * Style(l, grams[l], setup.mode)
        if tw > 0:
            objective = objective + tw * setup.tv
        if optimizer == "lbfgs" and rw > 0:  # L-BFGS's pixels are never clipped (param.py): keep them in range
            objective = objective + rw * OutOfRange()
        return objective

    def start_image(hw, prev) -> torch.Tensor:
        if prev is not None:
            return resize(prev, hw)
        if init_img is not None:
            return resize(init_img, hw)
        if init == "noise":  # neural-style-pt's random init: the mean colour with faint noise
            mean = torch.tensor(models.vgg.CAFFE_MEAN_BGR[::-1]).view(1, 3, 1, 1) / 255
            return (mean + torch.randn(1, 3, *hw) * 0.001).clamp(0, 1)
        if init == "blend":
            return (1 - init_noise) * resize(work_content, hw) + init_noise * torch.rand(1, 3, *hw)
        return resize(work_content, hw)

    def scale_stage(k: int, side: int, n_iter: int):
        def build(prev: torch.Tensor | None) -> Stage:
            hw = fit_size(h0, w0, side)
            return Stage(PixelParam(start_image(hw, prev).to(dev), clip=optimizer != "lbfgs"), objective_at(hw, side),
                         n_iter, name=f"scale {k + 1}/{len(schedule)} ({max(hw)} px)", optimizer=optimizer, lr=lr,
                         tile=tile, tile_margin=TILE_MARGIN, result=lambda img: img.cpu(),
                         optimizer_options={"betas": (adam_beta1, adam_beta2), "eps": adam_eps,
                                            "line_search": line_search})
        return build

    def finish(results: list[torch.Tensor]) -> torch.Tensor:
        img = resize(results[-1], final_hw)
        if colors == "luminance":
            return color.luma_swap(color.luminance(img), resize(content_img, final_hw))
        if colors == "luma":
            return color.luma_swap(img, resize(content_img, final_hw))
        return img

    stages = [scale_stage(k, side, n) for k, (side, n) in enumerate(schedule)]
    yield from render(net, stages, total=sum(n for _, n in schedule), precision=precision, rng=rng, finish=finish)


def style_transfer(content, styles, *, callback: Callable[[Progress], None] | None = None, **kwargs):
    """Run style transfer and return the result as a PIL image. See :func:`style_transfer_steps`."""
    return drive(style_transfer_steps(content, styles, **kwargs), callback).image
