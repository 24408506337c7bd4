#!/usr/bin/env python3
"""Paint ``deepcanvas/data/swirls.jpg``, the default style image, from scratch.

A procedural "post-impressionist night sky": thousands of short, curved,
loaded-brush strokes that follow a swirling flow field (a few vortices on top
of a rolling wind), in deep blues, ultramarine and cobalt, with yellow/ochre
and white strokes around glowing stars and a moon, dark rolling hills, a
flame-shaped dark tree, dark outlines on many strokes, bristle streaks and a
canvas grain. Only numpy and Pillow; deterministic for a given seed.

    python tools/make_style_image.py                      # writes deepcanvas/data/swirls.jpg
    python tools/make_style_image.py -o /tmp/s.png --seed 3

The picture is drawn at ``--supersample`` times the final size and reduced
with LANCZOS, which antialiases the strokes.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

W, H = 512, 384

# Palette (sRGB)
NAVY = (12, 20, 58)
MIDNIGHT = (20, 32, 92)
ULTRAMARINE = (26, 46, 156)
COBALT = (0, 71, 171)
CERULEAN = (42, 110, 190)
SKY = (110, 160, 214)
PALE = (176, 206, 232)
WHITE = (246, 242, 222)
LEMON = (250, 222, 84)
YELLOW = (238, 192, 48)
OCHRE = (200, 128, 36)
TEAL = (34, 102, 112)
DARK_GREEN = (18, 40, 34)
BLACK = (10, 12, 22)
OLIVE = (78, 86, 44)


def smooth_noise(rng, h, w, cells, octaves=3):
    """Value noise in [0, 1]: random grids upsampled with bicubic and summed."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        c = cells * (2 ** o)
        grid = rng.random((max(2, int(c * h / w)) + 1, c + 1)).astype(np.float32)
        up = Image.fromarray(grid, "F").resize((w, h), Image.Resampling.BICUBIC)
        out += amp * np.asarray(up)
        total += amp
        amp *= 0.5
    out /= total
    out -= out.min()
    out /= max(out.max(), 1e-6)
    return out


def mix(a, b, t):
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))


def jitter(rng, c, amount):
    return tuple(int(np.clip(v + rng.normal(0, amount), 0, 255)) for v in c)


def ramp(stops, t):
    """Piecewise-linear colour ramp; stops = [(t0, c0), (t1, c1), ...]."""
    t = min(max(t, 0.0), 1.0)
    for (t0, c0), (t1, c1) in zip(stops, stops[1:]):
        if t <= t1:
            return mix(c0, c1, (t - t0) / max(t1 - t0, 1e-6))
    return stops[-1][1]


