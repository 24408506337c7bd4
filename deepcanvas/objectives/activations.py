"""Terms that excite the network (DeepDream, class visualization, the atlas): a layer's energy, a match to a
guide's features, a class's logit, one channel, one neuron. Each is negated here so that it is minimised."""

from __future__ import annotations

import torch

from ..errors import DeepCanvasError
from .base import Objective
from .masks import Mask


def _channels(a: torch.Tensor, channels, layer: str) -> torch.Tensor:
    if channels is None:
        return a
    c = a.shape[1]
    bad = [ch for ch in channels if not 0 <= ch < c]
    if bad:
        raise DeepCanvasError(f"channel {bad[0]} is out of range for layer {layer!r}, which has channels 0..{c - 1}")
    return a[:, list(channels)]


class LayerEnergy(Objective):
    """DeepDream: maximise ½‖a‖² at ``layer`` (so the gradient at the layer is the activation).

    Averaged over positions and channels so layers of different sizes can be
    mixed with plain weights; a tiled pass adds up the tiles' sums, so tile losses
    add up to the whole image's.
    mask: a :class:`Mask`: each position's energy weighted by it (averaged over the masked positions), so
    the dream grows inside the mask only.
    """

    name = "dream"

    def __init__(self, layer: str, channels: list[int] | None = None, mask: Mask | None = None):
        self.layer, self.channels, self.mask = layer, channels, mask
        self.layers = frozenset([layer])

    def partial(self, acts, image, tile):
        a = _channels(tile.crop(acts[self.layer], image), self.channels, self.layer).float()
        if self.mask is not None:
            m = self.mask.at(acts[self.layer], image, tile)
            return [(a.pow(2) * m).sum(), m.sum() * a.shape[0] * a.shape[1]]
        return [a.pow(2).sum(), torch.tensor(float(a.numel()), device=a.device)]

    def from_totals(self, t):
        return -0.5 * t[0] / (t[1].clamp_min(1e-12) if self.mask is not None else t[1])


class GuideMatch(Objective):
    """Guided DeepDream: at each position, pull toward the guide feature it best matches.

    Maximises sum_x <a(x), g*(x)> with g*(x) = argmax_g <a(x), g> over the guide
    image's features (Google's "controlling dreams" recipe). ``mask`` weights the positions (:class:`Mask`).
    """

    name = "guide"

    def __init__(self, layer: str, guide_features: torch.Tensor, mask: Mask | None = None):
        self.layer, self.mask = layer, mask
        g = guide_features.detach()
        self.guide = g.reshape(g.shape[1], -1).float()  # (C, M)
        self.layers = frozenset([layer])

    def partial(self, acts, image, tile):
        a = tile.crop(acts[self.layer], image).float()
        n, c, h, w = a.shape
        x = a.reshape(n, c, h * w)  # (N, C, P)
        scores = torch.einsum("ncp,cm->npm", x.detach(), self.guide)
        best = self.guide[:, scores.argmax(-1)]  # (C, N, P)
        if self.mask is not None:  # each position's match weighted by the mask
            m = self.mask.at(acts[self.layer], image, tile)
            return [(x * best.permute(1, 0, 2) * m.reshape(1, 1, -1)).sum(), m.sum() * n]
        return [(x * best.permute(1, 0, 2)).sum(), torch.tensor(float(n * h * w), device=a.device)]

    def from_totals(self, t):
        return -t[0] / (t[1].clamp_min(1e-12) if self.mask is not None else t[1])


# ClassScore, Channel and Neuron read one logit, one channel's mean or one position: images small enough
# for one pass, with no sums over positions to split into tiles, so each gives its loss directly.

class ClassScore(Objective):
    """Maximise a classifier's logit for ``index`` (on batch item ``batch`` or all)."""

    name = "class"

    def __init__(self, index: int, layer: str = "logits", batch: int | None = None):
        self.index, self.layer, self.batch = index, layer, batch
        self.layers = frozenset([layer])

    def loss(self, acts, image):
        logits = acts[self.layer]
        if not 0 <= self.index < logits.shape[1]:
            raise DeepCanvasError(f"class index {self.index} is out of range 0..{logits.shape[1] - 1}")
        x = logits[:, self.index] if self.batch is None else logits[self.batch, self.index]
        return -x.float().mean()


class Channel(Objective):
    """Maximise the mean activation of one channel of ``layer``."""

    name = "channel"

    def __init__(self, layer: str, channel: int, batch: int | None = None):
        self.layer, self.channel, self.batch = layer, channel, batch
        self.layers = frozenset([layer])

    def loss(self, acts, image):
        a = _channels(acts[self.layer], [self.channel], self.layer)
        if self.batch is not None:
            a = a[self.batch:self.batch + 1]
        return -a.float().mean()


class Neuron(Objective):
    """Maximise one channel at one position (the centre by default) of a conv layer."""

    name = "neuron"

    def __init__(self, layer: str, channel: int, x: int | None = None, y: int | None = None, batch: int | None = None):
        self.layer, self.channel, self.x, self.y, self.batch = layer, channel, x, y, batch
        self.layers = frozenset([layer])

    def loss(self, acts, image):
        a = _channels(acts[self.layer], [self.channel], self.layer)
        if a.dim() != 4:
            raise DeepCanvasError(f"neuron objectives need a spatial layer; {self.layer!r} has no positions")
        h, w = a.shape[-2:]
        y = h // 2 if self.y is None else self.y
        x = w // 2 if self.x is None else self.x
        if not (0 <= y < h and 0 <= x < w):
            raise DeepCanvasError(f"neuron position ({x}, {y}) is outside layer {self.layer!r} of size {w}x{h}")
        v = a[:, 0, y, x] if self.batch is None else a[self.batch, 0, y, x]
        return -v.float().mean()
