"""DeepDream (Mordvintsev, Olah & Tyka 2015), the way Google's notebook does it.

Configuration of the one loop: pixels initialised from the photo, the layer's
energy ½‖a‖² (or a guide image's features) as the objective, the normalised
gradient step ``lr * g / mean|g|``, a random roll of the image before every
step (a transform, so its gradient rolls back) and pixels clipped to the valid range.

The stages are the notebook's octaves: the photo is shrunk ``octaves - 1``
times by ``octave_scale``; the smallest copy is dreamt first, and what the
dream added to it (the *detail*) is upscaled and added to the next larger copy,
and so on up to the full size. Images larger than ``tile`` pixels get their
gradients tile by tile (the renderer's tiled gradients, on a grid that moves at
random every step), so memory is bounded by the tile, not by the image.
The endless zoom (``zoom.py``) runs these octaves frame after frame.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from .. import models
from ..models.layered import probe_layers
from .. import regions as R
from .. import transforms as T
from ..errors import DeepCanvasError
from ..limits import check_number
from ..objectives import GuideMatch, LayerEnergy, Mask, Objective, Sum
from ..param import PixelParam, resize
from ..render import Progress, Stage, StageSpec, drive, render
from .common import (Pooling, Precision, begin, check_layer_names, fit_size, load_tensor, longest_side, parse_layers,
                     seed_everything)

#: Octaves whose shorter side would fall below this many pixels are left out.
MIN_OCTAVE_SIDE = 32
#: Context around each tile's core, in pixels (about half of relu4_3's receptive field and more).
TILE_MARGIN = 64
#: Smallest tile accepted: the core must stay larger than the margins around it.
MIN_TILE = 4 * TILE_MARGIN

#: Step sizes chosen by eye at 512 px with the default schedule: VGG dreams burn out (saturated
#: colour fringes, dotted textures) at steps EfficientNet's dreams need to show their animals.
DEFAULT_LR = 0.01
VGG_LR = 0.004


# --------------------------------------------------------------------------- pieces


def octave_sizes(height: int, width: int, octaves: int, octave_scale: float,
                 min_side: int = MIN_OCTAVE_SIDE) -> list[tuple[int, int]]:
    """The pyramid's (height, width) per octave, smallest first (the order they are dreamt in).

    The last entry is the full size; each earlier one is ``octave_scale`` times
    smaller than the next. Octaves whose shorter side would drop below
    ``min_side`` are left out (the full size is always kept).
    """
    sizes = [(height, width)]
    for k in range(1, octaves):
        s = octave_scale ** k
        h, w = max(1, round(height / s)), max(1, round(width / s))
        if min(h, w) < min_side:
            break
        sizes.append((h, w))
    return sizes[::-1]


def upscale_detail(detail: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a detail layer (any sign, so no clamping), as the notebook does."""
    if tuple(detail.shape[-2:]) == tuple(size):
        return detail
    return F.interpolate(detail, size=size, mode="bilinear", align_corners=False)


def dream_objective(layers: dict[str, float], channels: list[int] | None = None,
                    guide_features: dict[str, torch.Tensor] | None = None,
                    scales: dict[str, float] | None = None, mask: Mask | None = None) -> Objective:
    """Sum of ``weight / scale * LayerEnergy(layer, channels)`` over the layers.

    With ``guide_features`` ({layer: features of the guide image}) each term is
    a :class:`GuideMatch` instead. ``scales`` divides each layer's term (see
    :func:`layer_scales`) so that layer weights mean the same on every layer.
    ``mask`` weights every term's positions (the dream grows where it is white).
    """
    obj: Objective = Sum([])
    for layer, w in layers.items():
        if w <= 0:
            continue
        term = (GuideMatch(layer, guide_features[layer], mask=mask) if guide_features is not None
                else LayerEnergy(layer, channels, mask=mask))
        obj = obj + (w / (scales or {}).get(layer, 1.0)) * term
    if not obj.terms():
        raise DeepCanvasError("all dream layer weights are zero")
    return obj