class Scene:
    """Flow field and colours of the picture, in final-image coordinates."""

    def __init__(self, rng):
        self.rng = rng
        # vortices: (cx, cy, radius, strength, inward pull)
        self.vortices = [
            (0.46 * W, 0.36 * H, 0.15 * W, 1.0, 0.22),
            (0.70 * W, 0.30 * H, 0.09 * W, -0.8, 0.15),
            (0.23 * W, 0.24 * H, 0.07 * W, 0.7, 0.10),
        ]
        # stars: (cx, cy, halo radius)
        self.stars = [
            (0.87 * W, 0.13 * H, 0.085 * W),  # the moon
            (0.10 * W, 0.10 * H, 0.040 * W),
            (0.34 * W, 0.09 * H, 0.032 * W),
            (0.60 * W, 0.10 * H, 0.036 * W),
            (0.92 * W, 0.46 * H, 0.030 * W),
            (0.78 * W, 0.55 * H, 0.026 * W),
            (0.56 * W, 0.58 * H, 0.022 * W),
            (0.08 * W, 0.45 * H, 0.026 * W),
        ]
        self.noise = smooth_noise(rng, H, W, 6)
        self.noise2 = smooth_noise(rng, H, W, 10)
        self.phase = rng.uniform(0, 2 * math.pi)

    # -- regions
    def horizon(self, x):
        return H * (0.74 + 0.05 * math.sin(x / W * 5.2 + 0.7) + 0.025 * math.sin(x / W * 13.0 + 2.0))

    def tree_span(self, y):
        """(centre, half width) of the flame-shaped tree at height y, or None above it."""
        top = 0.10 * H
        if y < top:
            return None
        t = (y - top) / (H - top)  # 0 at the tip, 1 at the bottom
        half = 0.075 * W * (t ** 0.55) * (1.0 + 0.18 * math.sin(y / H * 40.0))
        cx = 0.15 * W + 0.02 * W * math.sin(y / H * 9.0)
        return cx, half

    def in_tree(self, x, y):
        span = self.tree_span(y)
        return span is not None and abs(x - span[0]) < span[1]

    # -- flow
    def flow(self, x, y):
        if self.in_tree(x, y):
            return (0.22 * math.sin(y / H * 30.0 + x / W * 10.0), -1.0)
        hz = self.horizon(x)
        if y > hz - 2:
            # rolling hills: follow the contour, with some lumps
            dy = (self.horizon(x + 1.0) - hz) + 0.25 * math.sin(x / W * 25.0 + y / H * 18.0)
            return (1.0, dy)
        # wind: rightwards, undulating
        vx = 1.0
        vy = 0.45 * math.sin(x / W * 2 * math.pi * 1.6 + self.phase + y / H * 3.0)
        vx *= 0.55 + 0.45 * (y / hz)
        for cx, cy, r, s, pull in self.vortices:
            dx, dy = x - cx, y - cy
            d = math.hypot(dx, dy) + 1e-6
            f = (d / r) * math.exp(1.0 - d / r)  # peaks at d == r
            f = f * f * 3.2 * abs(s)
            sign = 1.0 if s > 0 else -1.0
            vx += f * (-dy / d * sign - pull * dx / d)
            vy += f * (dx / d * sign - pull * dy / d)
        for cx, cy, r in self.stars:
            dx, dy = x - cx, y - cy
            d = math.hypot(dx, dy) + 1e-6
            if d < 2.4 * r:
                f = 4.0 * math.exp(-((d / r - 1.0) ** 2) * 1.5)
                vx += f * (-dy / d)
                vy += f * (dx / d)
        # a little curl noise
        n = self.noise2[int(min(max(y, 0), H - 1)), int(min(max(x, 0), W - 1))]
        a = n * 4 * math.pi
        vx += 0.25 * math.cos(a)
        vy += 0.25 * math.sin(a)
        return vx, vy

    # -- colour
    def star_glow(self, x, y):
        best = 0.0, None
        for cx, cy, r in self.stars:
            d = math.hypot(x - cx, y - cy) / r
            if d < 2.2 and (best[1] is None or d < best[0]):
                best = d, (cx, cy, r)
        return best

    def color(self, x, y):
        rng = self.rng
        xi, yi = int(min(max(x, 0), W - 1)), int(min(max(y, 0), H - 1))
        n = float(self.noise[yi, xi])
        if self.in_tree(x, y):
            c = ramp([(0, BLACK), (0.45, DARK_GREEN), (0.75, (44, 66, 44)), (1, OLIVE)], 0.5 * n + 0.6 * rng.random())
            if rng.random() < 0.08:
                c = OCHRE if rng.random() < 0.6 else (112, 120, 60)
            return c, 7.0, 2.0
        hz = self.horizon(x)
        if y > hz - 2:
            depth = (y - hz) / max(H - hz, 1)
            band = 0.5 + 0.5 * math.sin(depth * 16.0 + 3.0 * n + x / W * 2.0)
            t = 0.55 * band + 0.45 * (1.0 - depth) ** 2
            c = ramp([(0, BLACK), (0.25, NAVY), (0.45, DARK_GREEN), (0.6, TEAL), (0.78, COBALT), (0.9, CERULEAN), (1, SKY)], t)
            if depth < 0.08 and rng.random() < 0.5:
                c = ramp([(0, CERULEAN), (1, PALE)], rng.random())
            elif rng.random() < 0.05:
                c = rng.choice([YELLOW, OCHRE, LEMON, OLIVE])
            return c, 10.0, 1.3
        d, star = self.star_glow(x, y)
        if star is not None:
            if d < 0.35:
                c = WHITE if rng.random() < 0.5 else LEMON
            elif d < 0.75:
                c = ramp([(0, LEMON), (0.5, YELLOW), (1, OCHRE)], rng.random())
            elif d < 1.25:
                c = ramp([(0, WHITE), (0.5, PALE), (1, YELLOW)], rng.random())
            elif d < 1.7:
                c = ramp([(0, CERULEAN), (1, SKY)], rng.random())
            else:
                c = None
            if c is not None:
                return c, 10.0, 0.8
        # sky: blues; banded along the big swirl, with yellow/white streaks in the wind
        cx, cy, r, _, _ = self.vortices[0]
        dv = math.hypot(x - cx, y - cy) / r
        band = 0.5 + 0.5 * math.sin(dv * 7.5 + 1.2 * n)
        t = 0.55 * n + 0.45 * band
        if dv < 1.9:
            t = 0.35 * t + 0.65 * (0.5 + 0.5 * math.sin(dv * 9.0))
            c = ramp([(0, NAVY), (0.3, ULTRAMARINE), (0.55, CERULEAN), (0.8, SKY), (1, PALE)], t)
            if dv < 0.28:
                c = ramp([(0, PALE), (0.5, WHITE), (1, LEMON)], rng.random())
            elif rng.random() < 0.10 * band:
                c = WHITE if rng.random() < 0.6 else LEMON
        else:
            # wind bands across the sky
            wave = 0.5 + 0.5 * math.sin(y / H * 14.0 + 2.0 * math.sin(x / W * 6.0 + self.phase))
            t = 0.6 * t + 0.4 * wave
            c = ramp([(0, NAVY), (0.25, MIDNIGHT), (0.5, ULTRAMARINE), (0.72, COBALT), (0.9, CERULEAN), (1, SKY)], t)
            if rng.random() < 0.06 * wave:
                c = rng.choice([YELLOW, OCHRE, PALE, WHITE])
        return c, 9.0, 1.0


