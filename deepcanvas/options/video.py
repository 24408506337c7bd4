"""What style video and dream video share: which part of the clip, at what size and rate, and how frames hold
together and are kept."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..signature import check_record
from .common import option

FlowPreset = Literal["ultrafast", "fast", "medium"]


@dataclass(frozen=True)
class ClipOptions:
    """The clip a video technique reads and writes, and how its frames follow each other.

    ``consistent`` and ``later_iterations`` mean a technique's own thing (a temporal loss, a blended warm start):
    each technique says which in its help (``flat_options(helps=...)``).
    """

    fps: float | None = option(
        None, "frames per second to process and write (default: the clip's own; 25 for a folder of frames).",
        positive=True)
    start: float = option(0.0, "where to start in the clip, in seconds.", minimum=0)
    duration: float | None = option(None, "how many seconds to process (default: to the end).", positive=True)
    size: int | None = option(512, "longest side of the output frames in pixels (None keeps the clip's size).",
                              integer=True, positive=True)
    consistent: bool = option(True, "tie each frame to the previous output; off treats every frame on its own.")
    later_iterations: int | None = option(
        None, "iterations for every frame after the first (default: a share of iterations).", integer=True,
        positive=True)
    flow_preset: FlowPreset = option("medium", "DIS optical flow preset: ultrafast, fast or medium.")
    restart: bool = option(False, "discard the frames of an earlier, unfinished run in the output instead of "
                                  "resuming it.")
    keep_frames: bool = option(False, "keep the PNG frames of an mp4 or gif output (in .NAME.deepcanvas-video/ next "
                                      "to it).")

    def __post_init__(self):
        check_record(self)
