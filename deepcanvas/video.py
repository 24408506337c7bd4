"""Animations on disk: an endlessly looping GIF, and an H.264 MP4 when imageio-ffmpeg is installed.

Written atomically (a finished file or none), so an interrupted run never leaves half a movie.
"""

from __future__ import annotations

import pathlib
import warnings

import numpy as np

from . import io
from .errors import DeepCanvasError


def write_gif(images, path, fps: float) -> pathlib.Path:
    """Write PIL ``images`` as an endlessly looping animated GIF, atomically."""
    p = pathlib.Path(path)
    with io.atomic_path(p) as tmp:
        with open(tmp, "wb") as fh:
            images[0].save(fh, format="GIF", save_all=True, append_images=list(images[1:]),
                           duration=max(10, round(1000 / fps)), loop=0)
            fh.flush()
    return p


def mp4_available() -> bool:
    """Is the optional imageio-ffmpeg (an ffmpeg binary in a wheel) installed?"""
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return False
    return True


def write_mp4(images, path, fps: float) -> pathlib.Path | None:
    """Write PIL ``images`` as an H.264 MP4 if imageio-ffmpeg is installed (else return None)."""
    if not mp4_available():
        return None
    import imageio_ffmpeg

    p = pathlib.Path(path)
    w, h = images[0].size
    w2, h2 = w - w % 2, h - h % 2  # yuv420p needs even sides
    try:
        with io.atomic_path(p) as tmp:
            writer = imageio_ffmpeg.write_frames(str(tmp), (w2, h2), fps=float(fps), macro_block_size=1)
            writer.send(None)
            try:
                for im in images:
                    writer.send(np.ascontiguousarray(np.asarray(im.convert("RGB"))[:h2, :w2]))
            finally:
                writer.close()
    except (DeepCanvasError, RuntimeError, OSError) as e:
        warnings.warn(f"could not write the MP4 '{p}': {e}", stacklevel=2)
        return None
    return p
