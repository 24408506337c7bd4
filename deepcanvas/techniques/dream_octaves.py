"""The octave pyramid a DeepDream grows on, as stages of the one loop (dream, zoom and dream video share it).

The photo is shrunk ``octaves - 1`` times by ``octave_scale``; the smallest copy is dreamt first, and what
the dream added to it (the *detail*) is upscaled and added to the next larger copy, and so on up to the full
size. Each octave is one stage: pixels from the photo plus the detail, the layer's energy ½‖a‖² (or a guide
image's features) as the objective, the normalised gradient step, a random roll before every step and
gradients tile by tile on images larger than ``tile`` pixels.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .. import regions as R
from .. import transforms as T
from ..errors import DeepCanvasError
from ..objectives import GuideMatch, LayerEnergy, Mask, Objective, Sum
from ..options import DreamOptions
from ..param import PixelParam, resize
from ..render import Stage, StageSpec
from .common import fit_size

#: Octaves whose shorter side would fall below this many pixels are left out.
MIN_OCTAVE_SIDE = 32
#: Context around each tile's core, in pixels (about half of relu4_3's receptive field and more).
TILE_MARGIN = 64


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


@dataclass
class DreamSetup:
    """Everything a dream's octaves need, checked and loaded (:func:`dream.prepare_dream` makes it)."""

    net: torch.nn.Module
    dev: torch.device
    layers: dict[str, float]  # the options' layers, parsed (or the model's dream layers)
    channels: list[int] | None  # the options' channels, parsed
    guide: torch.Tensor | None
    options: DreamOptions  # with its lr resolved
    precision: str
    rng: random.Random
    margin: int = TILE_MARGIN
    scales: dict[str, float] | None = None
    mask: torch.Tensor | None = None  # (1, 1, h, w) where to dream (regions.load_mask), any size
    feather: float = 0.0
    photo: torch.Tensor | None = None  # (1, 3, H, W) at the dream's size, when there was one photo

    def sizes(self, hw: tuple[int, int]) -> list[tuple[int, int]]:
        """The octaves' (height, width) for a picture of size ``hw``, smallest first."""
        return octave_sizes(*hw, self.options.octaves, self.options.octave_scale)

    def steps(self, hw: tuple[int, int]) -> int:
        """The steps of one dream on a picture of size ``hw``."""
        return len(self.sizes(hw)) * self.options.iterations


@torch.no_grad()
def _guide_features(s: DreamSetup, side: int) -> dict[str, torch.Tensor]:
    """The guide's features, at the octave's size but no larger than a tile (memory)."""
    g = s.guide
    hw = fit_size(*g.shape[-2:], max(MIN_OCTAVE_SIDE, min(side, s.options.tile)))
    acts = s.net(resize(g, hw).to(s.dev), list(s.layers))
    return {k: v.float() for k, v in acts.items()}


def _scales(s: DreamSetup, base: torch.Tensor) -> dict[str, float] | None:
    """Per-layer normalisers, only needed when several layers are mixed."""
    if len([w for w in s.layers.values() if w > 0]) < 2:
        return None
    probe = resize(base, fit_size(*base.shape[-2:], min(max(base.shape[-2:]), s.options.tile))).to(s.dev)
    guide = _guide_features(s, s.options.tile) if s.guide is not None else None
    return layer_scales(s.net, probe, list(s.layers), s.channels, guide)


class _TrackedRoll:
    """``transforms.random_roll`` that remembers its shift, so that a mask can move with the picture."""

    def __init__(self, d: int, rng: random.Random):
        self.d, self.rng, self.shift = d, rng, (0, 0)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.d <= 0:
            return x
        self.shift = (self.rng.randint(-self.d, self.d), self.rng.randint(-self.d, self.d))  # as random_roll draws
        return T.roll(x, *self.shift)


def octave_stages(s: DreamSetup, base, *, label: str = "", after: Callable[[torch.Tensor], None] | None = None,
                  size: tuple[int, int] | None = None) -> list[StageSpec]:
    """The octaves of one dream, as stages; each stage's result is the full-size dream so far.

    ``base`` is the (1, 3, H, W) photo, or a function of the previous stage's result that
    gives it (a zoom's next frame); then ``size`` gives its (H, W). ``after`` gets the finished dream.
    """
    hw_full = tuple(size or base.shape[-2:])
    sizes = s.sizes(hw_full)
    options = s.options
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

            transform, mask, lr = T.random_roll(options.jitter, s.rng), None, options.lr
            if s.mask is not None:
                transform = _TrackedRoll(options.jitter, s.rng)
                m = R.feather(R.fit(s.mask, hw), s.feather).to(s.dev)
                mask = Mask(m, shift=lambda: transform.shift)
                # The step is lr / mean|gradient|, and the gradient is ~0 outside the mask: scale by the mask's area
                # so that the dream inside grows as fast as an unmasked one.
                lr = options.lr * max(mask.area(), 1e-3)
            return Stage(param, dream_objective(s.layers, s.channels, guide, s.scales, mask), options.iterations,
                         name=f"{label}octave {k + 1}/{len(sizes)} ({max(hw)} px)", optimizer="normalized",
                         lr=lr, transforms=transform, keep_best=False, tile=options.tile,
                         tile_margin=s.margin, result=whole, after=after if k == len(sizes) - 1 else None)
        return build

    return [octave(k, hw) for k, hw in enumerate(sizes)]
