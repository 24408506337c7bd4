"""The ``deepcanvas`` command.

The technique commands, their help, positionals and functions come from
:mod:`deepcanvas.registry`; each one's flags are derived from its API function's keyword
arguments (names, types, defaults, and the ``Args:`` lines of its docstring), so the CLI
and the Python API cannot drift apart.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Callable

from .errors import DeepCanvasError, Notice
from .registry import TECHNIQUES, Technique
from .reporter import Reporter
from .signature import api_params

DATA = Path(__file__).parent / "data"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + traceback-like noise
        self.exit(2, f"deepcanvas: error: {message} (see {self.prog} --help)\n")


def add_api_arguments(parser: argparse.ArgumentParser, func, skip=()) -> list[str]:
    """Add ``--flag`` for every keyword-only argument of ``func``; return their names.

    A ``Literal[...]`` argument gets argparse ``choices`` (open ones, such as an init that may
    also be a file, list them in the help instead).
    """
    names = []
    for p in api_params(func, skip):
        flag = "--" + p.name.replace("_", "-")
        if p.type is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=p.default, help=p.help)
            names.append(p.name)
            continue
        default = "" if p.default is None else f" (default: {p.default})"
        extra = {}
        if p.choices and not p.open_choice:
            extra = {"choices": p.choices, "metavar": "{" + ",".join(map(str, p.choices)) + "}"}
        parser.add_argument(flag, type=p.type, default=p.default, **({"metavar": p.name.upper()} | extra),
                            help=p.help + default)
        names.append(p.name)
    return names


# -- output ------------------------------------------------------------------------------------
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
        if e.image is None:
            print("interrupted before the first step: nothing written", file=sys.stderr)
            return 130
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

    if args.action == "add":
        if not (args.name and args.model):
            raise DeepCanvasError("usage: deepcanvas models add NAME --model path/to/file.py:function [--weights FILE]")
        info = models.add_user_model(args.name, args.model, args.weights, args.mean, args.std)
        print(f"registered {info.name}: {info.spec}, {len(info.layer_names())} layers (now in `deepcanvas models`)")
        return 0
    if args.action == "remove":
        models.remove_user_model(args.name or "")
        print(f"removed {args.name}")
        return 0
    if args.layers:
        for name, shape in models.layer_shapes(args.layers, args.weights, args.mean, args.std).items():
            print(f"{name}  {' x '.join(map(str, shape)) or '-'}")
        return 0
    for row in models.describe():
        status = "available" if row["available"] else ("not installed" if row["offline"] else "downloads on first use")
        print(f"{row['name']}  [{status}]  {row['description']}")
        print(f"    weights: {row['source']}")
        if row["classes"]:
            print(f"    classes: {row['classes']}{' ImageNet classes' if row['classes'] == 1000 else ''}")
        print(f"    layers: {' '.join(row['layers'])}")
    return 0


def _technique(module: str):
    import importlib

    return importlib.import_module(f".techniques.{module}", __package__)


def build_parser(only: str | None = None):
    """The whole command line; with ``only``, the flags of that command alone are filled in (the others
    are listed by name and help, without importing their modules)."""
    parser = _Parser(prog="deepcanvas", description="Backpropagate to the image: style transfer, DeepDream, "
                                                    "class visualization and feature inversion.")
    parser.add_argument("--version", action="version", version=f"deepcanvas {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    p = sub.add_parser("models", help="list the networks, where their weights come from, and their layers; "
                                      "`models add NAME --model ...` registers your own")
    p.add_argument("action", nargs="?", choices=("add", "remove"), help="register or forget a model of yours")
    p.add_argument("name", nargs="?", help="with add/remove: the name to use with --model")
    p.add_argument("--model", help="with add: path/to/file.py:function (returns an nn.Module), timm:NAME or "
                                   "torchvision:NAME")
    p.add_argument("--weights", help="a state dict (.pth, .pt, .safetensors) for --model or --layers")
    p.add_argument("--mean", help="input mean per RGB channel, e.g. 0.485,0.456,0.406")
    p.add_argument("--std", help="input std per RGB channel, e.g. 0.229,0.224,0.225")
    p.add_argument("--layers", metavar="MODEL", help="list MODEL's layer paths with their output shapes "
                                                     "(a dry run on a 64 px image)")
    p.set_defaults(handler=cmd_models)
    for tech in TECHNIQUES:
        p = sub.add_parser(tech.command, help=tech.help, description=tech.help)
        if only in (None, tech.command):
            _FILL[tech.kind](p, tech)
    from .demo import add_demo_command
    from .web import add_serve_command  # imports no web dependency

    add_demo_command(sub)
    add_serve_command(sub)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("deepcanvas")
    except PackageNotFoundError:
        return "unknown"


def _fill_image_command(p, tech: Technique) -> None:
    """An image technique: its positionals, the run flags, and its ``*_steps`` function's flags."""
    mod = _technique(tech.module)
    _add_positionals(p, tech)
    _common_run_flags(p, tech.output)
    kw = add_api_arguments(p, getattr(mod, tech.steps))
    handler = _make_handler(getattr(mod, tech.function), [a.name for a in tech.positionals], kw)
    if tech.command == "style":
        p.add_argument("--batch", metavar="DIR_OR_GLOB",
                       help="style every image in a folder or glob with the style image(s); -o is then a "
                            "folder; existing outputs are skipped, so a stopped batch resumes")
        p.add_argument("--ray", metavar="ADDRESS",
                       help="with --batch: run on a Ray cluster (ADDRESS, or 'local' to start one here)")
        handler = _style_handler(handler, kw)
    p.set_defaults(handler=handler)


