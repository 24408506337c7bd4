"""Losses, as small pieces that add with weights.

An objective maps ``(activations, image)`` to a scalar **to minimise**; things
to maximise (a class score, a layer's energy) are negated here, once.
``a + b`` and ``3 * a`` build sums, and ``parts()`` reports each named term
so progress bars can show "content 0.41 style 1.2 tv 0.03".
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import DeepCanvasError


@dataclass(frozen=True)
class Region:
    """A tile's core, in pixels relative to the tile, and the tile's origin in the whole image."""

    y0: int = 0
    y1: int | None = None  # None: the whole image, crops are the identity
    x0: int = 0
    x1: int | None = None
    oy: int = 0
    ox: int = 0

    @staticmethod
    def whole(t: torch.Tensor | None = None) -> "Region":
        return Region()

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


def layer_stride(act: torch.Tensor, image: torch.Tensor) -> int:
    """How many image pixels one position of ``act`` spans (a power of two; 1 for the image itself)."""
    return max(1, 2 ** round(math.log2(max(image.shape[-2], 1) / max(act.shape[-2], 1))))


class Mask:
    """A weight map over the image's positions: which positions a term counts, and how much (region control).

    ``weights`` is (1, 1, H, W) in [0, 1] at the resolution of the image the objective sees (style transfer's
    padded image). A layer reads it at its own resolution by averaging each layer position's s x s pixels
    (Gatys et al. 2017 downsample their guidance channels to every layer; area averaging keeps soft edges soft).
    The averages are taken over the whole image, once per stride, so a tile reads the same values at the same
    positions as the whole image does (``Region.crop_target``): tiled equals whole.

    ``shift``: a function returning the (dy, dx) roll of the network's input this evaluation (DeepDream's
    jitter), so that the mask moves with the picture.
    """

    def __init__(self, weights: torch.Tensor, shift=None):
        w = weights.detach().float()
        while w.dim() < 4:
            w = w.unsqueeze(0)
        if w.shape[0] != 1 or w.shape[1] != 1:
            raise DeepCanvasError(f"a mask must be one channel of weights, got shape {tuple(weights.shape)}")
        self.weights, self.shift = w, shift
        self._cache: dict = {}

    def area(self) -> float:
        """The mask's mean weight: the share of the image it covers."""
        return float(self.weights.mean())

    def _strided(self, s: int, shift: tuple[int, int]) -> torch.Tensor:
        key = (s, shift)
        if key not in self._cache:
            m = torch.roll(self.weights, shifts=shift, dims=(-2, -1)) if any(shift) else self.weights
            if s > 1:  # ceil: a layer with ceil(H / s) rows (strided convolutions) is covered too
                m = F.avg_pool2d(m, s, ceil_mode=True)
            if len(self._cache) > 16:
                self._cache.clear()
            self._cache[key] = m
        return self._cache[key]

    def at(self, act: torch.Tensor, image: torch.Tensor, region: "Region | None" = None) -> torch.Tensor:
        """(1, 1, h, w) weights for the positions of ``act`` (cropped to ``region``'s core in a tile)."""
        region = region or Region()
        shift = tuple(self.shift()) if self.shift is not None else (0, 0)
        if region.y1 is None and tuple(self.weights.shape[-2:]) != tuple(image.shape[-2:]):
            # Not the image this mask was made for: stretch it over the image (robustness, not the usual path).
            m = F.interpolate(torch.roll(self.weights, shifts=shift, dims=(-2, -1)), size=act.shape[-2:],
                              mode="area" if act.shape[-2] <= self.weights.shape[-2] else "bilinear")
            return m.to(act.device)
        m = self._strided(layer_stride(act, image), shift).to(act.device)
        if region.y1 is None:
            h, w = act.shape[-2:]
            if m.shape[-2] >= h and m.shape[-1] >= w:
                return m[..., :h, :w]
            return F.interpolate(self.weights.to(act.device), size=(h, w), mode="area")
        return region.crop_target(m, act, image)


