"""Exact tiled gradients: memory bounded by the tile, not the image.

Style statistics are global (a Gram matrix sums over every position), so a
tile cannot compute its loss alone. Every objective therefore also exposes its
loss as a function of *sums over positions* (``Objective.partial`` and
``Objective.from_totals``). A tiled step makes two passes:

1. without gradients, add up each objective's sums over the tiles' cores;
2. differentiate the loss with respect to those totals (tiny tensors), then,
   tile by tile, back-propagate ``<dL/dtotals, this tile's sums>`` to the
   tile's pixels and add the result into one image-sized gradient.

An objective whose loss is a function of the multiset of its positions' values (sliced Wasserstein:
``Objective.gathers``) gives the values themselves: pass 1 concatenates the tiles' pieces instead of
adding them, and pass 2 back-propagates each tile's slice of the gradient.

The chain rule makes this equal to the whole-image gradient wherever a tile's
margin covers the network's receptive field; the tile grid moves randomly each
step so the small differences left at core borders never stay in one place.
DeepDream and style transfer share this one mechanism.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

ALIGN = 16  # the deepest stride of the networks here: keep feature grids aligned across tiles


@dataclass(frozen=True)
class Tile:
    """A tile's core box, in pixels relative to the tile, and the tile's origin in the whole image.

    ``Tile()`` is the whole image, whose crops are the identity: an objective's whole-image loss is its
    tiled form over that one tile (``Objective.loss``).
    """

    y0: int = 0
    y1: int | None = None  # None: the whole image
    x0: int = 0
    x1: int | None = None
    oy: int = 0
    ox: int = 0

    def _bounds(self, act: torch.Tensor, image: torch.Tensor) -> tuple[int, int, int, int, int]:
        s = max(1, 2 ** round(torch.log2(torch.tensor(image.shape[-2] / act.shape[-2])).item()))
        h, w = act.shape[-2:]
        return self.y0 // s, min(h, -(-self.y1 // s)), self.x0 // s, min(w, -(-self.x1 // s)), s

    def crop(self, act: torch.Tensor, image: torch.Tensor | None) -> torch.Tensor:
        """The core's part of a spatial activation map of this tile."""
        if self.y1 is None:
            return act
        y0, y1, x0, x1, _ = self._bounds(act, image)
        return act[..., y0:y1, x0:x1]

    def crop_target(self, target: torch.Tensor, act: torch.Tensor, image: torch.Tensor | None) -> torch.Tensor:
        """The same positions in a whole-image target map."""
        if self.y1 is None:
            return target
        y0, y1, x0, x1, s = self._bounds(act, image)
        oy, ox = self.oy // s, self.ox // s
        return target[..., oy + y0:oy + y1, ox + x0:ox + x1]


