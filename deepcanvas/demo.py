"""``deepcanvas demo``: every technique on the bundled images, no internet needed."""

from __future__ import annotations

import time
from pathlib import Path

DATA = Path(__file__).parent / "data"
TECHNIQUES = ("dream", "classviz", "style", "invert")  # in the order they run: the quickest first


# Sizes and iterations chosen so the whole demo takes under two minutes on two CPU cores, fastest
# picture first (README: "Two commands for a fresh machine"); each still shows its technique well.
DREAM = {"size": 384}
CLASSVIZ = {"size": 192, "iterations": 320}  # a monarch butterfly reads well this early; a goldfinch did not
STYLE = {"size": 320}
INVERT = {"layers": "relu1_2,relu2_2,relu3_3,relu5_1", "size": 128, "iterations": 100}


def run_demo(out_dir: Path, only: list[str], size: int | None, quiet: bool) -> list[Path]:
    from . import io
    from .reporter import Reporter

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(img, name):
        path = io.save_image(img, out_dir / name)
        written.append(path)
        print(f"wrote {path} ({img.width}x{img.height})", flush=True)

    def run(name, func, *args, **kw):
        r = Reporter(out_dir / name, 0, 0, quiet)
        try:
            return func(*args, seed=0, callback=r, **kw)
        finally:
            r.close()

    sized = (lambda d: {**d, "size": size}) if size else (lambda d: d)
    if "dream" in only:
        from .techniques.dream import dream

        save(run("dream.png", dream, DATA / "coffee.jpg", **sized(DREAM)), "dream.png")
    if "classviz" in only:
        from .techniques.classviz import visualize_class

        save(run("classviz.png", visualize_class, "monarch butterfly", **CLASSVIZ), "classviz_monarch.png")
    if "style" in only:
        from .techniques.style import style_transfer

        save(run("style.png", style_transfer, DATA / "chelsea.jpg", [DATA / "swirls.jpg"], **sized(STYLE)),
             "style.png")
    if "invert" in only:
        from .techniques.invert import contact_sheet, invert

        imgs = run("invert.png", invert, DATA / "astronaut.jpg", **INVERT)
        save(contact_sheet(imgs, io.load_image(DATA / "astronaut.jpg")), "invert_contact_sheet.png")
    return written


def add_demo_command(sub) -> None:
    p = sub.add_parser("demo", help="run the techniques on the bundled images and write PNGs")
    p.add_argument("-o", "--output", default="out/demo", help="output folder (default: out/demo)")
    p.add_argument("--only", default=",".join(TECHNIQUES), help=f"comma list of: {', '.join(TECHNIQUES)}")
    p.add_argument("--size", type=int, default=None,
                   help="longest side for style transfer and DeepDream (default: 320 and 384, for a quick first look)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=_handler)


def _handler(args) -> int:
    from .errors import DeepCanvasError
    from .limits import check_number

    only = [t for t in args.only.replace(" ", "").split(",") if t]
    bad = [t for t in only if t not in TECHNIQUES]
    if bad:
        raise DeepCanvasError(f"unknown technique {bad[0]!r}; valid: {', '.join(TECHNIQUES)}")
    if args.size is not None:
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
    print(f"done in {time.perf_counter() - t0:.0f} s: {len(written)} pictures in {out}/")
    print("next: style your own photo with `deepcanvas style PHOTO.jpg PAINTING.jpg -o out.png` "
          "(or `deepcanvas serve` for the studio in your browser)")
    return 0
