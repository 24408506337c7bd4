"""The sliced-Wasserstein style loss, a style term beyond Gram matrices.

:class:`SlicedWasserstein` is Heitz et al.'s sliced-Wasserstein style loss (CVPR 2021): project a
layer's features on random directions, sort the projections and pull them toward the sorted
projections of the style's features. Matching the whole one-dimensional distributions along many
directions matches far more than the Gram matrix (the second moments) does: the painting's
palette, its contrast and the shape of its strokes' feature distributions.

Three economies keep it cheap and let the sizes differ:

- the style side is a *quantile table*: for each of a small bank of random projection sets the
  style's projections are sorted once and kept at ``quantiles`` levels; a step draws one set from
  the bank (a new, random one each step, as in the paper, among ``bank`` sets), so the style image
  is never sorted again;
- each of the output's projections is compared with the style's quantile at its own rank level
  (linear interpolation), so the style image need not have as many positions as the output;
- the output's projections are ranked, not sorted: pairing each value with the quantile at its rank
  gives the sorted loss's value and gradient, and a long row is ranked by counting it into a
  histogram (:func:`rank_levels`), a few times faster than a sort.

The loss is not a sum over positions (ranks are global), but it depends only on the *multiset*
of projected values, not on where they lie. Its tiled form (tiling.py) therefore gathers instead of
summing: each tile's ``partial`` is the projections of its own core positions, the tiles' pieces are
concatenated, the loss and its gradient with respect to every projected value are computed on the
whole set (in fp32), and each tile back-propagates its slice. One step's draw (the projection
set and the sampled positions, over the whole image's grid) is shared by all tiles, so tiled equals
whole.
"""

from __future__ import annotations

from typing import Literal

import torch

from ..errors import DeepCanvasError
from ..signature import check_choice
from .base import Objective, scaled_mse
from .masks import Mask, layer_stride

#: Style positions a layer's quantile tables are made from (a random subset estimates them to ~1/sqrt of it).
SAMPLES = 16384

SwdMode = Literal["scaled", "mse"]