def _add_positionals(p, tech: Technique) -> None:
    for a in tech.positionals:
        p.add_argument(a.name, help=a.help, **({"nargs": a.nargs} if a.nargs else {}))


def _fill_zoom_command(p, tech: Technique) -> None:
    """``dream-zoom``: the sequence's own flags, then the dream's (its API function's)."""
    zoom = _technique(tech.module)
    _add_positionals(p, tech)
    p.add_argument("-o", "--output", default=tech.output, help="a folder (frame_0001.png ..., dream.gif) or a prefix "
                                                               f"like out/zoom (default: {tech.output})")
    p.add_argument("--frames", type=int, default=30, help="number of frames (default: 30)")
    p.add_argument("--zoom", type=float, default=1.05, help="zoom factor per frame (default: 1.05)")
    p.add_argument("--fps", type=float, default=10.0, help="frames per second of the GIF and MP4 (default: 10)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    kw = add_api_arguments(p, getattr(zoom, tech.steps), skip=("frames", "zoom", "fps"))

    def handler(args):
        reporter = Reporter(Path("x.png"), 0, 0, args.quiet)
        t0 = time.perf_counter()
        try:
            res = getattr(zoom, tech.function)(*[getattr(args, a.name) for a in tech.positionals], args.output,
                                               frames=args.frames, zoom=args.zoom, fps=args.fps, callback=reporter,
                                               **{k: getattr(args, k) for k in kw})
        finally:
            reporter.close()
        extra = f" and {res.mp4}" if res.mp4 else ""
        print(f"wrote {len(res.frames)} frames ({res.frames[0]} ...), {res.gif}{extra} "
              f"in {time.perf_counter() - t0:.1f} s")
        return 0

    p.set_defaults(handler=handler)


def _fill_video_command(p, tech: Technique) -> None:
    """``style-video`` / ``dream-video``: the API function's flags, one progress bar over the whole clip."""
    video = _technique(tech.module)
    _add_positionals(p, tech)
    p.add_argument("-o", "--output", default=tech.output,
                   help=f"an .mp4, a .gif, or a folder of PNG frames (ending in /) (default: {tech.output})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    kw = add_api_arguments(p, getattr(video, tech.steps))
    func = getattr(video, tech.function)

    def handler(args):
        from .render import Interrupted

        reporter = Reporter(Path("x.png"), 0, 0, args.quiet)
        t0 = time.perf_counter()
        try:
            res = func(*[getattr(args, a.name) for a in tech.positionals], args.output, callback=reporter,
                       **{k: getattr(args, k) for k in kw})
        except Interrupted:
            reporter.close()
            print(f"interrupted: the finished frames are kept; run the same command again to resume",
                  file=sys.stderr)
            return 130
        reporter.close()
        w, h = res.size
        print(f"wrote {res.output} ({len(res.frames)} frames, {w}x{h}, {res.fps:g} fps) "
              f"in {time.perf_counter() - t0:.1f} s")
        return 0

    p.set_defaults(handler=handler)


_FILL = {"image": _fill_image_command, "zoom": _fill_zoom_command, "video": _fill_video_command}


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
        if args.print_size or args.print_from_init or args.size > args.working_size:
            return run_print(args, {k: getattr(args, k) for k in kw_names})
        return single(args)

    return handler


def run_print(args, kwargs) -> int:
    """A print (techniques.style_print): written with its DPI; a stopped one resumes when run again."""
    from .io import check_output_path, save_image
    from .render import Interrupted
    from .techniques.style_print import style_print

    out = check_output_path(args.output)
    reporter = Reporter(out, args.print_every, args.save_every, args.quiet)
    t0 = time.perf_counter()
    try:
        path = style_print(args.content, args.styles, out, callback=reporter, **kwargs)
    except Interrupted as e:
        reporter.close()
        if e.image is not None:
            if args.dpi:
                e.image.info["dpi"] = (args.dpi, args.dpi)
            save_image(e.image, out)
        print(f"interrupted: {'wrote the best image so far to ' + str(out) if e.image else 'nothing written'}; "
              "run the same command again to resume the print from its last finished size", file=sys.stderr)
        return 130
    reporter.close()
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
    print(f"wrote {path} ({w}x{h}{f', {args.dpi:g} dpi' if args.dpi else ''}) in {time.perf_counter() - t0:.1f} s")
    return 0


def run_batch(args, styles, kwargs) -> int:
    import dataclasses

    from .batch import style_batch
    from .options.prints import PrintOptions

    for f in dataclasses.fields(PrintOptions):  # a batch has no print schedule
        if kwargs.pop(f.name, f.default) != f.default:
            raise DeepCanvasError(f"--{f.name.replace('_', '-')} makes a print of one picture; it does not work with --batch")
    out = Path("styled" if args.output == "styled.png" else args.output)
    reporter = Reporter(out / "x.png", args.print_every, 0, args.quiet)
    t0 = time.perf_counter()
    try:
        paths = style_batch(args.batch, styles, out, callback=reporter, ray_address=args.ray, **kwargs)
    finally:
        reporter.close()
    print(f"{len(paths)} images in {out}/ ({time.perf_counter() - t0:.1f} s)")
    return 0


def _command_in(argv: list[str]) -> str:
    """The subcommand named in ``argv`` ('' for none): only its module needs importing."""
    names = {t.command for t in TECHNIQUES}
    for a in argv:
        if not a.startswith("-"):
            return a if a in names else ""
    return ""


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """A library warning (e.g. a style map colour the content map lacks) as one line, like the errors."""
    kind = "" if issubclass(category, Notice) else "warning: "
    print(f"deepcanvas: {kind}{message}", file=file or sys.stderr)


def main(argv=None) -> int:
    import warnings

    with warnings.catch_warnings():  # restored afterwards: main() may be called from other code (tests)
        warnings.showwarning = _show_warning
        return _main(argv)


def _main(argv) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(only=_command_in(argv))
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