@torch.no_grad()
def layer_scales(net, img: torch.Tensor, layers, channels: list[int] | None = None,
                 guide_features: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
    """Each layer's typical objective size on ``img``, to divide that layer's term by.

    For energies, the mean squared activation (of ``channels``); for a guide,
    the mean squared norm of the guide's feature vectors.
    """
    out = {}
    if guide_features is not None:
        for layer in layers:
            g = guide_features[layer].float()
            out[layer] = float(g.pow(2).sum(1).mean().clamp_min(1e-12))
        return out
    acts = net(img, list(layers))
    for layer in layers:
        a = acts[layer].float()
        if channels is not None:
            a = a[:, channels]
        out[layer] = float(a.pow(2).mean().clamp_min(1e-12))
    return out


# --------------------------------------------------------------------------- set-up


@dataclass
class _Setup:
    net: torch.nn.Module
    dev: torch.device
    layers: dict[str, float]
    channels: list[int] | None
    guide: torch.Tensor | None
    octaves: int
    octave_scale: float
    iterations: int
    lr: float
    jitter: int
    size: int | None
    tile: int
    precision: str
    rng: random.Random
    margin: int = TILE_MARGIN
    scales: dict[str, float] | None = None
    mask: torch.Tensor | None = None  # (1, 1, h, w) where to dream (regions.load_mask), any size
    feather: float = 0.0


def parse_channels(channels) -> list[int] | None:
    if channels is None or channels == "":
        return None
    if isinstance(channels, str):
        items = [c for c in channels.replace(" ", "").split(",") if c]
    elif isinstance(channels, int):
        items = [channels]
    else:
        items = list(channels)
    out = [int(check_number("channel", c, integer=True, minimum=0)) for c in items]
    if not out:
        raise DeepCanvasError("no channels given")
    return out


def _setup(image, *, layers, channels, octaves, octave_scale, iterations, lr, jitter, size, guide, tile, model,
           weights, pooling, seed, device, precision) -> tuple[_Setup, torch.Tensor]:
    """Check every argument, load the images and the network; fail before any slow work.

    Returns the set-up and the photo as a (1, 3, H, W) tensor at ``size``.
    """
    octaves = int(check_number("octaves", octaves, integer=True, positive=True))
    octave_scale = check_number("octave_scale", octave_scale)
    if octave_scale <= 1:
        raise DeepCanvasError(f"octave_scale must be greater than 1, got {octave_scale!r}")
    iterations = int(check_number("iterations", iterations, integer=True, positive=True))
    if lr is None:
        lr = VGG_LR if isinstance(model, str) and model.startswith("vgg") else DEFAULT_LR
    lr = check_number("lr", lr, positive=True)
    jitter = int(check_number("jitter", jitter, integer=True, minimum=0))
    size = None if size is None else longest_side(size)
    tile = int(check_number("tile", tile, integer=True, minimum=MIN_TILE))
    chans = parse_channels(channels)
    if guide is not None and chans is not None:
        raise DeepCanvasError("channels cannot be combined with a guide image (the guide picks the features)")
    rng = seed_everything(seed)
    info, dev = begin(model, device=device, precision=precision, pooling=pooling)
    spec = layers or info.defaults.get("dream_layers")
    if not spec:
        raise DeepCanvasError(f"model {info.name} has no default dream layers; give layers")
    layer_w = parse_layers(spec, "dream layers")
    if not any(w > 0 for w in layer_w.values()):
        raise DeepCanvasError("all dream layer weights are zero")
    check_layer_names(info, list(layer_w))
    base = _load_base(image, size)
    guide_img = load_tensor(guide, "guide image") if guide is not None else None
    net = models.load_model(model, weights=weights, pooling=pooling, device=dev)

    # A dry run at a tiny size tells each layer's channel count and shape.
    shapes, _ = probe_layers(net, list(layer_w))
    for layer, shape in shapes.items():
        if chans is not None:
            bad = [c for c in chans if c >= shape[0]]
            if bad:
                raise DeepCanvasError(
                    f"channel {bad[0]} is out of range for layer {layer!r}, which has channels 0..{shape[0] - 1}"
                )
        if guide_img is not None and len(shape) != 3:
            raise DeepCanvasError(f"a guide needs spatial layers; {layer!r} has no positions")
    return _Setup(net, dev, layer_w, chans, guide_img, octaves, octave_scale, iterations, lr, jitter, size, tile,
                  precision, rng), base


@torch.no_grad()
def _guide_features(s: _Setup, side: int) -> dict[str, torch.Tensor]:
    """The guide's features, at the octave's size but no larger than a tile (memory)."""
    g = s.guide
    hw = fit_size(*g.shape[-2:], max(MIN_OCTAVE_SIDE, min(side, s.tile)))
    acts = s.net(resize(g, hw).to(s.dev), list(s.layers))
    return {k: v.float() for k, v in acts.items()}


def _scales(s: _Setup, base: torch.Tensor) -> dict[str, float] | None:
    """Per-layer normalisers, only needed when several layers are mixed."""
    if len([w for w in s.layers.values() if w > 0]) < 2:
        return None
    probe = resize(base, fit_size(*base.shape[-2:], min(max(base.shape[-2:]), s.tile))).to(s.dev)
    guide = _guide_features(s, s.tile) if s.guide is not None else None
    return layer_scales(s.net, probe, list(s.layers), s.channels, guide)


def _load_base(image, size: int | None) -> torch.Tensor:
    img = load_tensor(image, "image")
    if size is not None:
        img = resize(img, fit_size(*img.shape[-2:], size))
    return img


class _TrackedRoll:
    """``transforms.random_roll`` that remembers its shift, so that a mask can move with the picture."""

    def __init__(self, d: int, rng: random.Random):
        self.d, self.rng, self.shift = d, rng, (0, 0)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.d <= 0:
            return x
        self.shift = (self.rng.randint(-self.d, self.d), self.rng.randint(-self.d, self.d))  # as random_roll draws
        return T.roll(x, *self.shift)


def octave_stages(s: _Setup, base, *, label: str = "", after: Callable[[torch.Tensor], None] | None = None,
                  size: tuple[int, int] | None = None) -> list[StageSpec]:
    """The octaves of one dream, as stages; each stage's result is the full-size dream so far.

    ``base`` is the (1, 3, H, W) photo, or a function of the previous stage's result that
    gives it (a zoom's next frame); then ``size`` gives its (H, W). ``after`` gets the finished dream.
    """
    hw_full = tuple(size or base.shape[-2:])
    sizes = octave_sizes(*hw_full, s.octaves, s.octave_scale)
    state: dict = {}

    def octave(k: int, hw: tuple[int, int]):
        def build(prev: torch.Tensor | None) -> Stage:
            if k == 0:
                state["base"] = (base(prev) if callable(base) else base).cpu()
                if s.scales is None:
                    s.scales = _scales(s, state["base"])
                detail = torch.zeros(1, 3, *hw)
            else:  # what the last octave added, upscaled
                with torch.no_grad():
                    detail = upscale_detail(state["param"].image().detach().cpu() - state["octave_base"], hw)
            full = state["base"]
            octave_base = state["octave_base"] = resize(full, hw)
            guide = _guide_features(s, max(hw)) if s.guide is not None else None
            param = state["param"] = PixelParam((octave_base + detail).to(s.dev))

            def whole(img: torch.Tensor) -> torch.Tensor:  # the full-size photo plus the detail so far
                return (full + upscale_detail(img.cpu() - octave_base, hw_full)).clamp(0, 1)

            transform, mask, lr = T.random_roll(s.jitter, s.rng), None, s.lr
            if s.mask is not None:
                transform = _TrackedRoll(s.jitter, s.rng)
                m = R.feather(R.fit(s.mask, hw), s.feather).to(s.dev)
                mask = Mask(m, shift=lambda: transform.shift)
                # The step is lr / mean|gradient|, and the gradient is ~0 outside the mask: scale by the mask's area
                # so that the dream inside grows as fast as an unmasked one.
                lr = s.lr * max(mask.area(), 1e-3)
            return Stage(param, dream_objective(s.layers, s.channels, guide, s.scales, mask), s.iterations,
                         name=f"{label}octave {k + 1}/{len(sizes)} ({max(hw)} px)", optimizer="normalized",
                         lr=lr, transforms=transform, keep_best=False, tile=s.tile,
                         tile_margin=s.margin, result=whole, after=after if k == len(sizes) - 1 else None)
        return build

    return [octave(k, hw) for k, hw in enumerate(sizes)]


# --------------------------------------------------------------------------- DeepDream


def dream_steps(
    image,
    *,
    layers: str | None = None,
    channels: str | None = None,
    octaves: int = 4,
    octave_scale: float = 1.4,
    iterations: int = 10,
    lr: float | None = None,
    jitter: int = 32,
    size: int | None = 512,
    guide: str | None = None,
    mask: str | None = None,
    feather: float = 0.01,
    tile: int = 512,
    model: str | models.LayeredNet = "efficientnet-lite0",
    weights: str | None = None,
    pooling: Pooling = "max",
    seed: int | None = None,
    device: str = "auto",
    precision: Precision = "auto",
) -> Iterator[Progress]:
    """Yield a Progress after every step; the last one has ``done=True`` and the dream.

    Args:
        image: the photo to dream on (path or PIL image).
        layers: layers whose activations to amplify, with optional weights, e.g. "block10" or
            "block6:1,block10:0.5" (default: the model's dream layers: block10, or relu4_3 on VGGs).
        channels: amplify only these channels of the layers, e.g. "12,40".
        octaves: number of scales, each octave_scale times smaller than the next.
        octave_scale: size ratio between neighbouring octaves (greater than 1).
        iterations: gradient steps per octave.
        lr: step size in pixel values (0..1) on the normalised gradient (default: 0.01; 0.004 for VGGs).
        jitter: largest random shift of the image before each step, in pixels.
        size: longest side of the output in pixels (None keeps the photo's own size).
        guide: image whose features to dream toward, instead of amplifying the photo's own.
        mask: image of where to dream: white dreams, black keeps the photo, grey is in between (any size and
            mode: luminance, or alpha where it has transparency).
        feather: soft edge of the mask, as a share of the image's longest side (0: hard edges).
        tile: process images larger than this many pixels in tiles of this size (bounds memory; at least 256).
        model: network from `deepcanvas models`, or a network object (models.LayeredNet).
        weights: local checkpoint for the model's architecture.
        pooling: max or avg.
        seed: random seed for reproducible results.
        device: auto, cpu, cuda or mps.
        precision: auto (bf16 on CUDA, fp32 elsewhere), fp32, bf16 or fp16.
    """
    feather = check_number("feather", feather, minimum=0)
    mask_img = None
    if mask is not None:  # read and checked before the network is loaded
        mask_img = R.load_mask(mask, "mask")
        R.check_not_empty(mask_img, "the mask")
    s, base = _setup(image, layers=layers, channels=channels, octaves=octaves, octave_scale=octave_scale,
                     iterations=iterations, lr=lr, jitter=jitter, size=size, guide=guide, tile=tile, model=model,
                     weights=weights, pooling=pooling, seed=seed, device=device, precision=precision)
    finish = None
    if mask_img is not None:
        s.mask, s.feather = mask_img, feather
        effect = R.feather(R.fit(mask_img, tuple(base.shape[-2:])), feather)

        def finish(results):  # the photo itself outside the mask, blended across the feathered edge
            return R.composite(results[-1], base, effect)
    # The tile grid gets its own generator, so the jitter does not depend on whether the run tiles.
    yield from render(s.net, octave_stages(s, base), total=len(octave_sizes(*base.shape[-2:], s.octaves,
                      s.octave_scale)) * s.iterations, precision=s.precision, rng=random.Random(s.rng.getrandbits(32)),
                      finish=finish)


def dream(image, *, callback: Callable[[Progress], None] | None = None, **kwargs):
    """Run DeepDream and return the result as a PIL image. See :func:`dream_steps`."""
    return drive(dream_steps(image, **kwargs), callback).image