def random_directions(c: int, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``k`` random unit vectors in R^c, as the columns of a (c, k) matrix."""
    d = torch.randn(c, k, generator=generator)
    return d / d.norm(dim=0, keepdim=True)


def weighted_quantiles(values: torch.Tensor, weights: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Quantiles of each row of ``values`` (K, M) with sample ``weights`` (M,) summing to 1, at ``levels`` (Q,).

    The empirical quantile function with each sample at the middle of its probability mass, linearly
    interpolated between samples (so with equal weights and Q = M it returns the sorted values).
    """
    v, idx = values.sort(dim=1)
    if v.shape[1] == 1:  # one sample (a deep layer of a tiny image): every quantile is that value
        return v.expand(-1, levels.numel()).clone()
    w = weights[idx]  # (K, M)
    mid = w.cumsum(1) - w / 2  # each sample's probability level
    q = levels.expand(v.shape[0], -1).contiguous()
    hi = torch.searchsorted(mid, q).clamp(1, v.shape[1] - 1)
    lo = hi - 1
    m_lo, m_hi = mid.gather(1, lo), mid.gather(1, hi)
    t = ((q - m_lo) / (m_hi - m_lo).clamp_min(1e-12)).clamp(0, 1)
    return v.gather(1, lo) * (1 - t) + v.gather(1, hi) * t


def interpolate_table(table: torch.Tensor, n: int) -> torch.Tensor:
    """A quantile table (K, Q) at levels (i + 0.5) / Q read at the n levels (j + 0.5) / n: (K, n).

    The sorted loss's targets (the loss itself pairs each value with :func:`table_at` at its own rank).
    """
    k, q = table.shape
    if q == n:
        return table
    levels = (torch.arange(n, device=table.device, dtype=table.dtype) + 0.5) / n
    return table_at(table, levels.expand(k, n))


def table_at(table: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """A quantile table (K, Q) at levels (i + 0.5) / Q read at per-row ``levels`` (K, n) in [0, 1]: (K, n).

    Linear between the table's levels, flat beyond its first and last.
    """
    k, q = table.shape
    pos = (levels * q - 0.5).clamp(0, q - 1)
    if q == 1:
        return table.expand(-1, levels.shape[1]).clone()
    lo = pos.floor().long().clamp(max=q - 2)
    t = pos - lo
    return table.gather(1, lo) * (1 - t) + table.gather(1, lo + 1) * t


#: Rows up to this long are ranked by sorting; longer ones by a histogram (rank_levels).
EXACT_RANKS = 4096
#: Bins per row of the histogram: its levels are off by about 1.5e-5 on average (1.5e-4 at most) for 65k values,
#: far finer than the style tables' 1/1024 step, and counting them costs no more than with fewer bins.
RANK_BINS = 16384


def rank_levels(values: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Each value's level in its row's distribution, (rank + 0.5) / N, for ``values`` (K, N): (K, N) in [0, 1].

    ``weights`` (N,) summing to 1 make it a weighted distribution: a value's level is then the weight below it
    plus half its own (as :func:`weighted_quantiles` places its samples).

    Short rows, and rows on a GPU, are sorted. Long rows on the CPU are counted instead: RANK_BINS equal bins
    from the row's minimum to its maximum, a value's rank being the count below its bin plus its place within
    the bin, taken as linear in the value. On a 2-core CPU that is about 3.6x faster than sorting 64 x 65,536
    values, and sorting was a fifth of a 512 px style step. Equal values share one level, inside their group's
    (a sort spreads them over the group in arbitrary order), and the levels depend only on the values, not on
    their order in the row: tiles gathered in another order rank alike.
    """
    k, n = values.shape
    # Counting is what this CPU needs; a GPU sorts fast (and MPS's bincount was slow), so there the sort stays.
    if n <= EXACT_RANKS or values.device.type != "cpu":
        order = values.argsort(dim=1)
        if weights is None:
            sorted_levels = ((torch.arange(n, dtype=values.dtype, device=values.device) + 0.5) / n).expand(k, n)
        else:
            w = weights.to(values.dtype)[order]
            sorted_levels = w.cumsum(1) - w / 2
        return torch.empty_like(values).scatter_(1, order, sorted_levels.contiguous())
    lo, hi = values.aminmax(dim=1, keepdim=True)
    # The minimum and the maximum sit in the middle of the first and the last bin, so that a group of values
    # equal to either (a clipped white sky) takes the middle of its group's levels, not the row's end.
    x = ((values - lo) * ((RANK_BINS - 1) / (hi - lo).clamp_min(1e-30)) + 0.5).clamp_(0, RANK_BINS - 1e-3)
    idx = x.long()
    frac = x - idx
    flat = (idx + torch.arange(k, device=values.device).unsqueeze(1) * RANK_BINS).reshape(-1)
    if weights is None:  # each value's mass is 1 / n
        own = 1 / n
        mass = torch.bincount(flat, minlength=k * RANK_BINS).to(values.dtype) / n
    else:
        own = weights.to(values.dtype)
        mass = torch.bincount(flat, weights=own.repeat(k), minlength=k * RANK_BINS).to(values.dtype)
    below = mass.view(k, RANK_BINS).cumsum(1).reshape(-1) - mass
    # The others in the bin are spread over it evenly; the value itself holds its own mass's middle. So a value
    # crossing into the next bin (the last bits of a tile's sum) keeps its level.
    others = mass[flat].view(k, n) - own
    return (below[flat].view(k, n) + frac * others + own / 2).clamp_(0, 1)


class SlicedWasserstein(Objective):
    """Sorted random projections of ``layer``'s features should match the style's (Heitz et al. 2021).

    style_features: [(features (1, C, H, W), weight), ...]; several style images make a mixture whose
    share of each image is its weight (weights sum to 1).
    projections: directions per step, at most C (None: C, the paper's choice). 64 by default: fresh directions
    every step cover the space over the run, and one step at 384 px cost 3.1 s on 2 cores against 4.8 s with
    C (up to 512) directions, and 2.5 s for the network alone.
    quantiles: levels kept per direction of the style's quantile function (linear between the samples).
    bank: random projection sets prepared for the style side; each evaluation draws one at random.
    samples: style positions kept (a random subset) to make the quantile tables: the tables of a 512 px
    painting's relu1_1 took longer than the network's step (16 sets: ~4 s each on 2 cores) from all 200k.
    mode 'scaled': scaled_mse of the projections against their quantiles, over the style features' RMS
    (scale-invariant like Content and Style); 'mse': the paper's mean squared difference.
    generator: draws the directions and the choice in the bank (seeded by the caller for reproducible runs).
    positions: at most this many of the output's positions per step (a fresh random subset; None: all of them).
    mask: a :class:`~deepcanvas.objectives.Mask` on the output: only the masked positions' features are matched,
    each counting with its weight (a weighted quantile function: a position of weight w spans w of the
    probability), so the term paints inside the mask and its gradient is zero where the mask is.
    A style entry may be (features, weight, mask) with a (1, 1, H, W) mask at the features' resolution: the
    painting's statistics are then taken from its masked region only (semantic maps).
    """

    name = "style"
    PIXELS = "pixels"  # as ``layer``: the image's own RGB values (the painting's palette), no network layer

    def __init__(self, layer: str, style_features: list[tuple[torch.Tensor, float]], *, projections: int | None = 64,
                 quantiles: int = 1024, bank: int = 16, mode: SwdMode = "scaled", samples: int = SAMPLES,
                 generator: torch.Generator | None = None, mask: Mask | None = None, positions: int | None = None):
        if not style_features:
            raise DeepCanvasError("no style features given")
        self.layer, self.mask, self.positions = layer, mask, positions
        self.mode = check_choice("swd mode", mode, SwdMode)
        self.layers = frozenset() if layer == self.PIXELS else frozenset([layer])
        feats, wts = [], []
        for entry in style_features:
            f, b = entry[0].detach().float(), entry[1]
            flat = f.reshape(f.shape[1], -1)  # (C, M_i)
            if len(entry) > 2 and entry[2] is not None:  # the style image's region: its positions, by weight
                m = entry[2].detach().float().reshape(-1).to(flat.device)
                inside = m > 0
                if not bool(inside.any()):
                    continue
                flat, m = flat[:, inside], m[inside]
                if flat.shape[1] > samples:
                    keep = torch.randperm(flat.shape[1], generator=generator)[:samples].to(flat.device)
                    flat, m = flat[:, keep], m[keep]
                feats.append(flat)
                wts.append(float(b) * m / m.sum())
                continue
            if flat.shape[1] > samples:  # a random subset estimates the quantiles to ~1/sqrt(samples)
                keep = torch.randperm(flat.shape[1], generator=generator)[:samples].to(flat.device)
                flat = flat[:, keep]
            feats.append(flat)
            wts.append(torch.full((flat.shape[1],), float(b) / flat.shape[1], device=flat.device))
        if not feats:
            raise DeepCanvasError("the style's region is empty at this size")
        self.feats = torch.cat(feats, 1)
        self.weights = torch.cat(wts)
        self.weights = self.weights / self.weights.sum()
        c, m = self.feats.shape
        self.channels = c
        self.k = int(min(projections or c, c))
        self.q = int(quantiles)
        # Mean squared activation of the style features, as Style's power: the loss's scale.
        self.rms = ((self.feats.pow(2) * self.weights).sum() / c).sqrt().clamp_min(1e-6)
        self.generator = generator
        self.bank_size = max(1, int(bank))
        self._bank: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def _table(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Projection set ``i`` of the bank: its directions (C, K) and the style's quantiles (K, Q), made once."""
        if i not in self._bank:
            dirs = random_directions(self.channels, self.k, self.generator).to(self.feats.device)
            levels = (torch.arange(self.q, device=self.feats.device, dtype=torch.float32) + 0.5) / self.q
            with torch.no_grad():
                table = weighted_quantiles(dirs.T @ self.feats, self.weights, levels)
            self._bank[i] = (dirs, table)
        return self._bank[i]

    def draw(self) -> int:
        return int(torch.randint(self.bank_size, (1,), generator=self.generator))

    # Its own loss (the untiled path): one image, no gathering; ``partial`` and ``from_totals`` are the tiled form.
    def loss(self, acts, image, index: int | None = None):
        dirs, table = self._table(self.draw() if index is None else index)
        f = image if self.layer == self.PIXELS else acts[self.layer]
        if self.mask is not None:
            return self._masked_loss(f.float(), image, dirs, table)
        n, c, h, w = f.shape
        total = 0.0
        keep = None
        if self.positions is not None and h * w > self.positions:
            # A fresh random subset of positions each step: its projections estimate the same quantile functions
            # (to ~1/sqrt(positions)), and every position is drawn over the run. Ranking relu1_1's 200k positions
            # of a 512 px picture cost about half as much as the network's own step. The loss does not depend on
            # the positions' order, and index_select of sorted positions is about twice as fast as random ones.
            keep = torch.randperm(h * w, generator=self.generator)[:self.positions].sort().values.to(f.device)
        for j in range(n):  # each image of a batch is matched to the style on its own
            fj = f[j].reshape(c, h * w)
            if keep is not None:
                fj = fj.index_select(1, keep)
            total = total + self._match(dirs.T @ fj.float(), table)  # (K, N)
        return total / n

    def _match(self, proj: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """One image's loss from its projections (K, N): each value against the style's quantile at its own rank.

        The same loss as sorting the projections and comparing them with the quantiles at N levels (the sum of
        squares does not depend on the order), without the sort: see :func:`rank_levels`.
        """
        target = table_at(table, rank_levels(proj.detach()))
        if self.mode == "scaled":
            return scaled_mse(proj, target) / self.rms
        return (proj - target).pow(2).mean()

    def _masked_loss(self, f, image, dirs, table):
        """The loss over the mask's positions, each weighted by the mask (weighted ranks)."""
        n, c, h, w = f.shape
        m = self.mask.at(f, image).reshape(-1)
        inside = m > 0
        if not bool(inside.any()):
            return f.sum() * 0.0
        wts = m[inside] / m[inside].sum()
        total = 0.0
        for j in range(n):  # (K, P) at the masked positions only
            total = total + self._match_weighted(dirs.T @ f[j].reshape(c, h * w)[:, inside], wts, table)
        return total / n

    def _match_weighted(self, proj: torch.Tensor, wts: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """One image's loss from its projections (K, P) with position weights (P,) summing to 1."""
        d = proj - table_at(table, rank_levels(proj.detach(), wts.detach()))  # each value at its weighted level
        if self.mode == "scaled":  # scaled_mse with each position counted by its weight
            return (wts * d.pow(2)).sum() / ((wts * d.abs()).sum() + 1e-8) / self.rms
        return (wts * d.pow(2)).sum() / d.shape[0]

    # -- the tiled form: projections gathered over the tiles (tiling.tiled_backward) --------------------
    gathers = True

    def start_step(self, image: torch.Tensor) -> None:
        """A new tiled evaluation of the whole ``image``: the next ``partial`` draws this step's projections."""
        self._step, self._image_hw = None, tuple(image.shape[-2:])

    def _draw_step(self, act: torch.Tensor, image: torch.Tensor) -> None:
        """This step's projection set and sampled positions, drawn in the order :meth:`loss` draws them.

        The positions are drawn over the whole image's grid for this layer (its size is the whole image's
        over the layer's stride, rounded up), so the tiles together keep exactly the positions a whole-image
        evaluation would.
        """
        dirs, table = self._table(self.draw())
        keep = None
        if self.mask is None and self.positions is not None:
            s = layer_stride(act, image)
            h, w = (-(-n // s) for n in self._image_hw)
            if h * w > self.positions:
                keep = torch.zeros(h * w, dtype=torch.bool)
                keep[torch.randperm(h * w, generator=self.generator)[:self.positions]] = True
                keep = keep.view(1, 1, h, w).to(act.device)
        self._step = (dirs, table, keep)

    def partial(self, acts, image, tile):
        """[projections (N, K, P) of this tile's core positions] (and [their mask weights (P,)] with a mask)."""
        f = image if self.layer == self.PIXELS else acts[self.layer]  # fp32 after the subset: less to convert
        if getattr(self, "_step", None) is None:
            if not hasattr(self, "_image_hw"):  # called outside tiled_backward: the image is the whole picture
                self._image_hw = tuple(image.shape[-2:])
            self._draw_step(f, image)
        dirs, _, keep = self._step
        core = tile.crop(f, image)
        n, c = core.shape[:2]
        flat = core.reshape(n, c, -1)
        if self.mask is not None:
            m = self.mask.at(f, image, tile).reshape(-1)
            inside = m > 0
            return [dirs.T @ flat[:, :, inside].float(), m[inside]]
        if keep is not None:
            flat = flat[:, :, tile.crop_target(keep, f, image).reshape(-1)]
        return [dirs.T @ flat.float()]

    def from_totals(self, totals):
        """The loss from the gathered projections (and mask weights), as :meth:`loss` computes it."""
        proj, table = totals[0], self._step[1]
        n = proj.shape[0]
        if proj.shape[-1] == 0:
            return proj.sum() * 0.0
        if self.mask is None:
            return sum(self._match(proj[j], table) for j in range(n)) / n
        wts = totals[1] / totals[1].sum()
        return sum(self._match_weighted(proj[j], wts, table) for j in range(n)) / n
