"""Style transfer quality on a grid of contents x styles: edge_corr, style_ratio, seconds, and a contact sheet.

    .venv/bin/python benchmarks/style_quality.py                          # 512 px, 12 pairs, swd and gram
    .venv/bin/python benchmarks/style_quality.py --size 256 --pairs 3 --methods swd     # a quick look
    .venv/bin/python benchmarks/style_quality.py --old old-checkout/      # + today's defaults from another checkout
    .venv/bin/python benchmarks/style_quality.py --sheet docs/style_gallery.png --thumb 200

The figures come from ../shared/judge/judge_style.py (imported by path): ``edge_corr`` (do the photo's
contours survive; 1 = all of them) and ``style_ratio`` (texture statistics on EfficientNet-Lite0, another
network than any loss here uses, relative to the untouched photo's; 1 = no style). They are a yardstick
only: nothing here picks a setting by them. Every run is a child process with the same settings
(defaults, except --method), timed around the style transfer call alone.

The project has two photos and three paintings (Starry Night, Turner's shipwreck, Picasso's seated nude,
used by path only) in ../shared/images and three photos and one painting in deepcanvas/data; for a spread of styles (Munch, cubist, fauvist, Turner) this script paints simple
procedural stand-ins at run time (never stored): ``scream`` (wavy bands of orange and blue),
``cubist`` (faceted planes in ochres and greys with dark edges), ``fauve`` (flat, loud colour fields with
brush marks), ``turner`` (a soft, hazy golden glow). ``night`` is tubingen darkened and tinted blue.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DATA = ROOT / "deepcanvas" / "data"

# (content, style): portrait, architecture, landscape, night scene, animal x several styles.
PAIRS = [
    ("tubingen", "starry_night"), ("astronaut", "cubist"), ("golden_gate", "turner"), ("night", "scream"),
    ("chelsea", "swirls"), ("coffee", "fauve"), ("astronaut", "starry_night"), ("golden_gate", "scream"),
    # Real paintings beside Starry Night, by path from ../shared/images (seated-nude is in copyright: never
    # copied into the project; its outputs stay out of committed images except as a sheet's thumbnail).
    ("tubingen", "seated-nude"), ("astronaut", "seated-nude"), ("golden_gate", "shipwreck"),
    ("tubingen", "fauve"),
]


# -- procedural stand-ins for the styles we do not have ------------------------------------------------
def _noise(rng, h, w, cells):
    g = rng.random((cells + 1, cells + 1)).astype(np.float32)
    return np.asarray(Image.fromarray(g, "F").resize((w, h), Image.Resampling.BICUBIC))


def _strokes(img: Image.Image, rng, n: int, palette, length=(8, 24), width=(3, 7), angle=None) -> Image.Image:
    d = ImageDraw.Draw(img)
    w, h = img.size
    for _ in range(n):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        a = angle(x, y) if angle else rng.uniform(0, math.pi)
        ln = rng.uniform(*length)
        c = tuple(int(v) for v in np.clip(np.array(palette[rng.integers(len(palette))]) + rng.normal(0, 12, 3), 0, 255))
        d.line([(x, y), (x + ln * math.cos(a), y + ln * math.sin(a))], fill=c, width=int(rng.uniform(*width)))
    return img


def paint(name: str, w: int = 512, h: int = 400, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    if name == "scream":  # Munch-like: wavy horizontal bands of orange, red and blue, swirling strokes
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        wave = yy / h + 0.08 * np.sin(xx / w * 6 + yy / h * 9) + 0.05 * _noise(rng, h, w, 6)
        bands = [(230, 120, 40), (200, 60, 30), (240, 170, 60), (40, 60, 120), (20, 90, 110), (60, 40, 30)]
        idx = np.clip((wave * 9).astype(int), 0, None) % len(bands)
        idx[yy > 0.55 * h] = 3 + (idx[yy > 0.55 * h] % 3)
        img = Image.fromarray(np.array(bands, np.uint8)[idx])
        img = _strokes(img, rng, 2500, bands, (10, 30), (2, 5),
                       angle=lambda x, y: 0.3 * math.sin(x / w * 6 + y / h * 9))
        return img.filter(ImageFilter.GaussianBlur(0.8))
    if name == "cubist":  # faceted planes, ochres, greys and browns, dark contours
        img = Image.new("RGB", (w, h), (150, 130, 100))
        d = ImageDraw.Draw(img)
        pal = [(190, 150, 90), (120, 100, 80), (170, 170, 160), (90, 80, 70), (210, 190, 140), (60, 70, 80),
               (150, 90, 60)]
        for _ in range(140):
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            pts = [(cx + rng.normal(0, 45), cy + rng.normal(0, 45)) for _ in range(int(rng.integers(3, 6)))]
            d.polygon(pts, fill=pal[rng.integers(len(pal))], outline=(30, 25, 20))
        for _ in range(60):
            x, y = rng.uniform(0, w), rng.uniform(0, h)
            d.line([(x, y), (x + rng.normal(0, 80), y + rng.normal(0, 80))], fill=(25, 20, 15), width=2)
        return _strokes(img, rng, 1500, pal, (4, 10), (2, 4))
    if name == "fauve":  # flat, loud colour fields with visible brush marks
        pal = [(230, 40, 60), (250, 200, 30), (30, 150, 80), (40, 70, 200), (240, 120, 20), (160, 40, 160),
               (20, 180, 190)]
        field = (_noise(rng, h, w, 5) * len(pal) * 1.5).astype(int) % len(pal)
        img = Image.fromarray(np.array(pal, np.uint8)[field])
        return _strokes(img, rng, 500, pal, (10, 30), (5, 9))
    if name == "turner":  # soft golden haze, a pale sun, blurred darker masses
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r = np.hypot(xx - 0.6 * w, yy - 0.4 * h) / w
        glow = np.exp(-r * 2.5)[..., None]
        base = (1 - glow) * np.array([150, 120, 80]) + glow * np.array([255, 240, 200])
        base = base * (0.8 + 0.3 * _noise(rng, h, w, 4))[..., None]
        img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
        img = _strokes(img, rng, 70, [(200, 160, 90), (120, 90, 60), (240, 220, 170), (90, 100, 110)],
                       (60, 160), (14, 30), angle=lambda x, y: rng.normal(0, 0.4))
        return img.filter(ImageFilter.GaussianBlur(6))
    raise ValueError(name)


def image_path(name: str, tmp: Path) -> Path:
    for p in (SHARED / "images" / f"{name}.jpg", DATA / f"{name}.jpg"):
        if p.exists():
            return p
    out = tmp / f"{name}.png"
    if not out.exists():
        if name == "night":  # a night scene: tubingen darkened (gamma), bluish, with lit windows kept brightest
            a = np.asarray(Image.open(SHARED / "images" / "tubingen.jpg").convert("RGB"), np.float32) / 255
            a = a ** 2.2 * np.array([0.55, 0.6, 0.95])
            Image.fromarray((np.clip(a, 0, 1) * 255).astype(np.uint8)).save(out)
        else:
            paint(name).save(out)
    return out


# -- runs --------------------------------------------------------------------------------------------------
CHILD = r"""
import json, sys, time
import deepcanvas
content, style, out, kw = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
t = time.perf_counter()
img = deepcanvas.style_transfer(content, style, **kw)
dt = time.perf_counter() - t
img.save(out)
print(json.dumps({"seconds": dt, "module": deepcanvas.__file__}))
"""


def run_one(content: Path, style: Path, out: Path, kwargs: dict, pythonpath: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    # cwd elsewhere: "python -c" puts the working directory first on sys.path, ahead of PYTHONPATH
    r = subprocess.run([sys.executable, "-c", CHILD, str(content), str(style), str(out), json.dumps(kwargs)],
                       cwd=tempfile.gettempdir(),
                       env=env, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"run failed: {r.stderr[-2000:]}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    if not Path(res["module"]).resolve().is_relative_to(pythonpath.resolve()):
        raise RuntimeError(f"the run imported {res['module']}, not the deepcanvas under {pythonpath}")
    return res["seconds"]


class Judge:
    """judge_style.py's figures, with its network loaded once."""

    def __init__(self):
        sys.path.insert(0, str(SHARED / "judge"))
        import judge_style  # noqa: E402  (the yardstick, by path)

        self.J = judge_style
        self.net = None

    def __call__(self, content: Path, style: Path, output: Path) -> dict:
        import torch
        import torch.nn.functional as F

        J = self.J
        c256, o256 = J.load(str(content), 256), J.load(str(output), 256)
        if c256.shape != o256.shape:
            o256 = F.interpolate(o256, size=c256.shape[-2:], mode="bilinear", align_corners=False)
        c128 = F.interpolate(c256, scale_factor=0.5, mode="area")
        o128 = F.interpolate(o256, size=c128.shape[-2:], mode="area")
        ec, eo = J.edges(J.luma(c128)).flatten(), J.edges(J.luma(o128)).flatten()
        res = {"edge_corr": float(torch.corrcoef(torch.stack([ec, eo]))[0, 1])}
        weights = J.package_weights()
        if weights:
            if self.net is None:
                self.net = J.EffLite0()
                self.net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=False)
                self.net.eval()
            with torch.no_grad():
                gs, gc, go = (J.eff_grams(self.net, J.load(str(p), 384)) for p in (style, content, output))
            d = lambda g1, g2: sum(float(((x - y) ** 2).mean() / (y ** 2).mean()) for x, y in zip(g1, g2))
            res["style_ratio"] = d(go, gs) / d(gc, gs)
        return res


