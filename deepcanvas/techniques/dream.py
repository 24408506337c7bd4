"""DeepDream (Mordvintsev, Olah & Tyka 2015), the way Google's notebook does it.

The arguments are checked and the photo and network loaded by :func:`prepare_dream` (the zoom and dream
video start the same way); the dream itself is the octave pyramid of :mod:`.dream_octaves`, run by the
one loop. With a mask the dream grows only where the mask is white, and the photo shows elsewhere.
"""

from __future__ import annotations

import random
from typing import Callable, Iterator

import torch

from .. import models
from ..models.layered import probe_layers
from .. import regions as R
from ..errors import DeepCanvasError
from ..limits import check_number
from ..param import resize
from ..render import Progress, drive, render
from .common import (Pooling, Precision, begin, check_layer_names, fit_size, load_tensor, longest_side, parse_layers,
                     seed_everything)
from .dream_octaves import TILE_MARGIN, DreamSetup, octave_sizes, octave_stages

#: Smallest tile accepted: the core must stay larger than the margins around it.
MIN_TILE = 4 * TILE_MARGIN

#: Step sizes chosen by eye at 512 px with the default schedule: VGG dreams burn out (saturated
#: colour fringes, dotted textures) at steps EfficientNet's dreams need to show their animals.
DEFAULT_LR = 0.01
VGG_LR = 0.004


def parse_channels(channels) -> list[int] | None:
    """'12,40', 12 or [12, 40] -> [12, 40]; None or '' -> None (every channel)."""
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


def prepare_dream(image, *, layers, channels, octaves, octave_scale, iterations, lr, jitter, size, guide, tile,
                  model, weights, pooling, seed, device, precision) -> DreamSetup:
    """Check every argument, load the images and the network; fail before any slow work.

    The set-up's ``photo`` is ``image`` as a (1, 3, H, W) tensor at ``size``.
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
    return DreamSetup(net, dev, layer_w, chans, guide_img, octaves, octave_scale, iterations, lr, jitter, size, tile,
                      precision, rng, photo=base)


def _load_base(image, size: int | None) -> torch.Tensor:
    img = load_tensor(image, "image")
    if size is not None:
        img = resize(img, fit_size(*img.shape[-2:], size))
    return img


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
    s = prepare_dream(image, layers=layers, channels=channels, octaves=octaves, octave_scale=octave_scale,
                      iterations=iterations, lr=lr, jitter=jitter, size=size, guide=guide, tile=tile, model=model,
                      weights=weights, pooling=pooling, seed=seed, device=device, precision=precision)
    base = s.photo
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
