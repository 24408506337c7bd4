"""The ``deepcanvas`` command.

Each technique's flags are derived from its API function's keyword arguments
(names, types, defaults, and the ``Args:`` lines of its docstring), so the CLI
and the Python API cannot drift apart.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import time
import types
import typing
from pathlib import Path
from typing import Callable

from .errors import DeepCanvasError

DATA = Path(__file__).parent / "data"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + traceback-like noise
        self.exit(2, f"deepcanvas: error: {message} (see {self.prog} --help)\n")


def _doc_args(func) -> dict[str, str]:
    """Parse the ``Args:`` section of a Google-style docstring into {name: help}."""
    doc = inspect.getdoc(func) or ""
    m = re.search(r"^Args:\n(.*?)(?:\n\S|\Z)", doc, re.S | re.M)
    out: dict[str, str] = {}
    if not m:
        return out
    name = None
    for line in m.group(1).splitlines():
        hit = re.match(r"^\s{4}(\w+):\s*(.*)$", line)
        if hit:
            name = hit.group(1)
            out[name] = hit.group(2).strip()
        elif name and line.strip():
            out[name] += " " + line.strip()
    return out


def _base_type(annotation):
    """int | None -> int; 'str | None' (a string, with postponed annotations) -> str."""
    if isinstance(annotation, str):
        for name, t in (("bool", bool), ("int", int), ("float", float)):
            if re.match(rf"^{name}\b", annotation.strip()):
                return t
        return str
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(args[0]) if args else str
    if annotation in (int, float, bool, str):
        return annotation
    return str


def add_api_arguments(parser: argparse.ArgumentParser, func, skip=()) -> list[str]:
    """Add ``--flag`` for every keyword-only argument of ``func``; return their names."""
    helps = _doc_args(func)
    names = []
    for p in inspect.signature(func).parameters.values():
        if p.kind is not inspect.Parameter.KEYWORD_ONLY or p.name in skip:
            continue
        flag = "--" + p.name.replace("_", "-")
        typ = _base_type(p.annotation)
        help_ = helps.get(p.name, "")
        if typ is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=p.default, help=help_)
        else:
            default = "" if p.default is None else f" (default: {p.default})"
            parser.add_argument(flag, type=typ, default=p.default, metavar=p.name.upper(), help=help_ + default)
        names.append(p.name)
    return names


# -- progress, intermediates, output ------------------------------------------------------------
class Reporter:
    """tqdm progress bar with loss and ETA, periodic prints and saved intermediates."""

    def __init__(self, out: Path, print_every: int, save_every: int, quiet: bool):
        self.out, self.print_every, self.save_every, self.quiet = out, print_every, save_every, quiet
        self.bar = None

    def __call__(self, p) -> None:
        from tqdm import tqdm

        if self.bar is None and not self.quiet:
            self.bar = tqdm(total=p.total, unit="it", dynamic_ncols=True, file=sys.stderr)
        if self.bar is not None:
            self.bar.total = p.total
            self.bar.set_description(p.stage, refresh=False)
            self.bar.set_postfix_str(f"loss {p.loss:.4g}", refresh=False)
            self.bar.update(p.iteration - self.bar.n)
        if self.print_every and p.iteration % self.print_every == 0 and not p.done:
            parts = " ".join(f"{k} {v:.4g}" for k, v in p.parts.items())
            msg = f"iteration {p.iteration}/{p.total} [{p.stage}] loss {p.loss:.4g} ({parts})"
            (tqdm.write(msg, file=sys.stderr) if self.bar is not None else print(msg, file=sys.stderr))
        if self.save_every and p.iteration % self.save_every == 0 and not p.done:
            from .io import save_image

            images = p.images if p.tensor.dim() == 4 and p.tensor.shape[0] > 1 else [p.image]
            for i, img in enumerate(images):  # a batch (several classes) saves one file per image
                tag = f"_{i}" if len(images) > 1 else ""
                save_image(img, self.out.with_name(f"{self.out.stem}_{p.iteration:05d}{tag}{self.out.suffix}"))

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _outputs(result, out: Path) -> list[tuple[Path, object]]:
    """Map a technique's result (image, list or dict of images) to output files."""
    if isinstance(result, dict):
        return [(out.with_name(f"{out.stem}_{_slug(k)}{out.suffix}"), v) for k, v in result.items()]
    if isinstance(result, (list, tuple)):
        if len(result) == 1:
            return [(out, result[0])]
        return [(out.with_name(f"{out.stem}_{i}{out.suffix}"), v) for i, v in enumerate(result)]
    return [(out, result)]