def flat_laplacian(content: Path, output: Path) -> tuple[float, float]:
    """Mean |Laplacian| of the luminance (0..255) over the photo's flattest 15% of pixels: output's, photo's."""
    import torch
    import torch.nn.functional as F

    o = np.asarray(Image.open(output).convert("L"), np.float32)
    c = np.asarray(Image.open(content).convert("L").resize(o.shape[::-1], Image.Resampling.BICUBIC), np.float32)
    k = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).view(1, 1, 3, 3)
    lo, lc = (F.conv2d(torch.from_numpy(a)[None, None], k)[0, 0] for a in (o, c))
    box = torch.ones(1, 1, 7, 7) / 49
    ct = torch.from_numpy(c)[None, None]
    var = (F.conv2d(ct ** 2, box, padding=3) - F.conv2d(ct, box, padding=3) ** 2)[0, 0, 1:-1, 1:-1]
    m = var <= var.flatten().quantile(0.15)
    return float(lo.abs()[m].mean()), float(lc.abs()[m].mean())


def label(img: Image.Image, lines: list[str]) -> Image.Image:
    out = Image.new("RGB", (img.width, img.height + 14 * len(lines) + 4), "white")
    out.paste(img, (0, 0))
    d = ImageDraw.Draw(out)
    font = ImageFont.load_default()
    for i, t in enumerate(lines):
        d.text((3, img.height + 2 + 14 * i), t, fill="black", font=font)
    return out


