"""Style many content images (video frames, a folder of photos) with one style, as one run.

Each image is a stretch of stages of the one loop (its scales), all in one render: one progress
stream over the batch, one Ctrl-C path. Outputs that already exist are skipped, so a stopped batch
resumes where it left off; outputs are written atomically, so a skipped file is always whole. The
style targets are computed once for the batch (one StyleTargets cache). A batch too big for one
machine goes to a Ray cluster (``pip install 'deepcanvas[ray]'``): each worker loads the network
once and styles the images it is sent, reporting every step.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Callable, Iterator

from . import distributed, imaging, io
from .atomic import save_bytes_atomic
from .errors import DeepCanvasError
from .render import Elsewhere, Progress, Report, drive, render
from .signature import build_records

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


def output_paths(inputs: list[Path], out_dir: Path, suffix: str = ".png") -> list[tuple[Path, Path]]:
    names = [f.stem for f in inputs]
    if len(set(names)) != len(names):
        raise DeepCanvasError("two inputs of the batch have the same name; outputs would clash")
    return [(f, out_dir / f"{f.stem}{suffix}") for f in inputs]


def style_batch_steps(inputs: str | list, styles, out_dir, *, ray_address: str | None = None,
                      **style_kwargs) -> Iterator[Progress]:
    """Style every input image: a Progress per step over the whole batch; the last has ``done=True`` and the
    output paths (existing ones included) as ``output``. ``style_kwargs``: style_transfer's keywords."""
    from .techniques.style import STYLE_RECORDS, prepare_style, scale_stages, schedule_of
    from .techniques.style_targets import StyleTargets

    records = build_records(STYLE_RECORDS, style_kwargs, "style_batch")
    files = find_inputs(inputs) if isinstance(inputs, str) else [Path(f) for f in inputs]
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise DeepCanvasError(f"--batch writes into a folder, and '{out_dir}' is a file")
    if isinstance(styles, (str, Path)) or hasattr(styles, "mode"):
        styles = [styles]
    for s in styles:  # fail here, before any slow work (and not on a Ray worker)
        io.load_image(s, what="style image")
    out_dir.mkdir(parents=True, exist_ok=True)
    io.check_output_path(out_dir / "probe.png")
    jobs = output_paths(files, out_dir)
    todo = [(src, dst) for src, dst in jobs if not dst.exists()]
    schedule = schedule_of(records["options"], records["still"])  # the same scales for every image
    per_image = sum(n for _, n in schedule)
    start = (len(jobs) - len(todo)) * per_image
    paths = [dst for _, dst in jobs]
    if not todo:  # all written by an earlier run
        yield from render(None, [], total=start, start=start, output=paths,
                          finish=lambda results: imaging.image_to_tensor(io.load_image(jobs[-1][1])))
        return
    if ray_address:
        distributed.check_ray()
        with distributed.connect(ray_address) as cpus:
            yield from render(None, [_on_ray(cpus, todo, styles, style_kwargs, len(todo) * per_image)],
                              start=start, output=paths)
        return

    targets = StyleTargets()  # the style images' targets, computed once for the whole batch
    current = {}  # the image being styled: its source, plan and stage builders

    def prepare(k: int, src: Path, dst: Path) -> None:
        plan = prepare_style(src, styles, **records, targets=targets)  # the network and targets are kept
        label = f"{src.name} [{len(jobs) - len(todo) + k + 1}/{len(jobs)}] "
        specs, _ = scale_stages(plan, label=label, after=lambda img: io.save_image(imaging.tensor_to_image(img), dst))
        current.update(src=src, plan=plan, specs=specs)

    def scale(k: int, src: Path, dst: Path, i: int):
        def build(prev):
            if current["src"] != src:  # the image's first scale: load it
                prepare(k, src, dst)
            return current["specs"][i](prev if i else None)  # a new image starts from its own init
        return build

    prepare(0, *todo[0])  # before the run: render needs the network
    stages = [scale(k, src, dst, i) for k, (src, dst) in enumerate(todo) for i in range(len(schedule))]
    yield from render(current["plan"].net, stages, total=start + len(todo) * per_image,
                      precision=records["network"].precision, start=start, output=paths,
                      finish=lambda results: current["plan"].finish(results[-1], current["plan"].images.content))


def style_batch(inputs: str | list, styles, out_dir, *, callback: Callable[[Progress], None] | None = None,
                ray_address: str | None = None, **style_kwargs) -> list[Path]:
    """Style every input image; return the output paths (existing ones included). See :func:`style_batch_steps`."""
    return drive(style_batch_steps(inputs, styles, out_dir, ray_address=ray_address, **style_kwargs), callback).output


class StyleWorker:
    """A Ray actor: loads the network once, then styles the images it is sent (as bytes), reporting each step."""

    def __init__(self, style_bytes: list[bytes], kwargs: dict):
        from .models import load_model

        self.styles = [imaging.image_from_bytes(b) for b in style_bytes]
        self.kwargs = kwargs
        load_model(kwargs.get("model", "vgg16"), weights=kwargs.get("weights"), pooling=kwargs.get("pooling", "max"))

    def run(self, name: str, content: bytes, steps) -> tuple[str, bytes]:
        from .techniques.style import style_transfer_steps

        last = drive(style_transfer_steps(imaging.image_from_bytes(content), self.styles, **self.kwargs),
                     distributed.report(steps))
        return name, imaging.image_png(last.image)


def _on_ray(cpus: float, todo, styles, kwargs, steps: int) -> Elsewhere:
    """The images of ``todo`` styled on the Ray pool (inside distributed.connect), as one reporting stretch."""
    style_bytes = [Path(s).read_bytes() if not hasattr(s, "save") else imaging.image_png(s) for s in styles]
    dst_of = {str(src): dst for src, dst in todo}

    def reports() -> Iterator[Report]:
        shown = imaging.image_to_tensor(io.load_image(todo[0][0]))  # until a styled image comes back
        yield Report(0, shown, stage="batch [ray]")
        for n, got in distributed.run_pool(StyleWorker, (style_bytes, kwargs), todo,
                                           lambda a, item, q: a.run.remote(str(item[0]), item[0].read_bytes(), q),
                                           workers=max(1, int(cpus // 2)), cpus_per_worker=min(2, cpus)):
            if got is None:
                yield Report(n, stage="batch [ray]")
                continue
            name, png = got
            save_bytes_atomic(png, dst_of[name])
            shown = imaging.image_to_tensor(imaging.image_from_bytes(png))
            yield Report(0, shown, stage=f"{Path(name).name} [ray]")
        return shown

    return Elsewhere(steps, reports, "batch [ray]")
