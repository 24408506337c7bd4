"""Random image transformations applied before the network (tiling lives in tiling.py).

Transforms make the objective hold for slightly shifted, scaled and rotated
copies of the image, which suppresses the high-frequency patterns an
unconstrained optimizer loves (lucid's "transformation robustness").
"""

from __future__ import annotations

import math
import random
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

Transform = Callable[[torch.Tensor], torch.Tensor]


def compose(*ts: Transform) -> Transform:
    def apply(x):
        for t in ts:
            x = t(x)
        return x

    return apply


def roll(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    return torch.roll(x, shifts=(dy, dx), dims=(-2, -1))


def random_roll(d: int, rng: random.Random | None = None) -> Transform:
    """The seed's jitter: roll the image by up to ``d`` pixels each way (gradients roll back)."""
    rng = rng or random

    def apply(x):
        if d <= 0:
            return x
        return roll(x, rng.randint(-d, d), rng.randint(-d, d))

    return apply


def jitter(d: int, rng: random.Random | None = None) -> Transform:
    """Random crop offset of up to ``d`` pixels (lucid's jitter)."""
    rng = rng or random

    def apply(x):
        if d <= 0:
            return x
        dx, dy = rng.randint(0, d), rng.randint(0, d)
        h, w = x.shape[-2:]
        return x[..., dy:h - d + dy, dx:w - d + dx]

    return apply


def pad(w: int, value: float = 0.5) -> Transform:
    def apply(x):
        return F.pad(x, (w, w, w, w), mode="constant", value=value)

    return apply


def random_scale(scales: Sequence[float], rng: random.Random | None = None) -> Transform:
    rng = rng or random

    def apply(x):
        s = rng.choice(list(scales))
        h, w = x.shape[-2:]
        size = (max(1, round(h * s)), max(1, round(w * s)))
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    return apply


def random_rotate(degrees: Sequence[float], rng: random.Random | None = None) -> Transform:
    rng = rng or random

    def apply(x):
        a = math.radians(rng.choice(list(degrees)))
        if a == 0:
            return x
        cos, sin = math.cos(a), math.sin(a)
        theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype, device=x.device)
        grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    return apply


def random_crop(min_area: float, rng: random.Random) -> Transform:
    """A random square-ish crop of ``min_area``..1 of the area, resized back: the network sees a zoomed part."""

    def apply(x):
        if min_area >= 1:
            return x
        h, w = x.shape[-2:]
        a = rng.uniform(min_area, 1.0)
        ch, cw = max(8, round(h * a ** 0.5)), max(8, round(w * a ** 0.5))
        if ch >= h and cw >= w:
            return x
        y0, x0 = rng.randint(0, h - ch), rng.randint(0, w - cw)
        return F.interpolate(x[..., y0:y0 + ch, x0:x0 + cw], size=(h, w), mode="bilinear", align_corners=False)

    return apply


def robust(shift: int, scale: float, rotate: float, crop: float, rng: random.Random) -> Transform:
    """Lucid's standard transforms with adjustable strength (``shift`` px jitter), then a random zooming crop.

    Lucid's own: pad 12, jitter 8, scale ±10 %, rotate ±10°, jitter 4 (crop=1).
    """
    n = 11
    scales = [1 + scale * (2 * i / (n - 1) - 1) for i in range(n)]
    deg = max(0, round(rotate))
    angles = list(range(-deg, deg + 1)) + [0] * (deg // 2)
    return compose(
        pad(max(12, shift + shift // 2)),
        jitter(shift, rng),
        random_scale(scales, rng),
        random_rotate(angles or [0], rng),
        jitter(max(1, shift // 2), rng),
        random_crop(crop, rng),
    )


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflected borders."""
    if sigma <= 0:
        return x
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    r_y = min(radius, x.shape[-2] - 1)
    r_x = min(radius, x.shape[-1] - 1)
    # Normalise each (possibly truncated) 1-D kernel before repeating it per channel.
    kx = k[radius - r_x: radius + r_x + 1]
    ky = k[radius - r_y: radius + r_y + 1]
    kx = (kx / kx.sum()).view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    ky = (ky / ky.sum()).view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    x = F.conv2d(F.pad(x, (r_x, r_x, 0, 0), mode="reflect"), kx, groups=c)
    x = F.conv2d(F.pad(x, (0, 0, r_y, r_y), mode="reflect"), ky, groups=c)
    return x
