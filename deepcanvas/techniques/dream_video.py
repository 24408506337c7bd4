"""DeepDream on video clips: the flow-guided feedback of dream videos.

Each frame's dream starts from the previous dream warped by the optical flow, blended with the new
frame (the new frame alone where the warp cannot be trusted: temporal.py), so the dream moves with
the picture instead of being redrawn every frame. Frames are written as they finish and a stopped
run resumes (framestore.py).
"""

from __future__ import annotations

import dataclasses
import random
from typing import Callable, Iterator

import torch

from .. import clip, temporal
from ..framestore import VideoResult, input_identity, open_clip, settings_digest
from ..imaging import array_to_tensor
from ..limits import check_number
from ..options import ClipOptions, DreamOptions, NetworkOptions, RunOptions
from ..render import Progress, drive, render
from ..signature import flat_options
from .dream import DREAM_DEFAULTS, prepare_dream
from .dream_octaves import octave_stages


# Later dream frames start from the warped previous dream (blended 0.6 with the new frame): 4 of 10 steps put
# back what the blend took (256 px pan: the dream held its strength, warping error 0.47x frame by frame, half
# the time); all 10 amplified it further each frame (its distance from the input grew 11 -> 16 in 8 frames).
DREAM_LATER_SHARE = 0.4


#: What dream's shared options mean on a clip (the help the CLI shows for them here).
VIDEO_HELPS = {
    "consistent": "flow-guided feedback (the previous dream, warped, seeds the next frame); off dreams every frame on "
                  "its own.",
    "later_iterations": "steps per octave for every frame after the first (default: 0.4 x iterations: the warped "
                        "previous dream already carries most of the dream; the full count made it grow frame by "
                        "frame).",
    "layers": "layers whose activations to amplify, with optional weights (default: the model's dream layers).",
    "octaves": "number of scales per frame.",
    "iterations": "gradient steps per octave (first frame).",
    "lr": "step size (default: 0.01; 0.004 for VGGs).",
    "guide": "image whose features to dream toward.",
    "tile": "process frames larger than this many pixels in tiles of this size.",
    "seed": "random seed.",
}


@flat_options(defaults={**DREAM_DEFAULTS, "octaves": 2, "jitter": 16, "seed": 0}, helps=VIDEO_HELPS, video=ClipOptions,
              options=DreamOptions, run=RunOptions, network=NetworkOptions)
def dream_video_steps(input, output, *, video: ClipOptions, blend: float = 0.6, options: DreamOptions,
                      run: RunOptions, network: NetworkOptions) -> Iterator[Progress]:
    """DeepDream a clip; each frame starts from the previous dream moved by the optical flow, blended with the new frame.

    Yields a Progress per step over the whole clip; the last has ``done=True`` and a VideoResult as ``output``.

    Args:
        input: a video file (mp4, mov, webm, animated gif...) or a folder or glob of frames.
        output: an .mp4 (H.264, with the input's audio), a .gif, or a folder of PNG frames (a name ending in /
            or without an extension).
        blend: share of the warped previous dream in each frame's start image (the rest is the new frame).
    """
    from PIL import Image

    blend = check_number("blend", blend, minimum=0, maximum=1)
    info, pl, store = open_clip(input, output, video.fps, video.start, video.duration, video.size)
    settings = {**dataclasses.asdict(options), "size": None, **dataclasses.asdict(run), **{
        k: v for k, v in dataclasses.asdict(network).items() if k != "model" or isinstance(v, str)}}
    settings.update(times=pl.times, hw=pl.hw, consistent=video.consistent, blend=blend, later=video.later_iterations,
                    flow_preset=video.flow_preset, input=input_identity(info), kind="dream")
    digest = settings_digest(settings)
    store.check(digest, video.restart)
    frames = clip.read_frames(info, pl)
    s = prepare_dream(Image.fromarray(frames[0]), options, network, run, None)
    done = store.begin(digest, video.restart)
    stages, total = [], 0
    result = store.result(pl)
    if done < store.n:
        flows = temporal.Flows(frames, video.flow_preset)
        outputs = {i: store.read(i) for i in range(max(0, done - 1), done)}
        octave_count = len(s.sizes(pl.hw))
        first = s.options.iterations
        later = video.later_iterations or max(1, round(DREAM_LATER_SHARE * first))
        for i in range(done, store.n):
            def base(prev, i=i):
                cur = array_to_tensor(frames[i])
                if not video.consistent or (i - 1) not in outputs:
                    return cur
                return temporal.warped_blend(i, flows, outputs[i - 1], cur, blend)

            def after(img: torch.Tensor, i=i):
                outputs[i] = img.cpu()
                outputs.pop(i - 2, None)
                store.write(i, img)
                result.frame_done()

            steps = first if (i == done or not video.consistent) else later
            frame_stages = octave_stages(s, base, size=pl.hw, label=f"frame {i + 1}/{store.n}, ", after=after)
            if steps != first:
                frame_stages = [_with_steps(build, steps) for build in frame_stages]
            stages += frame_stages
            total += octave_count * steps
    yield from render(s.net, stages, total=total, precision=s.precision, rng=random.Random(s.rng.getrandbits(32)),
                      finish=store.last_frame, output=lambda final: store.finish(info, pl, video.keep_frames, result))


def _with_steps(build, steps: int):
    """A stage builder like ``build`` whose stage takes ``steps`` steps."""
    def with_steps(prev):
        stage = build(prev)
        stage.steps = steps
        return stage
    return with_steps


def dream_video(input, output, *, callback: Callable[[Progress], None] | None = None, **kwargs) -> VideoResult:
    """DeepDream a clip and write it; return what was written. See :func:`dream_video_steps`."""
    return drive(dream_video_steps(input, output, **kwargs), callback).output
