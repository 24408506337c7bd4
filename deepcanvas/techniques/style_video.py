"""Style transfer on video clips, temporally consistent (Ruder, Dosovitskiy & Brox 2016).

Styling each frame on its own flickers: every frame's optimisation paints its texture in other
places. Here each frame is one stage of the one loop, warm-started from the previous output moved
by the optical flow, with a temporal loss tying it to the earlier outputs (style_frames.py,
temporal.py); later frames take ``later_iterations`` steps instead of ``iterations``. Frames are
written as they finish and a stopped run resumes (framestore.py); ``ray`` cuts a long clip into
overlapping chunks styled in parallel.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Callable, Iterator

from .. import clip, distributed, io, temporal
from ..errors import DeepCanvasError
from ..framestore import VideoResult, image_digest, input_identity, open_clip, settings_digest
from ..limits import check_number
from ..options import ClipOptions, NetworkOptions, RunOptions, StillOptions, StyleOptions
from ..render import Progress, drive, render
from ..signature import flat_options
from .style import prepare_style
from .style_frames import on_ray, style_frames
from .style_targets import StyleTargets

#: Share of the first frame's iterations a later frame takes (warm start from the warped previous
#: output): the visible pixels are already styled, only the disoccluded strips start from the photo.
LATER_SHARE = 0.3


#: What the clip's shared options mean for style video (the help the CLI shows for them here).
VIDEO_HELPS = {
    "consistent": "temporal consistency (warm start from the warped previous output and a temporal loss); off "
                  "styles every frame on its own, as a still picture.",
    "later_iterations": "iterations for every frame after the first (default: 0.3 x iterations).",
}


@flat_options(defaults={"seed": 0}, helps=VIDEO_HELPS, video=ClipOptions, options=StyleOptions, run=RunOptions,
              network=NetworkOptions)
def style_video_steps(
    input,
    styles,
    output,
    *,
    video: ClipOptions,
    temporal_weight: float = 5.0,
    long_term: str | None = None,
    chunk: int = 0,
    overlap: int = 8,
    ray: str | None = None,
    options: StyleOptions,
    run: RunOptions,
    network: NetworkOptions,
) -> Iterator[Progress]:
    """Style a clip frame by frame, each frame warm-started from the previous output moved by the optical flow.

    Yields a Progress per step over the whole clip; the last has ``done=True`` and a VideoResult as ``output``.

    Args:
        input: a video file (mp4, mov, webm, animated gif...) or a folder or glob of frames.
        styles: one or more style images (paths or PIL images).
        output: an .mp4 (H.264, with the input's audio), a .gif, or a folder of PNG frames (a name ending in /
            or without an extension).
        temporal_weight: weight of the temporal loss (the masked difference to the warped previous output),
            against the style loss's 1.
        long_term: also tie each frame to these earlier frames, e.g. "2,4" (Ruder et al.'s long-term loss).
        chunk: with ray: frames per chunk styled in parallel (default: split the clip evenly over the workers).
        overlap: with ray: frames each chunk shares with the previous one, cross-faded when joined (the longer,
            the smoother the seam: two chunks' textures differ by about a frame-by-frame restyling, and the
            fade spreads that over overlap + 1 frame pairs).
        ray: style chunks of the clip in parallel on a Ray cluster (an address, or 'local').
    """
    # -- everything checked before any slow work --------------------------------------------------
    temporal_weight = check_number("temporal_weight", temporal_weight, minimum=0)
    offsets = temporal.parse_offsets(long_term)
    chunk = int(check_number("chunk", chunk, integer=True, minimum=0))
    overlap = int(check_number("overlap", overlap, integer=True, minimum=0, maximum=100))
    if isinstance(styles, (str, os.PathLike)) or hasattr(styles, "mode"):
        styles = [styles]
    styles = list(styles)
    if not styles:
        raise DeepCanvasError("no style image given")
    for s in styles:
        io.load_image(s, what="style image")
    info, pl, store = open_clip(input, output, video.fps, video.start, video.duration, video.size)
    # The records a frame is styled with (the same as a still's, at the clip's size), for the plan and Ray workers.
    records = dict(options=options, run=run, network=network, still=StillOptions(size=max(pl.hw)))
    settings = {**dataclasses.asdict(options), **dataclasses.asdict(run), **{
        k: v for k, v in dataclasses.asdict(network).items() if k != "model" or isinstance(v, str)}}
    settings.update(times=pl.times, hw=pl.hw, consistent=video.consistent, styles=image_digest(
                        [io.load_image(s, what="style image") for s in styles]), input=input_identity(info),
                    **({"ray": {"chunk": chunk, "overlap": overlap}} if ray else {}))
    if video.consistent:  # what only a consistent run depends on
        settings.update(temporal_weight=temporal_weight, offsets=offsets, later_iterations=video.later_iterations,
                        flow_preset=video.flow_preset)
    digest = settings_digest(settings)
    if ray:
        distributed.check_ray()
    store.check(digest, video.restart)
    frames = clip.read_frames(info, pl)  # decoded once, at the working size
    from PIL import Image

    plan = prepare_style(Image.fromarray(frames[0]), styles, **records, targets=StyleTargets())
    done = store.begin(digest, video.restart)
    later = video.later_iterations or max(1, round(LATER_SHARE * plan.solver.iterations))
    result = store.result(pl)
    opts = dict(consistent=video.consistent, temporal_weight=temporal_weight, offsets=offsets, later=later,
                preset=video.flow_preset)
    with distributed.connect(ray) if ray and done < store.n else contextlib.nullcontext() as cpus:
        if done == store.n:  # all frames were finished by an earlier run: only the encoding is left
            stages, total = [], 0
        elif ray:
            far = on_ray(cpus, frames, styles, records, done, store, chunk, overlap, opts, plan.solver.iterations, result)
            stages, total = [far], far.steps
        else:
            outputs = {i: store.read(i) for i in range(max(0, done - max(offsets)), done)}
            stages, total = style_frames(plan, frames, range(done, store.n), outputs, store.write, result=result,
                                         **opts)
        yield from render(plan.net, stages, total=total, precision=plan.network.precision, rng=plan.rng,
                          finish=store.last_frame,
                          output=lambda final: store.finish(info, pl, video.keep_frames, result))


def style_video(input, styles, output, *, callback: Callable[[Progress], None] | None = None,
                **kwargs) -> VideoResult:
    """Style a clip and write it; return what was written. See :func:`style_video_steps`."""
    return drive(style_video_steps(input, styles, output, **kwargs), callback).output