def _slug(s) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(s)).strip("-") or "x"


def run_technique(func: Callable, positional: list, kwargs: dict, args) -> int:
    from .io import check_output_path, save_image
    from .render import Interrupted

    out = check_output_path(args.output)
    reporter = Reporter(out, args.print_every, args.save_every, args.quiet)
    t0 = time.perf_counter()
    try:
        result = func(*positional, callback=reporter, **kwargs)
    except Interrupted as e:
        reporter.close()
        save_image(e.image, out)
        print(f"interrupted: wrote the best image so far to {out}", file=sys.stderr)
        return 130
    reporter.close()
    written = []
    for path, img in _outputs(result, out):
        save_image(img, path)
        written.append(f"{path} ({img.width}x{img.height})")
    print(f"wrote {', '.join(written)} in {time.perf_counter() - t0:.1f} s")
    return 0


def _common_run_flags(p: argparse.ArgumentParser, default_out: str):
    p.add_argument("-o", "--output", default=default_out, help=f"output image (default: {default_out})")
    p.add_argument("--print-every", type=int, default=0, metavar="N", help="print the losses every N iterations")
    p.add_argument("--save-every", type=int, default=0, metavar="N",
                   help="save the image every N iterations next to the output (OUT_00100.png)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


# -- subcommands -------------------------------------------------------------------------------
def cmd_models(args) -> int:
    from . import models

    for row in models.describe():
        status = "available" if row["available"] else ("not installed" if row["offline"] else "downloads on first use")
        print(f"{row['name']}  [{status}]  {row['description']}")
        print(f"    weights: {row['source']}")
        if row["classes"]:
            print(f"    classes: {row['classes']} ImageNet classes")
        print(f"    layers: {' '.join(row['layers'])}")
    return 0


def _technique_commands():
    """(name, help, api function, positional arguments spec, default output)."""
    from .techniques import style

    cmds = [("style", "style transfer: paint CONTENT in the style of STYLE(s)", style.style_transfer_steps,
             [("content", {"help": "content image (with --batch: the first style image)"}),
              ("styles", {"nargs": "*", "help": "style image(s)"})],
             "styled.png", style.style_transfer)]
    try:
        from .techniques import dream

        cmds.append(("dream", "DeepDream: amplify what a layer sees in IMAGE", dream.dream_steps,
                     [("image", {"help": "input photo"})], "dream.png", dream.dream))
    except ImportError:
        pass
    try:
        from .techniques import classviz

        cmds.append(("classviz", "class visualization: an image the classifier scores as CLASS",
                     classviz.visualize_class_steps,
                     [("classes", {"nargs": "*", "help": "ImageNet class index or name (several: one image each; "
                                                 "none with --objective)"})],
                     "class.png", classviz.visualize_class))
    except ImportError:
        pass
    try:
        from .techniques import invert

        cmds.append(("invert", "feature inversion: rebuild IMAGE from one layer's features",
                     invert.invert_steps, [("image", {"help": "input photo"})], "inverted.png", invert.invert))
    except ImportError:
        pass
    return cmds


def build_parser():
    from . import __version__

    parser = _Parser(prog="deepcanvas", description="Backpropagate to the image: style transfer, DeepDream, "
                                                    "class visualization and feature inversion.")
    parser.add_argument("--version", action="version", version=f"deepcanvas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    p = sub.add_parser("models", help="list the networks, where their weights come from, and their layers")
    p.set_defaults(handler=cmd_models)
    for name, help_, steps, positionals, default_out, plain in _technique_commands():
        p = sub.add_parser(name, help=help_, description=help_,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter if False else argparse.HelpFormatter)
        for pname, opts in positionals:
            p.add_argument(pname, **opts)
        _common_run_flags(p, default_out)
        kw = add_api_arguments(p, steps)
        handler = _make_handler(plain, [n for n, _ in positionals], kw)
        if name == "style":
            p.add_argument("--batch", metavar="DIR_OR_GLOB",
                           help="style every image in a folder or glob with the style image(s); -o is then a "
                                "folder; existing outputs are skipped, so a stopped batch resumes")
            p.add_argument("--ray", metavar="ADDRESS",
                           help="with --batch: run on a Ray cluster (ADDRESS, or 'local' to start one here)")
            handler = _style_handler(handler, kw)
        p.set_defaults(handler=handler)
    _add_zoom_command(sub)
    from .demo import add_demo_command

    add_demo_command(sub)
    from .web import add_serve_command; add_serve_command(sub)  # noqa: E702 (imports no web dependency)
    return parser


def _add_zoom_command(sub) -> None:
    """``dream-zoom``: the dream flags, plus the sequence's own."""
    try:
        from .techniques import dream
    except ImportError:
        return
    help_ = "DeepDream zoom: N frames, each dreamt on a slightly zoomed previous one; PNG frames and a GIF"
    p = sub.add_parser("dream-zoom", help=help_, description=help_)
    p.add_argument("image", help="input photo")
    p.add_argument("-o", "--output", default="zoom/",
                   help="a folder (frame_0001.png ..., dream.gif) or a prefix like out/zoom (default: zoom/)")
    p.add_argument("--frames", type=int, default=30, help="number of frames (default: 30)")
    p.add_argument("--zoom", type=float, default=1.05, help="zoom factor per frame (default: 1.05)")
    p.add_argument("--fps", type=float, default=10.0, help="frames per second of the GIF (default: 10)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    kw = add_api_arguments(p, dream.dream_steps)
    p.set_defaults(octaves=2, iterations=10)  # the sequence's defaults: each frame builds on the last

    def handler(args):
        reporter = Reporter(Path("x.png"), 0, 0, args.quiet)
        t0 = time.perf_counter()
        try:
            res = dream.dream_zoom(args.image, args.output, frames=args.frames, zoom=args.zoom, fps=args.fps,
                                   callback=reporter, **{k: getattr(args, k) for k in kw})
        finally:
            reporter.close()
        extra = f" and {res.mp4}" if res.mp4 else ""
        print(f"wrote {len(res.frames)} frames ({res.frames[0]} ...), {res.gif}{extra} "
              f"in {time.perf_counter() - t0:.1f} s")
        return 0

    p.set_defaults(handler=handler)


def _make_handler(func, positional_names, kw_names):
    def handler(args):
        positional = [getattr(args, n) for n in positional_names]
        if len(positional_names) == 1 and isinstance(positional[0], list) and len(positional[0]) <= 1:
            positional = [positional[0][0] if positional[0] else None]
        return run_technique(func, positional, {k: getattr(args, k) for k in kw_names}, args)

    return handler


def _style_handler(single, kw_names):
    def handler(args):
        if args.batch:
            return run_batch(args, [args.content] + args.styles, {k: getattr(args, k) for k in kw_names})
        if args.ray:
            raise DeepCanvasError("--ray works with --batch")
        if not args.styles:
            raise DeepCanvasError("give a content image and at least one style image")
        return single(args)

    return handler


def run_batch(args, styles, kwargs) -> int:
    from .batch import style_batch

    out = Path("styled" if args.output == "styled.png" else args.output)
    reporter = Reporter(out / "x.png", args.print_every, 0, args.quiet)
    t0 = time.perf_counter()
    try:
        paths = style_batch(args.batch, styles, out, callback=reporter, ray_address=args.ray, **kwargs)
    finally:
        reporter.close()
    print(f"{len(paths)} images in {out}/ ({time.perf_counter() - t0:.1f} s)")
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except DeepCanvasError as e:
        print(f"deepcanvas: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("deepcanvas: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("deepcanvas: error: out of memory; try a smaller --size or --tile", file=sys.stderr)
        return 1
    except RuntimeError as e:  # torch's out-of-memory errors are RuntimeErrors
        if "out of memory" in str(e).lower():
            print("deepcanvas: error: out of memory; try a smaller --size or --tile", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
