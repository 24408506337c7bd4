"""Quality benchmark for class visualization and feature inversion.

(a) Class visualization of ten ImageNet classes held apart from the ten the defaults were
    chosen on (``--classes tuning`` runs those). For each image: the classifier's mean
    probability for the target class over 16 random views that the optimisation never
    saw (random resized crops of 60-100 % of the area, aspect 3:4-4:3, horizontal
    flips, resized to 224 px), and the share of spectral energy above half the Nyquist
    frequency, compared with the same measure on the five photos at hand (tubingen,
    golden_gate, astronaut, chelsea, coffee). Aims: mean probability >= 0.9;
    high-frequency share <= 1.5x the photos'. ``--classes-before`` adds the settings
    before issue 14, same classes, same seeds.
(b) Feature inversion from VGG16 layers of photos held apart from the two the defaults
    were tuned on (chelsea, coffee): tubingen, golden_gate, astronaut. Per layer: the
    layout correlation (Pearson correlation of 64x64 greyscale thumbnails), the edge correlation (of
    their gradient magnitudes: the edges in place, whichever side is lighter), the chroma
    correlation (16x16 thumbnails' RGB minus grey) and the mean colour error, with a
    contact sheet per photo. ``--invert-before`` adds pixels at every depth (the defaults before the
    deep image prior).

Writes the images, grids, contact sheets and results.json to the output folder. Usage:

    python benchmarks/quality.py [OUT_DIR] [--size 224] [--iterations N] [--skip-invert] [--skip-classes]
        [--classes-before] [--invert-before] [--invert-layers L1,L2] [--invert-photos P1,P2] [--invert-param dip]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from deepcanvas import imaging, io, models
from deepcanvas.techniques import classviz, invert

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "images"
DATA = ROOT / "deepcanvas" / "data"
#: The photos whose high-frequency share the class images are compared with (all the photos at hand).
PHOTOS = [SHARED / "tubingen.jpg", SHARED / "golden_gate.jpg", DATA / "astronaut.jpg", DATA / "chelsea.jpg",
          DATA / "coffee.jpg"]
#: The classes the defaults were tuned (looked at) on ...
CLASSES = ["goldfinch", "tarantula", "flamingo", "monarch butterfly", "zebra",
           "volcano", "lighthouse", "pizza", "strawberry", "jellyfish"]
#: ... and ten held apart for reporting (issue 14): never used while choosing a setting.
HELD_OUT_CLASSES = ["American robin", "bald eagle", "tree frog", "king penguin", "Golden Retriever",
                    "ladybug", "daisy", "castle", "sports car", "lemon"]
#: The class defaults before issue 14's taper (no cutoff, constant step), for --classes-before.
CLASSES_BEFORE = {"cutoff": 0.0, "lr_floor": 1.0}
INVERT_LAYERS = "relu1_2,relu2_2,relu3_3,relu4_3,relu5_1"  # conv1 .. conv5 (relu5_3 keeps little layout)
EVAL_VIEWS = 16
EVAL_SEED = 20240917  # the views are drawn from their own generator, never the optimisation's


def random_views(x: torch.Tensor, n: int, rng: random.Random, out: int = 224) -> torch.Tensor:
    """n random resized crops (60-100 % of the area, aspect 3:4-4:3), half of them flipped, at out x out."""
    h, w = x.shape[-2:]
    views = []
    for _ in range(n):
        for _try in range(20):
            area = rng.uniform(0.6, 1.0) * h * w
            aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
            cw, ch = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if cw <= w and ch <= h:
                break
        else:
            cw, ch = w, h
        y0, x0 = rng.randint(0, h - ch), rng.randint(0, w - cw)
        v = x[..., y0:y0 + ch, x0:x0 + cw]
        if rng.random() < 0.5:
            v = v.flip(-1)
        views.append(F.interpolate(v, size=(out, out), mode="bilinear", align_corners=False, antialias=True))
    return torch.cat(views).clamp(0, 1)


def target_probability(net, img: Image.Image, index: int, rng: random.Random) -> float:
    x = imaging.image_to_tensor(img)
    with torch.no_grad():
        p = F.softmax(net(random_views(x, EVAL_VIEWS, rng), ["logits"])["logits"].float(), dim=1)
    return float(p[:, index].mean())


def high_frequency_share(img: Image.Image, size: int = 224) -> float:
    """Share of the (Hann-windowed, mean-removed) luminance power spectrum above half the Nyquist frequency.

    The image is centre-cropped to a square and resized to ``size`` first, so
    photos and generated images are measured alike.
    """
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    img = img.resize((size, size), Image.Resampling.LANCZOS) if s != size else img
    y = np.asarray(img.convert("L"), dtype=np.float64) / 255.0
    y = y - y.mean()
    win = np.outer(np.hanning(size), np.hanning(size))
    power = np.abs(np.fft.fft2(y * win)) ** 2
    f = np.fft.fftfreq(size)
    r = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)  # cycles per pixel; Nyquist is 0.5
    power[0, 0] = 0.0
    return float(power[r > 0.25].sum() / power.sum())


def labelled_grid(images: list[Image.Image], labels: list[str], cols: int = 5, label_h: int = 16) -> Image.Image:
    w, h = images[0].size
    rows = math.ceil(len(images) / cols)
    grid = Image.new("RGB", (cols * w, rows * (h + label_h)), "white")
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default()
    for k, (im, lab) in enumerate(zip(images, labels)):
        x, y = (k % cols) * w, (k // cols) * (h + label_h)
        grid.paste(im, (x, y))
        tw = draw.textlength(lab, font=font)
        draw.text((x + (w - tw) / 2, y + h + 2), lab, fill="black", font=font)
    return grid


def bench_classes(out: Path, size: int, iterations: int | None, seed: int, classes: list[str] | None = None,
                  before: bool = False) -> dict:
    info = models.get_info("efficientnet-lite0")
    names = info.classes()
    net = models.load_model("efficientnet-lite0")
    photo_hf = {p.name: high_frequency_share(io.load_image(p)) for p in PHOTOS if p.is_file()}
    classes = classes or HELD_OUT_CLASSES
    tag = "before" if before else "defaults"
    photo_mean = float(np.mean(list(photo_hf.values()))) if photo_hf else float("nan")
    rng = random.Random(EVAL_SEED)
    rows, images = [], []
    kw = {"size": size, "seed": seed, "device": "cpu", **(CLASSES_BEFORE if before else {})}
    if iterations:
        kw["iterations"] = iterations
    print(f"class visualization, {size} px, {tag}"
          f"{'' if not iterations else f', {iterations} iterations'}", flush=True)
    print(f"{'class':>20s} {'index':>5s} {'p(target)':>9s} {'p(full)':>8s} {'HF share':>8s} {'seconds':>7s}")
    for name in classes:
        (index,) = classviz.resolve_classes(name, names)
        t0 = time.perf_counter()
        img = classviz.visualize_class(index, **kw)
        dt = time.perf_counter() - t0
        io.save_image(img, out / f"class_{tag}_{index:03d}_{name.replace(' ', '_')}.png")
        images.append(img)
        p = target_probability(net, img, index, rng)
        with torch.no_grad():
            p_full = float(F.softmax(net(imaging.image_to_tensor(img), ["logits"])["logits"], 1)[0, index])
        hf = high_frequency_share(img)
        rows.append({"class": name, "index": index, "p_views": p, "p_full": p_full, "hf_share": hf, "seconds": dt})
        print(f"{name:>20s} {index:5d} {p:9.3f} {p_full:8.3f} {hf:8.4f} {dt:7.1f}", flush=True)
    mean_p = float(np.mean([r["p_views"] for r in rows]))
    mean_hf = float(np.mean([r["hf_share"] for r in rows]))
    print(f"{'mean':>20s} {'':5s} {mean_p:9.3f} {'':8s} {mean_hf:8.4f} {np.mean([r['seconds'] for r in rows]):7.1f}")
    for p, v in photo_hf.items():
        print(f"{'photo ' + p:>20s} {'':5s} {'':9s} {'':8s} {v:8.4f}")
    ratio = mean_hf / photo_mean
    print(f"HF share ratio generated / photos: {ratio:.2f} (aim <= 1.5); mean p(target): {mean_p:.3f} (aim >= 0.9)")
    labelled_grid(images, [f"{r['class']} {r['p_views']:.2f}" for r in rows]).save(out / f"classes_grid_{tag}.png")
    return {"rows": rows, "mean_p_views": mean_p, "mean_hf_share": mean_hf, "photo_hf_share": photo_hf,
            "hf_ratio": ratio}


def _thumb(im: Image.Image, side: int, mode: str = "L") -> np.ndarray:
    return np.asarray(im.convert(mode).resize((side, side), Image.Resampling.BOX), dtype=np.float64)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float((a * b).sum() / math.sqrt((a * a).sum() * (b * b).sum() + 1e-12))


def layout_correlation(img: Image.Image, photo: Image.Image, side: int = 64) -> float:
    """Pearson correlation of the two images' side x side greyscale thumbnails (1: the same layout)."""
    return _pearson(_thumb(img, side), _thumb(photo, side))


