"""Render a fixed set of small pictures on fixed seeds, to check that a refactor changed no picture.

    python tools/same_pictures.py OUT_DIR            # render, write PNGs and digests.json
    python tools/same_pictures.py OUT_DIR --against REF_DIR   # and compare with an earlier run

Run both sides on the same machine with the same thread count (torch's reductions depend on it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "images"
DATA = ROOT / "deepcanvas" / "data"


def _mask(path: Path) -> Path:
    from PIL import Image

    a = np.zeros((96, 128), np.uint8)
    a[:, 64:] = 255
    Image.fromarray(a).save(path)
    return path


def _frames(folder: Path, n: int = 3) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    img = Image.open(SHARED / "tubingen.jpg").convert("RGB").resize((160, 120))
    for i in range(n):
        img.crop((4 * i, 0, 4 * i + 128, 96)).save(folder / f"f{i:03d}.png")
    return folder


def cases(tmp: Path) -> dict:
    import deepcanvas as dc

    content, style = SHARED / "tubingen.jpg", SHARED / "starry_night.jpg"
    mask = _mask(tmp / "mask.png")
    small = dict(size=96, iterations=6, seed=0)
    out = {}
    out["style_swd"] = lambda: dc.style_transfer(content, style, method="swd", **small)
    out["style_gram"] = lambda: dc.style_transfer(content, style, method="gram", **small)
    out["style_swd_mask"] = lambda: dc.style_transfer(content, style, method="swd", mask=str(mask), **small)
    out["style_gram_mask"] = lambda: dc.style_transfer(content, style, method="gram", mask=str(mask), **small)
    out["dream"] = lambda: dc.dream(DATA / "chelsea.jpg", size=96, iterations=3, octaves=2, seed=0)
    out["classviz"] = lambda: dc.visualize_class(["goldfinch"], size=64, iterations=8, seed=0)
    out["invert"] = lambda: dc.invert(content, layer="relu2_2", size=64, iterations=8, seed=0)
    out["atlas"] = lambda: dc.atlas(layers="relu2_1,relu3_1", channels="2", size=32, iterations=4, cache=False)

    def video():
        res = dc.style_video(str(_frames(tmp / "frames")), style, str(tmp / "video_out/"), size=96, iterations=6,
                             later_iterations=3, seed=0)
        from PIL import Image

        frames = [np.asarray(Image.open(f)) for f in res.frames]
        return Image.fromarray(np.concatenate(frames, axis=1))

    out["style_video"] = video
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--against")
    ap.add_argument("--only", help="comma-separated case names")
    a = ap.parse_args()
    torch.set_num_threads(2)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    digests = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in cases(Path(tmp)).items():
            if a.only and name not in a.only.split(","):
                continue
            img = make()
            img.save(out / f"{name}.png")
            digests[name] = hashlib.sha256(np.asarray(img.convert("RGB")).tobytes()).hexdigest()[:16]
            print(f"{name:18s} {digests[name]}", flush=True)
    (out / "digests.json").write_text(json.dumps(digests, indent=1))
    if a.against:
        ref = json.loads((Path(a.against) / "digests.json").read_text())
        bad = [k for k in digests if ref.get(k) != digests[k]]
        for k in bad:
            x = np.asarray(__import__("PIL.Image").Image.open(out / f"{k}.png").convert("RGB"), np.float32)
            y = np.asarray(__import__("PIL.Image").Image.open(Path(a.against) / f"{k}.png").convert("RGB"), np.float32)
            diff = np.abs(x - y).max() if x.shape == y.shape else float("nan")
            print(f"DIFFERENT {k}: max pixel difference {diff}")
        print("all identical" if not bad else f"{len(bad)} different")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
