"""Style many content images (video frames, a folder of photos) with one style.

Outputs that already exist are skipped, so a stopped batch resumes where it
left off; outputs are written atomically, so a skipped file is always whole.
Style targets are computed once (``style.style_targets`` is memoised). A batch
too big for one machine goes to a Ray cluster (``pip install 'deepcanvas[ray]'``):
each worker loads the network once and styles the images it is sent.
"""

from __future__ import annotations

import dataclasses
import glob
from pathlib import Path
from typing import Callable

from . import distributed, imaging, io
from .atomic import save_bytes_atomic
from .errors import DeepCanvasError
from .render import Progress, drive

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


def find_inputs(spec: str) -> list[Path]:
    """A folder (its images, sorted) or a glob pattern."""
    p = Path(spec)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
    else:
        files = sorted(Path(f) for f in glob.glob(spec) if Path(f).is_file())
    if not files:
        raise DeepCanvasError(f"no images found for --batch {spec!r}")
    return files


def plan(inputs: list[Path], out_dir: Path, suffix: str = ".png") -> list[tuple[Path, Path]]:
    names = [f.stem for f in inputs]
    if len(set(names)) != len(names):
        raise DeepCanvasError("two inputs of the batch have the same name; outputs would clash")
    return [(f, out_dir / f"{f.stem}{suffix}") for f in inputs]


def style_batch(inputs: str | list, styles, out_dir, *, callback: Callable[[Progress], None] | None = None,
                ray_address: str | None = None, **style_kwargs) -> list[Path]:
    """Style every input image; return the output paths (existing ones included)."""
    from .techniques.style import style_transfer_steps

    files = find_inputs(inputs) if isinstance(inputs, str) else [Path(f) for f in inputs]
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise DeepCanvasError(f"--batch writes into a folder, and '{out_dir}' is a file")
    out_dir.mkdir(parents=True, exist_ok=True)
    io.check_output_path(out_dir / "probe.png")
    jobs = plan(files, out_dir)
    todo = [(src, dst) for src, dst in jobs if not dst.exists()]
    if ray_address:
        _run_on_ray(todo, styles, style_kwargs, ray_address, callback, len(jobs))
        return [dst for _, dst in jobs]
    done_before = len(jobs) - len(todo)
    per_item = None
    for k, (src, dst) in enumerate(todo):
        offset = None

        def relay(p: Progress):
            nonlocal per_item, offset
            per_item = per_item or p.total
            offset = (done_before + k) * per_item
            if callback is not None:
                callback(dataclasses.replace(p, iteration=offset + p.iteration, total=len(jobs) * per_item,
                                             stage=f"{src.name} [{done_before + k + 1}/{len(jobs)}] {p.stage}",
                                             done=False))

        last = drive(style_transfer_steps(src, styles, **style_kwargs), relay)
        io.save_image(last.image, dst)
    return [dst for _, dst in jobs]


class _Worker:
    """A Ray actor: loads the network once, then styles the images it is sent (as bytes)."""

    def __init__(self, style_bytes: list[bytes], kwargs: dict):
        from .models import load_model

        self.styles = [imaging.image_from_bytes(b) for b in style_bytes]
        self.kwargs = kwargs
        load_model(kwargs.get("model", "vgg16"), weights=kwargs.get("weights"), pooling=kwargs.get("pooling", "max"))

    def run(self, name: str, content: bytes) -> tuple[str, bytes]:
        from .techniques.style import style_transfer

        img = style_transfer(imaging.image_from_bytes(content), self.styles, **self.kwargs)
        return name, imaging.image_png(img)


def _run_on_ray(todo, styles, kwargs, address, callback, n_total):
    distributed.check_ray()
    if isinstance(styles, (str, Path)):
        styles = [styles]
    style_bytes = [Path(s).read_bytes() if not hasattr(s, "save") else imaging.image_png(s) for s in styles]
    for s in styles:  # fail here, not on a worker
        io.load_image(s, what="style image")
    with distributed.connect(address) as cpus:
        dst_of = {str(src): dst for src, dst in todo}
        done = n_total - len(todo)
        for name, png in distributed.map_unordered(
                _Worker, (style_bytes, kwargs), todo, lambda a, item: a.run.remote(str(item[0]), item[0].read_bytes()),
                workers=max(1, int(cpus // 2)), cpus_per_worker=min(2, cpus)):
            save_bytes_atomic(png, dst_of[name])
            done += 1
            if callback is not None:
                callback(Progress(done, n_total, float("nan"), {}, f"{Path(name).name} [ray]",
                                  imaging.image_to_tensor(io.load_image(dst_of[name]))))
