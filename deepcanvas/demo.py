"""``deepcanvas demo``: every technique on the bundled images, no internet needed."""

from __future__ import annotations

import importlib
import time
from pathlib import Path

from .registry import in_demo

DATA = Path(__file__).parent / "data"
#: The techniques the demo runs, in the order they run: the quickest first. Their bundled inputs and
#: settings (deepcanvas.registry) keep the whole demo under two minutes on two CPU cores, fastest picture
#: first (README: "Two commands for a fresh machine"); each still shows its technique well.
TECHNIQUES = tuple(t.command for t in in_demo())


def _argument(value):
    """A demo input: "bundled:NAME" is a bundled image, a tuple a list of inputs, anything else as given."""
    if isinstance(value, tuple):
        return [_argument(v) for v in value]
    if isinstance(value, str) and value.startswith("bundled:"):
        return DATA / value.removeprefix("bundled:")
    return value


def run_demo(out_dir: Path, only: list[str], size: int | None, quiet: bool) -> list[Path]:
    from . import io
    from .reporter import Reporter

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for tech in in_demo():
        if tech.command not in only:
            continue
        demo = tech.demo
        func = getattr(importlib.import_module(tech.import_path), tech.function)
        args = [_argument(v) for v in demo.inputs]
        settings = {**demo.settings, "size": size} if size and demo.sized else demo.settings
        r = Reporter(out_dir / f"{tech.command}.png", 0, 0, quiet)
        try:
            img = func(*args, seed=0, callback=r, **settings)
        finally:
            r.close()
        if isinstance(img, dict):  # one picture per layer: a contact sheet beside the input photo
            from .techniques.invert import contact_sheet

            img = contact_sheet(img, io.load_image(args[0]))
        path = io.save_image(img, out_dir / demo.output)
        written.append(path)
        print(f"wrote {path} ({img.width}x{img.height})", flush=True)
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
