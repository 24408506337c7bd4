"""The README's region pictures: a mask, two styles split along the horizon, a doodle with semantic maps.

    .venv/bin/python tools/make_regions_pictures.py [--size 256] [--only mask,horizon,doodle]

Writes docs/regions_mask.png, docs/regions_horizon.png and docs/regions_doodle.png (contact sheets), and the
doodle's maps docs/regions_swirls_map.png (the bundled painting's regions: sky, stars, trees and hills, made
here from its colours) and docs/regions_doodle_map.png (a doodle drawn here in the same colours). The horizon
picture uses ../shared/images/golden_gate.jpg and starry_night.jpg (by path) and the procedural "scream"
stand-in of benchmarks/style_quality.py; it is skipped when ../shared is absent.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
DATA, DOCS, SHARED = ROOT / "deepcanvas" / "data", ROOT / "docs", ROOT.parent / "shared" / "images"
SKY, STAR, LAND = (40, 70, 200), (255, 210, 40), (20, 110, 60)


def swirls_map() -> Image.Image:
    """The bundled painting's regions from its colours: yellow stars, dark green-black trees and hills, blue sky."""
    a = np.asarray(Image.open(DATA / "swirls.jpg").convert("RGB"), np.float32)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    lab = np.zeros(a.shape[:2], np.uint8)  # 0 sky
    h, w = lab.shape
    yy, xx = np.mgrid[0:h, 0:w]
    dark = (a.sum(-1) < 260) & (g >= 0.8 * b)  # the greens and blacks of the cypress and the hills
    lab[dark & ((xx < 0.3 * w) | (yy > 0.7 * h))] = 2
    lab[(r > 150) & (g > 120) & (b < 130)] = 1  # stars
    # Clean up: a majority filter, so each region is a plain patch (as one would paint it).
    img = Image.fromarray(lab * 100).filter(ImageFilter.ModeFilter(9)).filter(ImageFilter.ModeFilter(9))
    lab = np.asarray(img) // 100
    lab[int(0.83 * h):][lab[int(0.83 * h):] == 0] = 2  # the hills along the bottom
    out = np.zeros(lab.shape + (3,), np.uint8)
    for k, c in enumerate((SKY, STAR, LAND)):
        out[lab == k] = c
    return Image.fromarray(out)


def doodle_map(w: int = 512, h: int = 384) -> Image.Image:
    """A doodle in the same colours: a sky, two moons, rolling hills and a tree, laid out differently."""
    img = Image.new("RGB", (w, h), SKY)
    d = ImageDraw.Draw(img)
    hills = [(0, h)] + [(x, int(h * (0.62 + 0.08 * np.sin(x / w * 2 * np.pi * 1.3 + 0.8)))) for x in range(0, w + 1, 8)]
    d.polygon(hills + [(w, h)], fill=LAND)
    d.polygon([(int(0.72 * w), h), (int(0.78 * w), int(0.18 * h)), (int(0.84 * w), h)], fill=LAND)  # a tree
    for cx, cy, rad in ((0.18, 0.2, 0.07), (0.5, 0.3, 0.045), (0.33, 0.12, 0.03)):
        d.ellipse([cx * w - rad * w, cy * h - rad * w, cx * w + rad * w, cy * h + rad * w], fill=STAR)
    return img


def labelled(img: Image.Image, text: str, height: int) -> Image.Image:
    img = img.convert("RGB")
    img = img.resize((round(img.width * height / img.height), height), Image.Resampling.LANCZOS)
    out = Image.new("RGB", (img.width, height + 22), (255, 255, 255))
    out.paste(img, (0, 22))
    ImageDraw.Draw(out).rectangle([0, 22, img.width - 1, height + 21], outline=(150, 150, 150))  # white masks show
    try:
        font = ImageFont.load_default(size=14)
    except TypeError:  # older Pillow
        font = ImageFont.load_default()
    ImageDraw.Draw(out).text((4, 3), text, fill=(20, 20, 20), font=font)
    return out


