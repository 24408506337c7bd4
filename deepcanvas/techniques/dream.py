"""DeepDream (Mordvintsev, Olah & Tyka 2015), the way Google's notebook does it.

The options are declared once, in :class:`deepcanvas.options.DreamOptions` (shared with the zoom and dream
video, which start the same way, through :func:`prepare_dream`: it loads the photo and the network and
checks what needs them); the dream itself is the octave pyramid of :mod:`.dream_octaves`, run by the one
loop. With a mask the dream grows only where the mask is white, and the photo shows elsewhere.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Callable, Iterator

import torch

from .. import models
from ..models.layered import probe_layers
from .. import regions as R
from ..errors import DeepCanvasError
from ..limits import check_number
from ..param import resize
from ..options import DreamOptions, NetworkOptions, RunOptions
from ..render import Progress, drive, render
from ..signature import flat_options
from .common import begin, network_of, check_layer_names, fit_size, load_tensor, longest_side, parse_layers, seed_everything
from .dream_octaves import DreamSetup, octave_stages

#: Step sizes chosen by eye at 512 px with the default schedule: VGG dreams burn out (saturated
#: colour fringes, dotted textures) at steps EfficientNet's dreams need to show their animals.
DEFAULT_LR = 0.01
VGG_LR = 0.004

#: A dream's defaults that differ from the shared records' (the zoom and dream video start from them too).
DREAM_DEFAULTS = {"model": "efficientnet-lite0"}


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


def prepare_dream(image, options: DreamOptions, network: NetworkOptions, run: RunOptions,
                  size: int | None) -> DreamSetup:
    """Check what needs the network (layers, channels, the guide), load the images and the network; fail before
    any slow work.

    The set-up's ``photo`` is ``image`` as a (1, 3, H, W) tensor at ``size``; its options' ``lr`` is resolved.
    """
    lr = options.lr
    if lr is None:
        lr = VGG_LR if isinstance(network.model, str) and network.model.startswith("vgg") else DEFAULT_LR
    options = dataclasses.replace(options, lr=lr)
    channels = parse_channels(options.channels)
    if options.guide is not None and channels is not None:
        raise DeepCanvasError("channels cannot be combined with a guide image (the guide picks the features)")
    rng = seed_everything(run.seed)
    info, dev = begin(network.model, device=network.device, precision=network.precision, pooling=network.pooling,
                     weights=network.weights, mean=network.mean, std=network.std)
    spec = options.layers or info.defaults.get("dream_layers")
    if not spec:
        raise DeepCanvasError(f"model {info.name} has no default dream layers; give layers")
    layer_w = parse_layers(spec, "dream layers")
    if not any(w > 0 for w in layer_w.values()):
        raise DeepCanvasError("all dream layer weights are zero")
    check_layer_names(info, list(layer_w))
    base = _load_base(image, size)
    guide_img = load_tensor(options.guide, "guide image") if options.guide is not None else None
    net = network_of(network, dev)

    # A dry run at a tiny size tells each layer's channel count and shape.
    shapes, _ = probe_layers(net, list(layer_w))
    for layer, shape in shapes.items():
        if channels is not None:
            bad = [c for c in channels if c >= shape[0]]
            if bad:
                raise DeepCanvasError(
                    f"channel {bad[0]} is out of range for layer {layer!r}, which has channels 0..{shape[0] - 1}"
                )
        if guide_img is not None and len(shape) != 3:
            raise DeepCanvasError(f"a guide needs spatial layers; {layer!r} has no positions")
    return DreamSetup(net, dev, layer_w, channels, guide_img, options, network.precision, rng, photo=base)


def _load_base(image, size: int | None) -> torch.Tensor:
    img = load_tensor(image, "image")
    if size is not None:
        img = resize(img, fit_size(*img.shape[-2:], size))
    return img


@flat_options(defaults=DREAM_DEFAULTS, options=DreamOptions, run=RunOptions, network=NetworkOptions)
def dream_steps(image, *, options: DreamOptions, size: int | None = 512, mask: str | None = None,
                feather: float = 0.01, run: RunOptions, network: NetworkOptions) -> Iterator[Progress]:
    """Yield a Progress after every step; the last one has ``done=True`` and the dream.

    Args:
        image: the photo to dream on (path or PIL image).
        size: longest side of the output in pixels (None keeps the photo's own size).
        mask: image of where to dream: white dreams, black keeps the photo, grey is in between (any size and
            mode: luminance, or alpha where it has transparency).
        feather: soft edge of the mask, as a share of the image's longest side (0: hard edges).
    """
    size = None if size is None else longest_side(size)
    feather = check_number("feather", feather, minimum=0)
    mask_img = None
    if mask is not None:  # read and checked before the network is loaded
        mask_img = R.load_mask(mask, "mask")
        R.check_not_empty(mask_img, "the mask")
    s = prepare_dream(image, options, network, run, size)
    base = s.photo
    finish = None
    if mask_img is not None:
        s.mask, s.feather = mask_img, feather
        effect = R.feather(R.fit(mask_img, tuple(base.shape[-2:])), feather)

        def finish(results):  # the photo itself outside the mask, blended across the feathered edge
            return R.composite(results[-1], base, effect)
    # The tile grid gets its own generator, so the jitter does not depend on whether the run tiles.
    yield from render(s.net, octave_stages(s, base), total=s.steps(base.shape[-2:]), precision=s.precision,
                      rng=random.Random(s.rng.getrandbits(32)), finish=finish)


def dream(image, *, callback: Callable[[Progress], None] | None = None, **kwargs):
    """Run DeepDream and return the result as a PIL image. See :func:`dream_steps`."""
    return drive(dream_steps(image, **kwargs), callback).image