def thumb(path: Path, h: int) -> Image.Image:
    im = Image.open(path).convert("RGB")
    return im.resize((max(1, round(im.width * h / im.height)), h), Image.Resampling.LANCZOS)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--pairs", type=int, default=len(PAIRS), help="the first N pairs of the grid")
    ap.add_argument("--methods", default="swd,gram", help="comma-separated: swd, gram")
    ap.add_argument("--old", type=Path, help="a checkout of deepcanvas before this change: runs its defaults too")
    ap.add_argument("--old-pairs", type=int, help="run the old defaults on the first N pairs only (they are slow)")
    ap.add_argument("--iterations", type=int, help="override the default iterations (all methods)")
    ap.add_argument("--only", help="comma-separated pair numbers of the grid (1-based) instead of --pairs")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a style_transfer keyword for this run's methods (repeatable; VALUE read as JSON if it "
                         "parses): --set content_weight=0.07")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "style_quality")
    ap.add_argument("--sheet", type=Path, help="contact sheet PNG (default OUT/sheet.png)")
    ap.add_argument("--thumb", type=int, default=160, help="contact sheet row height in pixels")
    a = ap.parse_args(argv)
    a.out = a.out.resolve()
    a.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="styleq-"))
    judge = Judge()
    extra = parse_sets(a.set)
    runs = [(m, {"method": m, **extra}, ROOT) for m in a.methods.split(",") if m]
    chosen = ([PAIRS[int(i) - 1] for i in a.only.split(",")] if a.only else PAIRS[:a.pairs])
    if a.old:
        runs.append(("old", {}, a.old.resolve()))
    rows, sheet_rows = [], []
    print(f"{'content':12s} {'style':13s} {'method':6s} {'edge_corr':>9s} {'style_ratio':>11s} {'seconds':>8s} "
          f"{'flat |lap|':>10s}", flush=True)
    for k, (content_name, style_name) in enumerate(chosen):
        c, s = image_path(content_name, tmp), image_path(style_name, tmp)
        tiles = [label(thumb(c, a.thumb), [content_name]), label(thumb(s, a.thumb), [style_name])]
        for name, kw, root in runs:
            if name == "old" and a.old_pairs is not None and k >= a.old_pairs:
                continue
            kw = dict(kw, size=a.size, seed=a.seed, device="cpu")
            if a.iterations:
                kw["iterations"] = a.iterations
            out = a.out / f"{content_name}__{style_name}__{name}_{a.size}.png"
            secs = run_one(c, s, out, kw, root)
            r = judge(c, s, out)
            fl, fc = flat_laplacian(c, out)
            row = {"content": content_name, "style": style_name, "method": name, "seconds": secs,
                   "flat_laplacian": fl, "photo_flat_laplacian": fc, **r}
            rows.append(row)
            print(f"{content_name:12s} {style_name:13s} {name:6s} {r['edge_corr']:9.3f} "
                  f"{r.get('style_ratio', float('nan')):11.3f} {secs:8.1f} {fl:6.1f}/{fc:<4.1f}", flush=True)
            tiles.append(label(thumb(out, a.thumb), [f"{name} {secs:.0f}s",
                                                     f"edge {r['edge_corr']:.2f} style {r.get('style_ratio', 0):.2f}"]))
        sheet_rows.append(tile_row(tiles))
        write_sheet(sheet_rows, a.sheet or a.out / "sheet.png")  # after every pair: a stopped run keeps its rows
        (a.out / f"results_{a.size}.json").write_text(json.dumps(rows, indent=1))
    for name, _, _ in runs:
        sel = [r for r in rows if r["method"] == name]
        if sel:
            print(f"{name:6s} mean edge_corr {np.mean([r['edge_corr'] for r in sel]):.3f}  min "
                  f"{min(r['edge_corr'] for r in sel):.3f}  mean style_ratio "
                  f"{np.mean([r.get('style_ratio', np.nan) for r in sel]):.3f}  mean seconds "
                  f"{np.mean([r['seconds'] for r in sel]):.1f}")
    print(f"contact sheet: {a.sheet or a.out / 'sheet.png'}")