def edge_correlation(img: Image.Image, photo: Image.Image, side: int = 64) -> float:
    """Pearson correlation of the gradient magnitudes of the two images' side x side greyscale thumbnails.

    Are the edges where the photo's are, whichever side of them is the lighter: a deep layer's
    inversion can put a bridge's tower in the right place and still get the sky's brightness wrong.
    """
    def grad(im):
        gy, gx = np.gradient(_thumb(im, side))
        return np.hypot(gx, gy)

    return _pearson(grad(img), grad(photo))


def colour_figures(img: Image.Image, photo: Image.Image, side: int = 16) -> tuple[float, float]:
    """(chroma correlation, mean colour error): are the colours right?

    Chroma correlation: Pearson correlation of the side x side thumbnails' colour
    (each pixel's RGB minus its grey), 1 when every area has the photo's hue.
    Mean colour error: the mean absolute difference of the two images' mean R, G, B, in 0..255.
    """
    a, b = _thumb(img, side, "RGB"), _thumb(photo, side, "RGB")
    chroma = _pearson(a - a.mean(2, keepdims=True), b - b.mean(2, keepdims=True))
    err = float(np.abs(a.reshape(-1, 3).mean(0) - b.reshape(-1, 3).mean(0)).mean())
    return chroma, err


#: Photos the inversion defaults were tuned on, and the ones they are reported on (never tuned on).
INVERT_TUNING = [ROOT / "deepcanvas" / "data" / "chelsea.jpg", ROOT / "deepcanvas" / "data" / "coffee.jpg"]
INVERT_REPORT = [SHARED / "tubingen.jpg", SHARED / "golden_gate.jpg", ROOT / "deepcanvas" / "data" / "astronaut.jpg"]
#: The defaults to compare with (--invert-before): pixels at every depth, as before the deep image prior.
INVERT_BEFORE = {"param": "pixel"}