def grid(h: int, w: int, core: int, rng: random.Random | None) -> list[tuple[int, int, int, int]]:
    """Core boxes (y0, y1, x0, x1) that partition an h x w image, at a random aligned offset."""
    core = max(ALIGN, core // ALIGN * ALIGN)

    def cuts(n):
        off = rng.randrange(0, core, ALIGN) if rng else 0
        pts = [0] + [p for p in range(off, n, core) if 0 < p < n] + [n]
        return list(zip(pts[:-1], pts[1:]))

    return [(y0, y1, x0, x1) for y0, y1 in cuts(h) for x0, x1 in cuts(w)]


def tile_boxes(h: int, w: int, tile: int, margin: int, rng: random.Random | None = None):
    """((ty0, ty1, tx0, tx1), Tile) for each tile: its core plus a margin, clipped to the image.

    An image no larger than ``tile`` is one box, the whole image.
    """
    if max(h, w) <= tile:
        yield (0, h, 0, w), Tile(0, h, 0, w)
        return
    margin = -(-margin // ALIGN) * ALIGN
    for y0, y1, x0, x1 in grid(h, w, tile - 2 * margin, rng):
        ty0, tx0 = max(0, y0 - margin), max(0, x0 - margin)
        ty1, tx1 = min(h, y1 + margin), min(w, x1 + margin)
        yield (ty0, ty1, tx0, tx1), Tile(y0 - ty0, y1 - ty0, x0 - tx0, x1 - tx0, ty0, tx0)


def tiled_backward(img: torch.Tensor, terms, forward, *, tile: int, margin: int, rng: random.Random | None,
                   grad_scale: float = 1.0):
    """Back-propagate the objective's gradient into ``img`` tile by tile.

    terms: [(weight, objective)]; forward(tile_pixels) -> activations.
    grad_scale: the gradient arrives multiplied by this (fp16 loss scaling, render.LossScale).
    Returns (total loss, {name: weighted loss}).
    """
    boxes = list(tile_boxes(*img.shape[-2:], tile, margin, rng))  # one grid for both passes
    det = img.detach()
    for _, o in terms:
        o.start_step(det)

    # Pass 1: totals of every objective's sums (or, for a gathering objective, every tile's pieces).
    totals: list[list[torch.Tensor] | None] = [None] * len(terms)
    pieces: list[list[list[torch.Tensor]]] = [[] for _ in terms]
    with torch.no_grad():
        for (ty0, ty1, tx0, tx1), core in boxes:
            pix = det[..., ty0:ty1, tx0:tx1]
            acts = forward(pix)
            for i, (_, o) in enumerate(terms):
                part = o.partial(acts, pix, core)
                if o.gathers:
                    pieces[i].append(part)
                else:
                    totals[i] = part if totals[i] is None else [a + b for a, b in zip(totals[i], part)]
    # A gathering objective's slice of the gathered pieces for tile t: offsets[i][t][k] along the last dimension.
    offsets: list[list[list[int]]] = [[] for _ in terms]
    for i, (_, o) in enumerate(terms):
        if o.gathers:
            totals[i] = [torch.cat(ps, -1) for ps in zip(*pieces[i])]
            ends = [0] * len(totals[i])
            for part in pieces[i]:
                offsets[i].append(list(ends))
                ends = [e + p.shape[-1] for e, p in zip(ends, part)]
    del pieces

    # The loss as a function of the totals, and its gradient with respect to them.
    leaves = [[t.detach().float().requires_grad_(True) for t in tot] for tot in totals]
    parts: dict[str, float] = {}
    loss = 0.0
    for (wgt, o), tot in zip(terms, leaves):
        v = wgt * o.from_totals(tot)
        parts[o.name] = parts.get(o.name, 0.0) + float(v.detach())
        loss = loss + v
    flat = [t for tot in leaves for t in tot]
    grads = torch.autograd.grad(loss, flat, allow_unused=True)
    it = iter(grads)
    dtot = [[next(it) for _ in tot] for tot in leaves]

    # Pass 2: each tile's share of the gradient.
    full = torch.zeros_like(det)
    for t, ((ty0, ty1, tx0, tx1), core) in enumerate(boxes):
        pix = det[..., ty0:ty1, tx0:tx1].clone().requires_grad_(True)
        acts = forward(pix)
        surrogate = 0.0
        for i, ((_, o), dt) in enumerate(zip(terms, dtot)):
            for k, (g, p) in enumerate(zip(dt, o.partial(acts, pix, core))):
                if g is not None and p.requires_grad:
                    if o.gathers:  # this tile's own values' share of the gradient
                        g = g[..., offsets[i][t][k]:offsets[i][t][k] + p.shape[-1]]
                    surrogate = surrogate + (g.to(p.dtype) * p).sum()
        if torch.is_tensor(surrogate):
            (g,) = torch.autograd.grad(surrogate * grad_scale, pix)
            full[..., ty0:ty1, tx0:tx1] += g
    if img.is_leaf:  # the pixels themselves: hand the buffer over (backward would keep a copy of it)
        img.grad = full if img.grad is None else img.grad.add_(full)
    else:
        img.backward(full)
    return float(loss.detach()), parts


def _pieces(img: torch.Tensor, forward, layers, tile: int, margin: int):
    """Tile by tile, each layer's core piece: (layer, piece, (row, column) of its origin in the whole image's
    grid for the layer, that grid's (height, width): the image's over the layer's stride, rounded up)."""
    for (ty0, ty1, tx0, tx1), core in tile_boxes(*img.shape[-2:], tile, margin):
        pix = img[..., ty0:ty1, tx0:tx1]
        acts = forward(pix)
        for l in layers:
            y0, _, x0, _, s = core._bounds(acts[l], pix)
            yield l, core.crop(acts[l], pix), (ty0 // s + y0, tx0 // s + x0), (-(-img.shape[-2] // s),
                                                                              -(-img.shape[-1] // s))


@torch.no_grad()
def tiled_features(img: torch.Tensor, forward, layers, *, tile: int, margin: int) -> dict[str, torch.Tensor]:
    """Whole-image activation maps, computed tile by tile when the image is larger than ``tile``.

    Each tile's core lands where ``Tile.crop_target`` will look for it, written straight into the whole map
    (one map's memory, not the pieces' and the map's).
    """
    out: dict[str, torch.Tensor] = {}
    ends: dict[str, tuple[int, int]] = {}
    for l, piece, (y, x), (h, w) in _pieces(img, forward, layers, tile, margin):
        if l not in out:
            out[l] = piece.new_zeros(*piece.shape[:-2], h, w)
        out[l][..., y:y + piece.shape[-2], x:x + piece.shape[-1]] = piece
        ey, ex = ends.get(l, (0, 0))
        ends[l] = max(ey, y + piece.shape[-2]), max(ex, x + piece.shape[-1])
    return {l: out[l][..., :ends[l][0], :ends[l][1]] for l in layers}


@torch.no_grad()
def tiled_samples(img: torch.Tensor, forward, layers, *, tile: int, margin: int, count: int,
                  seed: int = 0) -> dict[str, torch.Tensor]:
    """``count`` positions of each layer's whole-image activation map, drawn at random over its grid, computed
    tile by tile: (1, C, 1, count) per layer (every position when the grid has fewer).

    What a distribution's statistics need (sliced Wasserstein's quantile tables keep a random subset anyway)
    in memory bounded by the tile: a print's style image at 4096 px would otherwise hold about 6 GB of
    VGG16 activations.
    """
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    chosen: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}  # per layer: rows, columns, slots
    for l, piece, (y, x), (h, w) in _pieces(img, forward, layers, tile, margin):
        if l not in chosen:
            idx = torch.randperm(h * w, generator=gen)[:count].sort().values
            chosen[l] = (idx // w, idx % w, torch.arange(idx.numel()))
            out[l] = piece.new_zeros(1, piece.shape[1], 1, idx.numel())
        rows, cols, slots = chosen[l]
        inside = (rows >= y) & (rows < y + piece.shape[-2]) & (cols >= x) & (cols < x + piece.shape[-1])
        out[l][0, :, 0, slots[inside]] = piece[0][:, rows[inside] - y, cols[inside] - x].to(out[l].dtype)
    return out