def trace(scene, x, y, length, step):
    """Follow the flow field from (x, y) in both directions; return the points."""
    def run(sign):
        pts = []
        px, py = x, y
        for _ in range(int(length / step)):
            vx, vy = scene.flow(px, py)
            n = math.hypot(vx, vy) + 1e-9
            px += sign * step * vx / n
            py += sign * step * vy / n
            if not (-4 <= px <= W + 4 and -4 <= py <= H + 4):
                break
            pts.append((px, py))
        return pts

    back = run(-1.0)[: int(length / step / 2)]
    fwd = run(1.0)[: int(length / step / 2) + 1]
    return back[::-1] + [(x, y)] + fwd


def paint(seed=7, supersample=2):
    rng = np.random.default_rng(seed)
    scene = Scene(rng)
    S = supersample
    w, h = W * S, H * S

    # underpainting: a blurred colour map of the scene
    small = np.zeros((H // 4, W // 4, 3), np.uint8)
    for j in range(small.shape[0]):
        for i in range(small.shape[1]):
            small[j, i] = scene.color(i * 4 + 2, j * 4 + 2)[0]
    under = Image.fromarray(small, "RGB").resize((w, h), Image.Resampling.BICUBIC)
    canvas = under.filter(ImageFilter.GaussianBlur(6 * S))
    canvas = Image.blend(canvas, Image.new("RGB", (w, h), NAVY), 0.25)
    draw = ImageDraw.Draw(canvas)

    def tapered(pts, color, wd):
        """A polyline that swells in the middle and ends in rounded tips."""
        n = len(pts)
        for i in range(n - 1):
            t = (i + 0.5) / (n - 1)
            wi = wd * (0.45 + 0.55 * math.sin(math.pi * t) ** 0.6)
            draw.line([pts[i], pts[i + 1]], fill=color, width=max(1, int(round(wi))))
        for i in range(n):
            t = i / (n - 1)
            r = 0.5 * wd * (0.45 + 0.55 * math.sin(math.pi * t) ** 0.6) - 0.25
            if r >= 1.0:
                x, y = pts[i]
                draw.ellipse((x - r, y - r, x + r, y + r), fill=color)

    def stroke(points, color, width, outline):
        pts = [(px * S, py * S) for px, py in points]
        if len(pts) < 2:
            return
        wd = max(1.0, width * S)
        if outline:
            dark = mix(color, BLACK, 0.72)
            off = (rng.normal(0, 0.6) * S, rng.normal(0, 0.6) * S)
            tapered([(a + off[0], b + off[1]) for a, b in pts], dark, wd + 2 * S)
        tapered(pts, color, wd)
        # bristles: thin lighter and darker streaks inside the stroke
        if wd >= 3 * S:
            ang = math.atan2(pts[-1][1] - pts[0][1], pts[-1][0] - pts[0][0]) + math.pi / 2
            k0 = max(1, len(pts) // 6)
            inner = pts[k0: len(pts) - k0] if len(pts) > 2 * k0 + 1 else pts
            for k in range(int(rng.integers(2, 5))):
                o = rng.uniform(-0.3, 0.3) * wd
                dx, dy = math.cos(ang) * o, math.sin(ang) * o
                shade = mix(color, WHITE if rng.random() < 0.5 else BLACK, rng.uniform(0.12, 0.3))
                draw.line([(a + dx, b + dy) for a, b in inner], fill=shade, width=max(1, S // 2 + int(rng.integers(0, S))))

    # passes: (count, length range, width range, outline probability)
    passes = [
        (2600, (18, 34), (5.5, 8.0), 0.15),
        (3600, (12, 26), (4.0, 6.0), 0.35),
        (4200, (8, 18), (2.8, 4.5), 0.45),
        (1800, (5, 11), (2.0, 3.2), 0.30),
    ]
    for count, (l0, l1), (w0, w1), p_out in passes:
        for _ in range(count):
            x, y = rng.uniform(-4, W + 4), rng.uniform(-4, H + 4)
            color, jit, out_mult = scene.color(x, y)
            color = jitter(rng, color, jit)
            pts = trace(scene, x, y, rng.uniform(l0, l1), 2.0)
            stroke(pts, color, rng.uniform(w0, w1), rng.random() < p_out * out_mult)

    # dark contour lines along the hill crests (broken, and not across the tree)
    ridges = [
        (lambda xx: scene.horizon(xx), BLACK, 0.9),
        (lambda xx: scene.horizon(xx) + H * (0.085 + 0.03 * math.sin(xx / W * 8.0 + 1.0)), NAVY, 0.6),
    ]
    for ridge, shade, keep in ridges:
        x = -6.0
        while x < W + 6:
            seg = rng.uniform(10, 22)
            xs = np.linspace(x, x + seg, 6)
            pts = [(xx, ridge(xx) + rng.normal(0, 0.5)) for xx in xs]
            if rng.random() < keep and not any(scene.in_tree(a, b) for a, b in pts):
                stroke(pts, jitter(rng, shade, 6), rng.uniform(2.0, 3.2), False)
            x += seg * rng.uniform(0.7, 1.05)

    # dark flickering contours along the edges of the tree
    for side in (-1.0, 1.0):
        y = 0.11 * H
        while y < H + 4:
            seg = rng.uniform(8, 16)
            pts = []
            for yy in np.linspace(y, y + seg, 5):
                span = scene.tree_span(yy)
                if span is not None:
                    pts.append((span[0] + side * (span[1] - 1.0) + rng.normal(0, 0.4), yy))
            if len(pts) > 1 and rng.random() < 0.8:
                stroke(pts, jitter(rng, BLACK, 5), rng.uniform(1.8, 2.8), False)
            y += seg * rng.uniform(0.8, 1.1)

    # the cores of the stars and the moon: concentric dabs, bright on top
    for cx, cy, r in scene.stars:
        for ring in np.linspace(0.95, 0.15, 6):
            n = int(10 + 40 * ring)
            for k in range(n):
                a0 = 2 * math.pi * k / n + rng.uniform(0, 0.4)
                rr = ring * r * 0.8
                arc = [(cx + rr * math.cos(a0 + t), cy + rr * math.sin(a0 + t)) for t in np.linspace(0, 0.55, 5)]
                c = ramp([(0, WHITE), (0.45, LEMON), (0.8, YELLOW), (1, OCHRE)], ring + rng.normal(0, 0.1))
                stroke(arc, jitter(rng, c, 8), rng.uniform(2.2, 3.6), ring > 0.8 and rng.random() < 0.5)

    img = canvas.resize((W, H), Image.Resampling.LANCZOS)

    # paint texture: canvas weave plus impasto-like value noise, then a gentle unsharp
    a = np.asarray(img).astype(np.float32)
    yy, xx = np.mgrid[0:H, 0:W]
    weave = 0.5 * (np.sin(xx * 2.1) + np.sin(yy * 2.1)) * 3.0
    grain = rng.normal(0, 4.0, (H, W)).astype(np.float32)
    grain = sum(np.roll(np.roll(grain, dy, 0), dx, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 3.0
    a += (weave + grain)[..., None]
    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")
    img = img.filter(ImageFilter.UnsharpMask(radius=1.2, percent=60, threshold=2))
    return img


def main(argv=None):
    root = pathlib.Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default=str(root / "deepcanvas" / "data" / "swirls.jpg"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--supersample", type=int, default=2)
    ap.add_argument("--quality", type=int, default=92)
    args = ap.parse_args(argv)
    img = paint(args.seed, args.supersample)
    out = pathlib.Path(args.output)
    if out.suffix.lower() in (".jpg", ".jpeg"):
        img.save(out, quality=args.quality, optimize=True)
    else:
        img.save(out)
    print(f"wrote {out} ({img.size[0]}x{img.size[1]}, {out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
