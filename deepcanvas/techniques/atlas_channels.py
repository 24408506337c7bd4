"""Which channels an atlas shows: a count or a list read from the user, checked against each layer,
or with a photo the ones that fire most on it, each with the patch of the photo that excites it most.
"""

from __future__ import annotations

import torch
from PIL import Image

from .. import imaging
from ..errors import DeepCanvasError
from ..limits import check_number
from ..param import resize
from .common import fit_size

MAX_CHANNELS = 1024  # per layer


def parse_channels(spec) -> tuple[int | None, list[int] | None]:
    """'8' or 8 -> (8, None): the first (or most active) 8; '3,7,9' or [3, 7, 9] -> (None, [3, 7, 9])."""
    if isinstance(spec, bool):
        raise DeepCanvasError(f"channels must be a count or a list of channel numbers, got {spec!r}")
    if isinstance(spec, int):
        return int(check_number("channels", spec, integer=True, positive=True, maximum=MAX_CHANNELS)), None
    if isinstance(spec, str):
        parts = [p.strip() for p in spec.split(",") if p.strip()]
        if not parts:
            raise DeepCanvasError("channels: nothing given")
        if len(parts) == 1 and "," not in spec:
            return int(check_number("channels", parts[0], integer=True, positive=True, maximum=MAX_CHANNELS)), None
        spec = parts
    try:
        chosen = [int(check_number("channel", c, integer=True, minimum=0)) for c in spec]
    except TypeError:
        raise DeepCanvasError(f"channels must be a count or a list of channel numbers, got {spec!r}") from None
    if not chosen:
        raise DeepCanvasError("channels: nothing given")
    check_number("channels", len(chosen), integer=True, positive=True, maximum=MAX_CHANNELS)
    return None, list(dict.fromkeys(chosen))


def check_channels(layers: list[str], shapes: dict[str, tuple], count: int | None, chosen: list[int] | None) -> None:
    """A one-line error unless every layer has positions and the channels asked for (``shapes``: probe_layers')."""
    for name in layers:
        if len(shapes[name]) != 3:
            raise DeepCanvasError(f"layer {name!r} has no positions; pick a convolutional layer "
                                  f"(it has {shapes[name][0]} outputs)")
    for name in layers:
        c = shapes[name][0]
        if chosen is not None:
            bad = [ch for ch in chosen if ch >= c]
            if bad:
                raise DeepCanvasError(f"channel {bad[0]} is out of range for layer {name!r}, which has channels "
                                      f"0..{c - 1}")
        elif count > c:
            raise DeepCanvasError(f"channels: layer {name!r} has only {c} channels, {count} asked for")


@torch.no_grad()
def most_active(net, photo: torch.Tensor, layers: list[str], count: int, size: int, dev
                ) -> tuple[dict[str, list[int]], dict[str, dict[int, Image.Image]]]:
    """Per layer, the ``count`` channels whose peak on ``photo`` is highest, and for each the square patch of
    the photo (about three cells of the layer's grid wide) around that peak."""
    hw = fit_size(*photo.shape[-2:], max(224, size))
    x = resize(photo, hw).to(dev)
    acts = net(x, layers)
    full = imaging.tensor_to_image(x.cpu())
    picks: dict[str, list[int]] = {}
    patches: dict[str, dict[int, Image.Image]] = {}
    for name in layers:
        a = acts[name][0].float()  # (C, h, w)
        peak = a.flatten(1).max(1).values
        top = peak.argsort(descending=True)[:count].tolist()
        picks[name] = top
        h, w = a.shape[-2:]
        sy, sx = hw[0] / h, hw[1] / w
        side = int(min(max(hw), max(24, 3 * max(sy, sx))))
        patches[name] = {}
        for ch in top:
            pos = int(a[ch].flatten().argmax())
            cy, cx = (pos // w + 0.5) * sy, (pos % w + 0.5) * sx
            y0 = int(min(max(0, cy - side / 2), max(0, hw[0] - side)))
            x0 = int(min(max(0, cx - side / 2), max(0, hw[1] - side)))
            patches[name][ch] = full.crop((x0, y0, x0 + side, y0 + side))
    return picks, patches
