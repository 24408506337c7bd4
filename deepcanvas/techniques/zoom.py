"""The endless DeepDream zoom: dream, zoom in a little, dream again on the result.

A run of frames, each frame the octaves of :mod:`.dream_octaves` (fewer of them: the previous
frame already holds the large patterns) started from the previous frame zoomed in.
Frames are written as they are finished; the GIF and the MP4 (:mod:`clip`, PyAV) when the
last one is.
"""

from __future__ import annotations

import os
import pathlib
import random
import warnings
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .. import clip, imaging, io
from ..errors import DeepCanvasError
from ..limits import check_number
from ..options import DreamOptions, NetworkOptions, RunOptions
from ..render import Progress, drive, render
from ..signature import flat_options
from .common import longest_side
from .dream import DREAM_DEFAULTS, prepare_dream
from .dream_octaves import octave_stages


def zoom_in(img: torch.Tensor, zoom: float) -> torch.Tensor:
    """Centre crop of 1/``zoom`` of the image, resized back to the full size (sub-pixel exact)."""
    if zoom == 1:
        return img
    n = img.shape[0]
    theta = torch.tensor([[1 / zoom, 0.0, 0.0], [0.0, 1 / zoom, 0.0]], dtype=img.dtype, device=img.device)
    grid = F.affine_grid(theta.expand(n, 2, 3), list(img.shape), align_corners=False)
    return F.grid_sample(img, grid, mode="bicubic", padding_mode="border", align_corners=False).clamp(0, 1)


@dataclass
class ZoomResult:
    """What :func:`dream_zoom` wrote."""

    frames: list[pathlib.Path]
    gif: pathlib.Path
    mp4: pathlib.Path | None


_IMAGE_SUFFIXES = {".png", ".gif", ".mp4", ".jpg", ".jpeg", ".webp"}


def zoom_paths(output, frames: int) -> tuple[list[pathlib.Path], pathlib.Path, pathlib.Path]:
    """Where the frames, the GIF and the MP4 go.

    A directory (existing, or named with a trailing slash) gets
    ``frame_0001.png``... and ``dream.gif``; anything else is a prefix:
    ``out/zoom`` (or ``out/zoom.gif``) gets ``out/zoom_0001.png``... and ``out/zoom.gif``.
    """
    try:
        text = os.fspath(output)
    except TypeError:
        raise DeepCanvasError(
            f"zoom output: expected a directory or file prefix, got {type(output).__name__}") from None
    if not text:
        raise DeepCanvasError("zoom output: no directory or file prefix given")
    p = pathlib.Path(os.path.expanduser(text))
    if p.is_dir() or text.endswith(("/", os.sep)):
        prefix, stem = p / "frame", p / "dream"
    else:
        stem = p.with_suffix("") if p.suffix.lower() in _IMAGE_SUFFIXES else p
        prefix = stem
    frame_paths = [prefix.parent / f"{prefix.name}_{i:04d}.png" for i in range(1, frames + 1)]
    return frame_paths, stem.parent / (stem.name + ".gif"), stem.parent / (stem.name + ".mp4")


@flat_options(defaults={**DREAM_DEFAULTS, "octaves": 2}, options=DreamOptions, run=RunOptions, network=NetworkOptions)
def dream_zoom_steps(image, output, *, frames: int = 30, zoom: float = 1.05, fps: float = 10.0,
                     size: int | None = 512, options: DreamOptions, run: RunOptions, network: NetworkOptions):
    """Dream, zoom in, dream again: yield a Progress per step, then one ``done=True`` with the last frame.

    Frames are written as they are finished; the GIF and the MP4 at the end
    (the MP4 is None if it could not be encoded: a warning says why). The generator's return value
    is a :class:`ZoomResult`. A frame dreams on fewer octaves than a still (2): the previous frame
    already holds the large patterns.

    Args:
        image: the photo to start from (path or PIL image).
        output: directory for frame_0001.png... and dream.gif, or a prefix such as out/zoom.
        frames: number of frames.
        zoom: zoom factor from one frame to the next (1 keeps the frame still).
        fps: frames per second of the GIF and MP4.
        size: longest side of the output in pixels (None keeps the photo's own size).
    """
    frames = int(check_number("frames", frames, integer=True, positive=True))
    zoom = check_number("zoom", zoom, minimum=1)
    fps = check_number("fps", fps, positive=True)
    size = None if size is None else longest_side(size)
    frame_paths, gif_path, mp4_path = zoom_paths(output, frames)
    folder = gif_path.parent
    # "out/" names a directory, made (once everything else checks out) if its parent exists.
    make_folder = not folder.exists() and os.fspath(output).endswith(("/", os.sep))
    io.check_output_path(folder.parent / "probe.gif" if make_folder else gif_path)
    s = prepare_dream(image, options, network, run, size)
    if make_folder:
        try:
            folder.mkdir(exist_ok=True)
        except OSError as e:
            raise DeepCanvasError(f"cannot create the directory '{folder}': {e.strerror or e}") from None
    written = ZoomResult(frame_paths, gif_path, None)
    images = []

    def save_frame(i: int):
        def after(img: torch.Tensor) -> None:
            images.append(imaging.tensor_to_image(img))
            io.save_image(images[-1], frame_paths[i])
            if i == frames - 1:
                clip.write_gif(images, gif_path, fps)
                written.mp4 = _write_mp4(images, mp4_path, fps)
        return after

    first = s.photo
    stages = [st for i in range(frames) for st in octave_stages(
        s, (lambda prev, i=i: first if i == 0 else zoom_in(prev, zoom)), size=tuple(first.shape[-2:]),
        label=f"frame {i + 1}/{frames}, ", after=save_frame(i))]
    yield from render(s.net, stages, total=frames * s.steps(first.shape[-2:]), precision=s.precision,
                       rng=random.Random(s.rng.getrandbits(32)), output=written)
    return written


def _write_mp4(images, path: pathlib.Path, fps: float) -> pathlib.Path | None:
    """The MP4 beside the GIF; a warning rather than a failure, since the frames and the GIF are written."""
    try:
        return clip.write_mp4(images, path, fps)
    except DeepCanvasError as e:
        warnings.warn(str(e), stacklevel=2)
        return None


def dream_zoom(image, output, *, callback: Callable[[Progress], None] | None = None, **kwargs) -> ZoomResult:
    """Write a zooming dream sequence and return what was written. See :func:`dream_zoom_steps`."""
    return drive(dream_zoom_steps(image, output, **kwargs), callback).output