def bench_invert(out: Path, size: int, iterations: int | None, seed: int, photos: list[Path] | None = None,
                 layers: str = INVERT_LAYERS, before: bool = False, param: str | None = None) -> dict:
    """Invert each photo from each layer; print layout correlation, colour figures and feature distance."""
    photos = [p for p in (photos or INVERT_REPORT) if p.is_file()]
    if not photos:
        print("inversion: none of the photos is here; skipped")
        return {}
    kw = {"layers": layers, "size": size, "seed": seed, "device": "cpu"}
    if param:
        kw["param"] = param
    if before:
        kw.update(INVERT_BEFORE)
    if iterations:
        kw["iterations"] = iterations
    tag = "compare" if before else "defaults"
    net = models.load_model("vgg16")
    rows = []
    print(f"feature inversion, vgg16, {size} px, {tag} ({', '.join(p.name for p in photos)})", flush=True)
    print(f"{'photo':>16s} {'layer':>8s} {'layout r':>8s} {'edge r':>8s} {'chroma r':>8s} {'colour err':>10s} "
          f"{'feat dist':>9s}")
    t_all = time.perf_counter()
    for photo in photos:
        result = invert.invert(photo, **kw)
        if not isinstance(result, dict):
            result = {layers: result}
        original = io.load_image(photo)
        small = original.resize(next(iter(result.values())).size, Image.LANCZOS)
        sheet = invert.contact_sheet(result, small)
        io.save_image(sheet, out / f"invert_{tag}_{photo.stem}.png")
        target = imaging.image_to_tensor(small)
        with torch.no_grad():
            t_acts = net(target, list(result))
            for k, im in result.items():
                a = net(imaging.image_to_tensor(im), [k])[k]
                d = float((a - t_acts[k]).pow(2).sum() / t_acts[k].pow(2).sum())
                r = layout_correlation(im, small)
                edge = edge_correlation(im, small)
                io.save_image(im, out / f"invert_{tag}_{photo.stem}_{k}.png")
                chroma, err = colour_figures(im, small)
                rows.append({"photo": photo.name, "layer": k, "layout_r": r, "edge_r": edge, "chroma_r": chroma,
                             "colour_err": err, "feature_distance": d})
                print(f"{photo.name:>16s} {k:>8s} {r:8.3f} {edge:8.3f} {chroma:8.3f} {err:10.1f} {d:9.4f}", flush=True)
    print(f"{'mean':>16s}")
    means = {}
    for k in dict.fromkeys(r["layer"] for r in rows):
        sel = [r for r in rows if r["layer"] == k]
        means[k] = {m: float(np.mean([r[m] for r in sel])) for m in ("layout_r", "edge_r", "chroma_r", "colour_err")}
        print(f"{'':>16s} {k:>8s} {means[k]['layout_r']:8.3f} {means[k]['edge_r']:8.3f} {means[k]['chroma_r']:8.3f} "
              f"{means[k]['colour_err']:10.1f}")
    total = time.perf_counter() - t_all
    print(f"inversion ({tag}): {total:.0f} s for {len(photos)} photos")
    return {"rows": rows, "means": means, "seconds": total, "settings": tag}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", default="out/quality/", help="output folder (default: out/quality/)")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--iterations", type=int, default=None, help="override the techniques' default iterations")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-classes", action="store_true")
    ap.add_argument("--skip-invert", action="store_true")
    ap.add_argument("--classes", default=None,
                    help="comma-separated class names (default: the ten held apart; 'tuning' for the tuning ten)")
    ap.add_argument("--classes-before", action="store_true",
                    help="also run the defaults before issue 14's taper (cutoff 0, lr_floor 1)")
    ap.add_argument("--invert-before", action="store_true",
                    help="also invert with pixels at every depth (the defaults before the deep image prior)")
    ap.add_argument("--invert-photos", default=None,
                    help="comma-separated photo paths (default: the held-apart ones, tubingen, golden_gate, astronaut)")
    ap.add_argument("--invert-layers", default=INVERT_LAYERS)
    ap.add_argument("--invert-param", default=None, help="the inversion's param (default: auto), e.g. dip")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"torch_threads": torch.get_num_threads()}
    if not args.skip_classes:
        classes = CLASSES if args.classes == "tuning" else (args.classes.split(",") if args.classes else None)
        results["classes"] = bench_classes(out, args.size, args.iterations, args.seed, classes)
        if args.classes_before:
            results["classes_before"] = bench_classes(out, args.size, args.iterations, args.seed, classes, before=True)
    if not args.skip_invert:
        photos = [Path(p) for p in args.invert_photos.split(",")] if args.invert_photos else None
        results["invert"] = bench_invert(out, args.size, args.iterations, args.seed, photos, args.invert_layers,
                                         param=args.invert_param)
        if args.invert_before:
            results["invert_before"] = bench_invert(out, args.size, args.iterations, args.seed, photos,
                                                    args.invert_layers, before=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
