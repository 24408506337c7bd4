"""The style images' targets (Gram matrices, features, guided Grams), kept in an explicit cache.

A :class:`StyleTargets` belongs to whoever runs: a style transfer, or a batch or video
that shares one across its images or frames, pays for the style images' forward passes
once per size instead of once per picture.
"""

from __future__ import annotations

import hashlib
import weakref
from collections import OrderedDict
from typing import Callable

import torch

from .. import regions as R
from ..objectives import masked_gram
from ..param import resize
from ..objectives import tiled_grams
from ..tiling import tiled_features, tiled_samples
from .common import fit_size

TILE_MARGIN = 96  # context around each tile's core: half of relu5_1's receptive field


class StyleTargets:
    """A least-recently-used cache of style targets (the last ``capacity``), keyed by the network, the style
    images' pixels, their blend weights and the settings. ``computed`` counts the misses."""

    def __init__(self, capacity: int = 16):
        self.capacity = capacity
        self.computed = 0
        self._entries: OrderedDict[tuple, tuple[weakref.ref, object]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def get(self, kind: str, net, images, blend, *key, compute: Callable[[], object]):
        """``compute()`` for these images at these settings, remembered."""
        digest = hashlib.sha1()
        for t in images:
            digest.update(t.cpu().numpy().tobytes())
            digest.update(str(tuple(t.shape)).encode())
        full_key = (kind, id(net), digest.hexdigest(), tuple(blend), *key)
        hit = self._entries.get(full_key)
        if hit is not None and hit[0]() is net:  # the same network, not a new one at a freed one's address
            self._entries.move_to_end(full_key)
            return hit[1]
        with torch.no_grad():
            value = compute()
        self.computed += 1
        self._entries[full_key] = (weakref.ref(net), value)
        self._entries.move_to_end(full_key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return value

    def grams(self, net, style_imgs, blend, layers: tuple, side: int, norm: str,
              tile: int | None = None) -> dict[str, torch.Tensor]:
        """Blended Gram matrices of the style images at one size (tile by tile above ``tile`` px)."""
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

        return self.get("grams", net, style_imgs, blend, layers, side, norm, tile, compute=compute)

    def features(self, net, style_imgs, blend, layers: tuple, side: int, tile: int | None = None,
                 samples: int | None = None) -> dict[str, list[tuple[torch.Tensor, float]]]:
        """The style images' activations at one size, with their blend weights (tile by tile above ``tile`` px).

        ``samples``: above ``tile``, only that many random positions of each layer, (1, C, 1, samples): what
        the sliced Wasserstein loss keeps anyway, in memory bounded by the tile instead of the print's size.
        """
        def compute():
            dev = next(net.parameters()).device
            out: dict[str, list] = {l: [] for l in layers}
            for simg, b in zip(style_imgs, blend):
                s_img = resize(simg, fit_size(*simg.shape[-2:], max(16, side))).to(dev)
                whole = tile or max(s_img.shape[-2:])
                if samples is not None and max(s_img.shape[-2:]) > whole:
                    acts = tiled_samples(s_img, lambda p: net(p, layers), layers, tile=whole, margin=TILE_MARGIN,
                                         count=samples)
                else:
                    acts = tiled_features(s_img, lambda p: net(p, layers), layers, tile=whole, margin=TILE_MARGIN)
                for l in layers:
                    out[l].append((acts[l].float(), b))
            return out

        return self.get("features", net, style_imgs, blend, layers, side, tile, samples, compute=compute)

    def guided(self, net, style_imgs, blend, masks, layers: tuple, side: int, norm: str) -> dict[str, torch.Tensor]:
        """Blended guided Gram matrices (Gatys et al. 2017) of the style images' masked regions.

        ``masks``: per style image, a (1, 1, h, w) map of its region at any resolution (stretched over the image
        and area-averaged to each layer).
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

        return self.get("guided", net, list(style_imgs) + list(masks), blend, layers, side, norm, compute=compute)
