"""Region control, measured: a hard mask keeps the photo outside and paints fully inside; two styles in two halves.

    .venv/bin/python benchmarks/regions.py                    # 256 px, 3 pairs, the default method (swd)
    .venv/bin/python benchmarks/regions.py --size 320 --pairs 1 --method gram

For each (content, style A, style B):

1. the defaults without a mask, and with a hard mask on the right half (``feather`` at its default, 0.01);
   **outside MAD**: mean absolute difference from the photo over the left half (the whole unmasked part,
   feathered band included; the aim is at most 0.03); **inside**: the judge's ``style_ratio`` of the right
   half, masked against unmasked (``../shared/judge/judge_style.py`` on the halves, cropped and saved as PNGs;
   1 = no style, lower = more of the painting; the aim is "as strongly styled": the masked figure no higher);
2. ``style_masks``: style A on the left half, style B on the right; each half's ``style_ratio`` against its own
   style and against the other (the aim: own < other in both halves).

The judge is a yardstick only; nothing here picks a setting by it. Pictures go to --out (default out/regions/).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

TRIPLES = [("tubingen", "starry_night", "swirls"), ("chelsea", "swirls", "starry_night"),
           ("golden_gate", "scream", "starry_night"), ("astronaut", "starry_night", "fauve")]


def half_masks(size_hw: tuple[int, int], tmp: Path) -> tuple[Path, Path]:
    h, w = size_hw
    right = np.zeros((h, w), np.uint8)
    right[:, w // 2:] = 255
    a, b = tmp / "right.png", tmp / "left.png"
    Image.fromarray(right).save(a)
    Image.fromarray(255 - right).save(b)
    return a, b


def halves(path: Path, tmp: Path, tag: str) -> tuple[Path, Path]:
    im = Image.open(path).convert("RGB")
    w = im.width
    left, right = tmp / f"{tag}_L.png", tmp / f"{tag}_R.png"
    im.crop((0, 0, w // 2, im.height)).save(left)
    im.crop((w - w // 2, 0, w, im.height)).save(right)
    return left, right


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--pick", default="", help="content names to run (e.g. chelsea,golden_gate) instead of the first --pairs")
    ap.add_argument("--method", default=None, help="swd (the default) or gram")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--out", default=str(ROOT / "out" / "regions"))
    args = ap.parse_args(argv)

    import torch

    import deepcanvas
    from deepcanvas.imaging import image_to_tensor
    from deepcanvas.io import load_image
    from deepcanvas.param import resize
    from deepcanvas.techniques.common import fit_size
    from style_quality import Judge, image_path  # the judge by path, and the procedural stand-in styles

    if args.threads:
        torch.set_num_threads(args.threads)
    if not (ROOT.parent / "shared" / "judge" / "judge_style.py").is_file():
        print("../shared/judge/judge_style.py is missing: nothing to measure")
        return 0
    judge = Judge()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    kw = {"size": args.size, "seed": 0, **({"method": args.method} if args.method else {})}
    rows = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        picked = [t for t in TRIPLES if t[0] in args.pick.split(",")] if args.pick else TRIPLES[:args.pairs]
        for content_name, a_name, b_name in picked:
            content, sa, sb = (image_path(n, tmp) for n in (content_name, a_name, b_name))
            photo = image_to_tensor(load_image(content))
            hw = fit_size(*photo.shape[-2:], args.size)
            photo = resize(photo, hw)
            right, left = half_masks(hw, tmp)
            photo_png = tmp / f"{content_name}.png"
            deepcanvas.io.save_image(deepcanvas.imaging.tensor_to_image(photo), photo_png)
            c_l, c_r = halves(photo_png, tmp, content_name)
            res = {"pair": f"{content_name} x {a_name} | {b_name}", "size": list(hw)}
            runs = {}
            for tag, extra, styles in (("plain", {}, [sa]), ("mask", {"mask": str(right)}, [sa]),
                                       ("two", {"style_masks": f"{left},{right}"}, [sa, sb])):
                t0 = time.perf_counter()
                img = deepcanvas.style_transfer(content, styles, **kw, **extra)
                res[f"seconds_{tag}"] = round(time.perf_counter() - t0, 1)
                path = out_dir / f"{content_name}_{tag}.png"
                deepcanvas.io.save_image(img, path)
                runs[tag] = path
            out = image_to_tensor(load_image(runs["mask"]))
            w = hw[1]
            res["outside_mad"] = float((out - photo)[..., : w // 2].abs().mean())
            res["inside_mad"] = float((out - photo)[..., w // 2:].abs().mean())
            plain_l, plain_r = halves(runs["plain"], tmp, "plain")
            mask_l, mask_r = halves(runs["mask"], tmp, "mask")
            res["inside_style_ratio_masked"] = judge(c_r, sa, mask_r)["style_ratio"]
            res["inside_style_ratio_plain"] = judge(c_r, sa, plain_r)["style_ratio"]
            # References for the halves: the unmasked style-A run's halves against A and B (how far the judge
            # sees a fully painted half move, and how alike the two styles look to it).
            res["plain_left_A"], res["plain_left_B"] = (judge(c_l, s, plain_l)["style_ratio"] for s in (sa, sb))
            res["plain_right_A"], res["plain_right_B"] = (judge(c_r, s, plain_r)["style_ratio"] for s in (sa, sb))
            two_l, two_r = halves(runs["two"], tmp, "two")
            res["left_own_A"] = judge(c_l, sa, two_l)["style_ratio"]
            res["left_other_B"] = judge(c_l, sb, two_l)["style_ratio"]
            res["right_own_B"] = judge(c_r, sb, two_r)["style_ratio"]
            res["right_other_A"] = judge(c_r, sa, two_r)["style_ratio"]
            rows.append(res)
            print(json.dumps(res), flush=True)
    print()
    print(f"| content x A \\| B, {args.size} px | outside MAD | inside style_ratio masked / plain | "
          "two styles, left half: A (own) / B | right half: B (own) / A | unmasked A run, left: A / B; right: A / B |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['pair']} | {r['outside_mad']:.4f} | {r['inside_style_ratio_masked']:.3f} / "
              f"{r['inside_style_ratio_plain']:.3f} | {r['left_own_A']:.3f} / {r['left_other_B']:.3f} | "
              f"{r['right_own_B']:.3f} / {r['right_other_A']:.3f} | {r['plain_left_A']:.3f} / "
              f"{r['plain_left_B']:.3f}; {r['plain_right_A']:.3f} / {r['plain_right_B']:.3f} |")
    (out_dir / "regions.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