def parse_sets(items: list[str]) -> dict:
    """--set KEY=VALUE items as style_transfer keywords (VALUE read as JSON if it parses)."""
    extra = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            extra[key] = json.loads(value)
        except json.JSONDecodeError:
            extra[key] = value
    return extra


def tile_row(tiles: list[Image.Image]) -> Image.Image:
    """Labelled pictures side by side, 4 px apart, on white."""
    row = Image.new("RGB", (sum(t.width for t in tiles) + 4 * len(tiles), max(t.height for t in tiles)), "white")
    x = 0
    for t in tiles:
        row.paste(t, (x, 0))
        x += t.width + 4
    return row


def write_sheet(sheet_rows: list, path: Path) -> None:
    sheet = Image.new("RGB", (max(r.width for r in sheet_rows), sum(r.height + 4 for r in sheet_rows)), "white")
    y = 0
    for r in sheet_rows:
        sheet.paste(r, (0, y))
        y += r.height + 4
    path.parent.mkdir(parents=True, exist_ok=True)
    small_png(sheet).save(path, optimize=True)


def small_png(img: Image.Image, colors: int = 256) -> Image.Image:
    """A 256-colour palette image: a contact sheet of photos at a third of the size of full colour."""
    return img.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT,
                                      dither=Image.Dither.FLOYDSTEINBERG)


if __name__ == "__main__":
    main()