def sheet(items: list[tuple[Image.Image, str]], path: Path, height: int = 220) -> None:
    from deepcanvas.io import save_image

    tiles = [labelled(im, t, height) for im, t in items]
    out = Image.new("RGB", (sum(t.width for t in tiles) + 6 * (len(tiles) - 1), tiles[0].height), (255, 255, 255))
    x = 0
    for t in tiles:
        out.paste(t, (x, 0))
        x += t.width + 6
    save_image(out, path)
    print(f"wrote {path} ({out.width}x{out.height})", flush=True)


def overlay(photo: Image.Image, masks: list[Image.Image], colours) -> Image.Image:
    base = np.asarray(photo.convert("RGB"), np.float32)
    out = base * 0.45
    for m, c in zip(masks, colours):
        a = np.asarray(m.convert("L").resize(photo.size), np.float32)[..., None] / 255
        out += a * np.array(c, np.float32) * 0.55
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--only", default="mask,horizon,doodle")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    import torch

    import deepcanvas

    if args.threads:
        torch.set_num_threads(args.threads)
    only = set(args.only.split(","))
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        if "mask" in only:  # chelsea in the swirls' style everywhere but a soft oval around the cat's face
            photo = Image.open(DATA / "chelsea.jpg").convert("RGB")
            m = Image.new("L", photo.size, 255)
            ImageDraw.Draw(m).ellipse([0.2 * photo.width, 0.02 * photo.height, 0.85 * photo.width,
                                       0.98 * photo.height], fill=0)
            m.save(tmp / "mask.png")
            t0 = time.perf_counter()
            out = deepcanvas.style_transfer(photo, DATA / "swirls.jpg", size=args.size, seed=0,
                                            mask=str(tmp / "mask.png"), feather=0.03)
            print(f"mask: {time.perf_counter() - t0:.0f} s", flush=True)
            sheet([(photo, "photo"), (m, "--mask (black: keep)"), (out, "result")], DOCS / "regions_mask.png")
        if "horizon" in only and SHARED.is_dir():  # golden gate: the sky from Starry Night, below it the scream
            from style_quality import paint

            photo = Image.open(SHARED / "golden_gate.jpg").convert("RGB")
            sky = Image.new("L", photo.size, 0)
            ImageDraw.Draw(sky).rectangle([0, 0, photo.width, int(0.45 * photo.height)], fill=255)
            below = Image.fromarray(255 - np.asarray(sky))
            sky.save(tmp / "sky.png")
            below.save(tmp / "below.png")
            scream = paint("scream")
            scream.save(tmp / "scream.png")
            t0 = time.perf_counter()
            out = deepcanvas.style_transfer(photo, [SHARED / "starry_night.jpg", tmp / "scream.png"],
                                            size=args.size, seed=0, feather=0.03,
                                            style_masks=f"{tmp / 'sky.png'},{tmp / 'below.png'}")
            print(f"horizon: {time.perf_counter() - t0:.0f} s", flush=True)
            sheet([(photo, "photo"), (overlay(photo, [sky, below], [(60, 90, 255), (255, 120, 40)]),
                                      "--style-masks sky,below"),
                   (Image.open(SHARED / "starry_night.jpg"), "style 1 (sky)"), (scream, "style 2 (below)"),
                   (out, "result")], DOCS / "regions_horizon.png")
        if "doodle" in only:  # neural doodle: the painting's regions rearranged after a drawn map
            from deepcanvas.io import save_image

            smap, dmap = swirls_map(), doodle_map()
            save_image(smap, DOCS / "regions_swirls_map.png")
            save_image(dmap, DOCS / "regions_doodle_map.png")
            t0 = time.perf_counter()
            out = deepcanvas.style_transfer(dmap, DATA / "swirls.jpg", size=args.size, seed=0, style_strength=1.0,
                                            iterations=120, content_map=str(DOCS / "regions_doodle_map.png"),
                                            style_map=str(DOCS / "regions_swirls_map.png"))
            print(f"doodle: {time.perf_counter() - t0:.0f} s", flush=True)
            sheet([(Image.open(DATA / "swirls.jpg"), "painting"), (smap, "--style-map"),
                   (dmap, "--content-map (the doodle)"), (out, "result")], DOCS / "regions_doodle.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
