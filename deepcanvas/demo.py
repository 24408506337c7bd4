"""``deepcanvas demo``: every technique on the bundled images, no internet needed."""

from __future__ import annotations

import sys
import time
from pathlib import Path

DATA = Path(__file__).parent / "data"
TECHNIQUES = ("style", "dream", "classviz", "invert")


def run_demo(out_dir: Path, only: list[str], size: int, quiet: bool) -> list[Path]:
    from . import io
    from .reporter import Reporter

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(img, name):
        path = io.save_image(img, out_dir / name)
        written.append(path)
        print(f"wrote {path} ({img.width}x{img.height})", flush=True)

    def rep(name):
        return Reporter(out_dir / name, 0, 0, quiet)

    if "style" in only:
        from .techniques.style import style_transfer

        r = rep("style.png")
        save(style_transfer(DATA / "chelsea.jpg", [DATA / "swirls.jpg"], size=size, seed=0, callback=r), "style.png")
        r.close()
    if "dream" in only:
        from .techniques.dream import dream

        r = rep("dream.png")
        save(dream(DATA / "coffee.jpg", size=size, seed=0, callback=r), "dream.png")
        r.close()
    if "classviz" in only:
        from .techniques.classviz import visualize_class

        r = rep("classviz.png")
        save(visualize_class("goldfinch", seed=0, callback=r), "classviz_goldfinch.png")
        r.close()
    if "invert" in only:
        from .techniques.invert import contact_sheet, invert

        r = rep("invert.png")
        layers = "relu1_2,relu2_2,relu3_3,relu4_3,relu5_3"
        imgs = invert(DATA / "astronaut.jpg", layers=layers, seed=0, callback=r)
        r.close()
        original = io.load_image(DATA / "astronaut.jpg")
        save(contact_sheet(imgs, original), "invert_contact_sheet.png")
    return written


def add_demo_command(sub) -> None:
    p = sub.add_parser("demo", help="run the techniques on the bundled images and write PNGs")
    p.add_argument("-o", "--output", default="out/demo", help="output folder (default: out/demo)")
    p.add_argument("--only", default=",".join(TECHNIQUES), help=f"comma list of: {', '.join(TECHNIQUES)}")
    p.add_argument("--size", type=int, default=512, help="longest side for style transfer and DeepDream")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=_handler)


def _handler(args) -> int:
    from .errors import DeepCanvasError, check_number

    only = [t for t in args.only.replace(" ", "").split(",") if t]
    bad = [t for t in only if t not in TECHNIQUES]
    if bad:
        raise DeepCanvasError(f"unknown technique {bad[0]!r}; valid: {', '.join(TECHNIQUES)}")
    check_number("size", args.size, integer=True, positive=True)
    t0 = time.perf_counter()
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise DeepCanvasError(f"cannot write to '{out}': it is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DeepCanvasError(f"cannot create folder '{out}': {e.strerror}") from None
    written = run_demo(out, only, args.size, args.quiet)
    print(f"done in {time.perf_counter() - t0:.0f} s: {len(written)} images in {out}/", file=sys.stderr)
    return 0
