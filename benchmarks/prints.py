"""Prints: each size of a pair made in its own run beside the first (working-size) run of the same pair.

    .venv/bin/python benchmarks/prints.py                                   # 512, 2048, 4096 px, defaults
    .venv/bin/python benchmarks/prints.py --sizes 128,256 --working-size 128 --iterations 4 --method gram

For every pair and size, a child process runs ``deepcanvas style`` and reports:
- ``time x``: its wall time as a ratio to the first size's (aim: 2048 px <= 4x, 4096 px <= 16x of 512);
- ``peak GiB``: the child's peak resident memory (os.wait4's ru_maxrss);
- ``edge_corr`` / ``style_ratio`` (../shared/judge, a yardstick only) of the print shrunk (Lanczos) to the
  first size, beside the first size's own (aim: within 0.03);
- ``detail x``: mean |Laplacian| of the print over that of the first result upscaled (Lanczos) to the
  print's size (aim: >= 1.5);
- a crop at 100% (``crop_*.png``): the middle of the print beside the same region of the first result
  upscaled (Lanczos), the print on the right;
- ``grid x``: mean gradient magnitude on the rows and columns where tile borders can fall (the tile
  grid is 16-px aligned on the picture padded by 8 px, so rows/columns = 8 mod 16) over that elsewhere
  (aim: <= 1.05).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from style_quality import Judge  # noqa: E402  (the judge, loaded once)

SHARED = ROOT.parent / "shared" / "images"
PAIRS = {"tubingen:starry_night": (SHARED / "tubingen.jpg", SHARED / "starry_night.jpg"),
         "golden_gate:shipwreck": (SHARED / "golden_gate.jpg", SHARED / "shipwreck.jpg")}


def run(content: Path, style: Path, out: Path, size: int, extra: list[str]) -> tuple[float, float]:
    """(seconds, peak GiB) of one ``deepcanvas style`` run in a child process."""
    cmd = [sys.executable, "-m", "deepcanvas", "style", str(content), str(style), "-o", str(out), "--quiet",
           "--size", str(size), "--seed", "0", *extra]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    secs = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"prints: {' '.join(cmd)} failed ({status})")
    return secs, usage.ru_maxrss / 2**20  # Linux: KiB


def grey(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L"), dtype=np.float64) / 255


def laplacian(img: Image.Image) -> float:
    g = grey(img)
    lap = -4 * g[1:-1, 1:-1] + g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]
    return float(np.abs(lap).mean())


def grid_ratio(img: Image.Image) -> float:
    g = grey(img)
    gy, gx = np.abs(np.diff(g, axis=0))[:, :-1], np.abs(np.diff(g, axis=1))[:-1, :]
    mag = np.hypot(gy, gx)
    rows, cols = np.arange(mag.shape[0]), np.arange(mag.shape[1])
    on = ((rows[:, None] + 8) % 16 <= 1) | ((cols[None, :] + 8) % 16 <= 1)  # the line and the pixel before it
    return float(mag[on].mean() / mag[~on].mean())


def crop_pair(print_img: Image.Image, upscaled: Image.Image, side: int = 384) -> Image.Image:
    """The middle ``side`` px of the upscaled first result (left) and of the print (right), at 100%."""
    w, h = print_img.size
    box = ((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2)
    sheet = Image.new("RGB", (2 * side + 8, side), "white")
    sheet.paste(upscaled.crop(box), (0, 0))
    sheet.paste(print_img.crop(box), (side + 8, 0))
    return sheet


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", default=",".join(PAIRS), help=f"from {', '.join(PAIRS)}, or CONTENT:STYLE paths")
    ap.add_argument("--sizes", default="512,2048,4096", help="the first is the reference (the working size)")
    ap.add_argument("--working-size", type=int, default=512)
    ap.add_argument("--iterations", type=int, help="iterations at the working size (default: the preset's)")
    ap.add_argument("--print-iterations", type=int)
    ap.add_argument("--method", help="style loss (default: the preset's)")
    ap.add_argument("--tile", type=int)
    ap.add_argument("--extra", default="", help='more `deepcanvas style` flags, e.g. "--print-hold 0"')
    ap.add_argument("--out", default="out/prints")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    extra = ["--working-size", str(args.working_size), *args.extra.split()]
    for flag in ("iterations", "print_iterations", "method", "tile"):
        if getattr(args, flag) is not None:
            extra += ["--" + flag.replace("_", "-"), str(getattr(args, flag))]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    judge = Judge()
    print("| pair | px | s | time x | peak GiB | edge_corr | style_ratio | detail x | grid x |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.pairs.split(","):
        content, style = PAIRS[name] if name in PAIRS else map(Path, name.split(":"))
        base = None
        for size in sizes:
            path = out / f"{Path(content).stem}_{Path(style).stem}_{size}.png"
            secs, peak = run(content, style, path, size, extra)
            img = Image.open(path).convert("RGB")
            if base is None:
                base, base_secs, base_path = img, secs, path
                shrunk_path, detail = path, 1.0
            else:
                shrunk_path = out / f"{path.stem}_shrunk.png"
                img.resize(base.size, Image.LANCZOS).save(shrunk_path)
                upscaled = base.resize(img.size, Image.LANCZOS)
                detail = laplacian(img) / laplacian(upscaled)
                crop_pair(img, upscaled).save(out / f"crop_{path.stem}.png")
            j = judge(content, style, shrunk_path)
            print(f"| {name} | {size} | {secs:.0f} | {secs / base_secs:.2f} | {peak:.2f} | {j['edge_corr']:.3f} | "
                  f"{j.get('style_ratio', float('nan')):.3f} | {detail:.2f} | {grid_ratio(img):.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