def masked_gram(feat: torch.Tensor, mask: torch.Tensor | None, norm: str = "hw") -> torch.Tensor:
    """Guided Gram matrices (Gatys et al. 2017): sum_p m_p f_p f_p^T / sum_p m_p, the Gram of a region.

    ``mask`` (1, 1, H, W) weights each position of ``feat`` (N, C, H, W); a soft weight counts the position
    partly. ``norm='chw'`` divides by C as well (neural-style-pt's scale); None is :func:`gram`.
    """
    if mask is None:
        return gram(feat, norm)
    n, c, h, w = feat.shape
    g = gram(feat.float() * mask.float().sqrt(), "none")
    count = mask.float().sum().clamp_min(1e-12)
    return g / (count * (c if norm == "chw" else 1)) if norm != "none" else g


class Objective:
    name = "objective"
    layers: frozenset[str] = frozenset()

    def loss(self, acts: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def terms(self) -> list[tuple[float, "Objective"]]:
        return [(1.0, self)]

    # For tiled gradients (tiling.py): the loss as a function of sums over positions.
    def partial(self, acts, image, region) -> list[torch.Tensor]:
        """Sums over the positions of ``region`` that ``from_totals`` turns into the loss."""
        raise DeepCanvasError(f"the {self.name} objective cannot be computed in tiles; use a smaller image")

    def from_totals(self, totals: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def parts(self, acts, image) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = defaultdict(lambda: 0)
        for w, o in self.terms():
            out[o.name] = out[o.name] + w * o.loss(acts, image)
        return dict(out)

    def __call__(self, acts, image) -> torch.Tensor:
        return sum(w * o.loss(acts, image) for w, o in self.terms())

    def __add__(self, other: "Objective") -> "Objective":
        return Sum(self.terms() + other.terms())

    def __mul__(self, k: float) -> "Objective":
        return Sum([(k * w, o) for w, o in self.terms()])

    __rmul__ = __mul__

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-other)


class Sum(Objective):
    def __init__(self, terms: list[tuple[float, Objective]]):
        self._terms = terms
        self.layers = frozenset().union(*(o.layers for _, o in terms)) if terms else frozenset()

    def terms(self):
        return list(self._terms)


def _scaled_mse(x: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """MSE scaled so that its gradient has an L1 norm of about one.

    sum(d^2) / sum(|d|) is the typical size of the difference; its gradient is
    well-conditioned whatever the layer's scale, so per-layer weights mean what
    they say and one learning rate suits every layer (after Crowson's
    style-transfer-pytorch).
    """
    d = x - target
    return d.pow(2).sum() / (d.abs().sum() + eps)


def gram(feat: torch.Tensor, norm: str = "hw") -> torch.Tensor:
    """Gram matrices of (N, C, H, W) features: (N, C, C), averaged over positions.

    ``norm='hw'`` divides by H*W (independent of image size, so statistics from
    a style image of any size compare); ``'chw'`` divides by C*H*W as
    neural-style-pt does; ``'none'`` is the raw inner products.
    """
    n, c, h, w = feat.shape
    f = feat.reshape(n, c, h * w).float()  # Gram sums in fp32: half precision overflows here
    g = torch.bmm(f, f.transpose(1, 2))
    if norm == "hw":
        g = g / (h * w)
    elif norm == "chw":
        g = g / (c * h * w)
    return g


class Content(Objective):
    """Features at ``layer`` should match ``target``.

    mode 'scaled' (default): _scaled_mse divided by the target's RMS, so the
    loss does not change when a network's activations are k times larger (the
    Caffe VGGs' are ~20x torchvision's); together with _scaled_mse's unit
    gradient this is the per-layer gradient normalisation that makes layer
    weights mean the same on every network. 'mse': plain mean squared error
    (neural-style-pt, and the seed's 2 * l2_loss / size).
    """

    name = "content"

    def __init__(self, layer: str, target: torch.Tensor, mode: str = "scaled"):
        self.layer, self.target, self.mode = layer, target.detach().float(), mode
        self.layers = frozenset([layer])
        self.rms = self.target.pow(2).mean().sqrt().clamp_min(1e-6)

    def loss(self, acts, image):
        return self.from_totals(self.partial(acts, image, Region.whole(image)))

    def partial(self, acts, image, region):
        x = region.crop(acts[self.layer], image).float()
        d = x - region.crop_target(self.target, acts[self.layer], image)
        return [d.pow(2).sum(), d.abs().sum()]

    def from_totals(self, t):
        if self.mode == "scaled":  # _scaled_mse, from its two sums
            return t[0] / (t[1] + 1e-8) / self.rms
        return t[0] / self.target.numel()


class Style(Objective):
    """Gram matrix of ``layer`` should match ``target_gram`` (Gatys et al. 2015).

    mode 'scaled' (default): _scaled_mse of Grams over H*W, divided by the
    style features' mean power, so it is invariant to the activations' scale
    like Content's. 'mse': MSE of Grams over C*H*W (neural-style-pt).
    mask: a :class:`Mask`: the Gram of the masked region only (Gatys et al. 2017's guided Gram,
    :func:`masked_gram`), so the term paints inside the mask and its gradient is zero where the mask is.
    """

    name = "style"

    def __init__(self, layer: str, target_gram: torch.Tensor, mode: str = "scaled", mask: Mask | None = None):
        self.layer, self.target, self.mode, self.mask = layer, target_gram.detach().float(), mode, mask
        self.layers = frozenset([layer])
        # Mean squared activation of the style features (the Gram's mean diagonal).
        self.power = self.target.diagonal(dim1=-2, dim2=-1).mean().clamp_min(1e-12)

    def loss(self, acts, image):
        if self.mask is not None:
            return self.from_totals(self.partial(acts, image, Region.whole(image)))
        if self.mode == "scaled":
            return _scaled_mse(gram(acts[self.layer], "hw"), self.target) / self.power
        return F.mse_loss(gram(acts[self.layer], "chw"), self.target)

    def partial(self, acts, image, region):
        f = region.crop(acts[self.layer], image)
        n, c, h, w = f.shape
        if self.mask is not None:
            m = self.mask.at(acts[self.layer], image, region)
            return [gram(f.float() * m.sqrt(), "none"), m.sum()]
        return [gram(f, "none"), torch.tensor(float(h * w), device=f.device)]

    def from_totals(self, t):
        g, count = t
        c = g.shape[-1]
        if self.mask is not None:
            count = count.clamp_min(1e-12)  # an empty region: a Gram of zeros, a constant loss, no gradient
        if self.mode == "scaled":
            return _scaled_mse(g / count, self.target) / self.power
        return F.mse_loss(g / (c * count), self.target)


class TotalVariation(Objective):
    """Smoothness prior on the image.

    kind='l2': mean squared neighbour differences (the seed's TV);
    'l1': mean absolute differences (neural-style-pt's);
    'beta': Mahendran & Vedaldi's TV^beta, mean of (dx^2 + dy^2)^(beta/2).
    ``scale`` multiplies pixel values first (255 makes it act on 0..255 pixels).
    """

    name = "tv"

    def __init__(self, kind: str = "l2", beta: float = 2.0, scale: float = 1.0, reduction: str = "mean"):
        self.kind, self.beta, self.scale, self.reduction = kind, beta, scale, reduction

    def loss(self, acts, image):
        return self.from_totals(self.partial(acts, image, Region.whole(image)))

    def partial(self, acts, image, r):
        # Differences from each core pixel to its right / lower neighbour (which may lie in the margin).
        y1, x1 = (image.shape[-2], image.shape[-1]) if r.y1 is None else (r.y1, r.x1)
        x = image[..., r.y0:y1 + 1, r.x0:x1 + 1].float() * self.scale
        hh, ww = min(y1 - r.y0, x.shape[-2]), min(x1 - r.x0, x.shape[-1])
        dx = (x[..., :, 1:] - x[..., :, :-1])[..., :hh, :]
        dy = (x[..., 1:, :] - x[..., :-1, :])[..., :, :ww]
        if self.kind == "beta":
            d = dx[..., : dy.shape[-2], : dy.shape[-1]].pow(2) + dy[..., : dx.shape[-2], : dx.shape[-1]].pow(2)
            v = (d + 1e-8).pow(self.beta / 2)
            return [v.sum(), torch.tensor(float(v.numel())), v.sum(), torch.tensor(0.0)]
        f = (lambda t: t.abs()) if self.kind == "l1" else (lambda t: t.pow(2))
        return [f(dx).sum(), torch.tensor(float(dx.numel())), f(dy).sum(), torch.tensor(float(dy.numel()))]

    def from_totals(self, t):
        sx, nx, sy, ny = t
        if self.kind == "beta":
            return sx if self.reduction == "sum" else sx / nx
        if self.reduction == "sum":
            return sx + sy
        return sx / nx + sy / ny


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
    mixed with plain weights. ``area_scale`` lets a tiled pass weigh each tile
    by its share of the image, so tile losses add up to the whole image's.
    mask: a :class:`Mask`: each position's energy weighted by it (averaged over the masked positions), so
    the dream grows inside the mask only.
    """

    name = "dream"

    def __init__(self, layer: str, channels: list[int] | None = None, mask: Mask | None = None):
        self.layer, self.channels, self.mask = layer, channels, mask
        self.layers = frozenset([layer])

    def loss(self, acts, image):
        if self.mask is not None:
            return self.from_totals(self.partial(acts, image, Region.whole(image)))
        a = _channels(acts[self.layer], self.channels, self.layer).float()
        return -0.5 * a.pow(2).mean()

    def partial(self, acts, image, region):
        a = _channels(region.crop(acts[self.layer], image), self.channels, self.layer).float()
        if self.mask is not None:
            m = self.mask.at(acts[self.layer], image, region)
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

    def loss(self, acts, image):
        return self.from_totals(self.partial(acts, image, Region.whole(image)))

    def partial(self, acts, image, region):
        a = region.crop(acts[self.layer], image).float()
        n, c, h, w = a.shape
        x = a.reshape(n, c, h * w)  # (N, C, P)
        scores = torch.einsum("ncp,cm->npm", x.detach(), self.guide)
        best = self.guide[:, scores.argmax(-1)]  # (C, N, P)
        if self.mask is not None:  # each position's match weighted by the mask
            m = self.mask.at(acts[self.layer], image, region)
            return [(x * best.permute(1, 0, 2) * m.reshape(1, 1, -1)).sum(), m.sum() * n]
        return [(x * best.permute(1, 0, 2)).sum(), torch.tensor(float(n * h * w), device=a.device)]

    def from_totals(self, t):
        return -t[0] / (t[1].clamp_min(1e-12) if self.mask is not None else t[1])


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


class L2(Objective):
    """The seed's L2 decay on the image (centred on grey)."""

    name = "l2"

    def loss(self, acts, image):
        return (image.float() - 0.5).pow(2).mean()

    def partial(self, acts, image, r):
        x = image[..., r.y0:r.y1, r.x0:r.x1].float()
        return [(x - 0.5).pow(2).sum(), torch.tensor(float(x.numel()))]

    def from_totals(self, t):
        return t[0] / t[1]


class FeatureDistance(Objective):
    """Inversion: ‖φ(x) − φ0‖² / ‖φ0‖² (Mahendran & Vedaldi 2015); mode='l2' gives the seed's plain ‖·‖²."""

    name = "features"

    def __init__(self, layer: str, target: torch.Tensor, mode: str = "normalized"):
        self.layer, self.target, self.mode = layer, target.detach().float(), mode
        self.layers = frozenset([layer])
        self.norm = self.target.pow(2).sum().clamp_min(1e-12)

    def loss(self, acts, image):
        return self.from_totals(self.partial(acts, image, Region.whole(image)))

    def partial(self, acts, image, region):
        a = acts[self.layer]
        x = region.crop(a, image).float()
        return [(x - region.crop_target(self.target, a, image)).pow(2).sum()]

    def from_totals(self, t):
        return t[0] / self.norm if self.mode == "normalized" else t[0] / self.target.numel()


class AlphaNorm(Objective):
    """Mahendran & Vedaldi's α-norm prior: mean |x − grey|^α, keeps pixels from running off."""

    name = "alpha"

    def __init__(self, alpha: float = 6.0):
        self.alpha = alpha

    def loss(self, acts, image):
        return ((image.float() - 0.5).abs() * 2 + 1e-8).pow(self.alpha).mean()

    def partial(self, acts, image, r):
        x = image[..., r.y0:r.y1, r.x0:r.x1].float()
        return [((x - 0.5).abs() * 2 + 1e-8).pow(self.alpha).sum(), torch.tensor(float(x.numel()))]

    def from_totals(self, t):
        return t[0] / t[1]


# Natural photos' colours as a Gaussian: ImageNet's mean and per-channel spread, with the channel
# correlations of lucid's colour matrix (param._COLOR_SVD_SQRT); never the target photo's own.
_NATURAL_MEAN = (0.485, 0.456, 0.406)
_NATURAL_STD = (0.229, 0.224, 0.225)


def _natural_colour_whitening() -> torch.Tensor:
    from .param import _COLOR_SVD_SQRT

    c = torch.tensor(_COLOR_SVD_SQRT, dtype=torch.float64)
    c = c @ c.T
    d = c.diagonal().sqrt()
    std = torch.tensor(_NATURAL_STD, dtype=torch.float64)
    cov = c / torch.outer(d, d) * torch.outer(std, std)
    return torch.linalg.cholesky(torch.linalg.inv(cov)).float()  # L with L L^T = cov^-1


class ColourPrior(Objective):
    """Mean squared Mahalanobis distance of each pixel's colour from natural photos' colours, over 3.

    About 1 on a photo, 16 on bright yellow, 34 on magenta: where a deep layer leaves the colour open, it
    pulls towards plausible colours instead of the saturated ones a sigmoid output drifts to.
    """

    name = "colour"

    def __init__(self):
        self.whiten = _natural_colour_whitening()
        self.mean = torch.tensor(_NATURAL_MEAN)

    def loss(self, acts, image):
        return self.from_totals(self.partial(acts, image, Region.whole(image)))

    def partial(self, acts, image, r):
        x = image[..., r.y0:r.y1, r.x0:r.x1].float()
        d = x - self.mean.to(x.device).view(1, 3, 1, 1)
        z = torch.einsum("nchw,cd->ndhw", d, self.whiten.to(x.device))
        return [z.pow(2).sum() / 3, torch.tensor(float(x[:, 0].numel()), device=x.device)]

    def from_totals(self, t):
        return t[0] / t[1]


class OutOfRange(Objective):
    """Squared excursions of the pixels beyond [0, 1] (in 0..255 units), summed.

    Keeps an optimizer that must not be clipped (L-BFGS) inside the range the
    written image is clipped to, with a smooth, honest gradient.
    """

    name = "range"

    def loss(self, acts, image):
        return self.from_totals(self.partial(acts, image, Region.whole(image)))

    def partial(self, acts, image, r):
        x = image[..., r.y0:r.y1, r.x0:r.x1].float()
        return [((x - 1).clamp_min(0).pow(2) + x.neg().clamp_min(0).pow(2)).sum() * 255.0 ** 2]

    def from_totals(self, t):
        return t[0]


class Temporal(Objective):
    """The image should equal ``target`` where ``mask`` is 1: Ruder et al.'s short-term temporal loss.

    ``target`` is the previous output frame warped to this frame by the optical flow, ``mask``
    (N or 1, 1, H, W) its consistency weights (0 on disoccluded pixels and motion boundaries, so those
    pixels feel no pull at all). Several earlier frames (the long-term loss) are several terms.
    mode 'scaled': the masked _scaled_mse, whose gradient has an L1 norm of about one like the
    other deepcanvas losses, so its weight compares directly with theirs; 'mse': the paper's
    (1/D) sum c (x - w)^2 over the D pixel values.
    """

    name = "temporal"

    def __init__(self, target: torch.Tensor, mask: torch.Tensor, mode: str = "scaled"):
        self.target = target.detach().float()
        self.mask = mask.detach().float()
        if self.mask.dim() == 2:
            self.mask = self.mask[None, None]
        if self.mask.shape[-2:] != self.target.shape[-2:]:
            raise ValueError(f"mask {tuple(self.mask.shape)} and target {tuple(self.target.shape)} differ in size")
        self.mode = mode

    def loss(self, acts, image):
        return self.from_totals(self.partial(acts, image, Region.whole(image)))

    def partial(self, acts, image, r):
        y1, x1 = (image.shape[-2], image.shape[-1]) if r.y1 is None else (r.y1, r.x1)
        x = image[..., r.y0:y1, r.x0:x1].float()
        sl = (..., slice(r.oy + r.y0, r.oy + y1), slice(r.ox + r.x0, r.ox + x1))
        m = self.mask.to(x.device)[sl]
        d = (x - self.target.to(x.device)[sl]) * m
        return [d.pow(2).sum(), d.abs().sum(), m.sum() * x.shape[1]]

    def from_totals(self, t):
        if self.mode == "scaled":
            return t[0] / (t[1] + 1e-8)
        return t[0] / (t[2] + 1e-8)
