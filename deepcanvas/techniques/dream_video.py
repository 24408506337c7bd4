"""DeepDream on video clips: the flow-guided feedback of dream videos.

Each frame's dream starts from the previous dream warped by the optical flow, blended with the new
frame (the new frame alone where the warp cannot be trusted: temporal.py), so the dream moves with
the picture instead of being redrawn every frame. Frames are written as they finish and a stopped
run resumes (framestore.py).
"""

from __future__ import annotations

import random
import time
from typing import Callable, Iterator

import torch

from .. import clip, models, temporal
from ..limits import check_number
from ..framestore import VideoResult, input_identity, open_clip, settings_digest
from ..imaging import array_to_tensor
from ..render import Progress, drive, render
from ..signature import check_choice
from .common import Pooling, Precision, longest_side
from .dream import prepare_dream
from .dream_octaves import octave_sizes, octave_stages


# Later dream frames start from the warped previous dream (blended 0.6 with the new frame): 4 of 10 steps put
# back what the blend took (256 px pan: the dream held its strength, warping error 0.47x frame by frame, half
# the time); all 10 amplified it further each frame (its distance from the input grew 11 -> 16 in 8 frames).
DREAM_LATER_SHARE = 0.4


def dream_video_steps(
    input,
    output,
    *,
    fps: float | None = None,
    start: float = 0.0,
    duration: float | None = None,
    size: int | None = 512,
    consistent: bool = True,
    blend: float = 0.6,
    later_iterations: int | None = None,
    flow_preset: temporal.FlowPreset = "medium",
    restart: bool = False,
    keep_frames: bool = False,
    layers: str | None = None,
    channels: str | None = None,
    octaves: int = 2,
    octave_scale: float = 1.4,
    iterations: int = 10,
    lr: float | None = None,
    jitter: int = 16,
    guide: str | None = None,
    tile: int = 512,
    model: str | models.LayeredNet = "efficientnet-lite0",
    weights: str | None = None,
    pooling: Pooling = "max",
    seed: int | None = 0,
    device: str = "auto",
    precision: Precision = "auto",
) -> Iterator[Progress]:
    """DeepDream a clip; each frame starts from the previous dream moved by the optical flow, blended with the new frame.

    Yields a Progress per step over the whole clip; the last has ``done=True`` and a VideoResult as ``output``.

    Args:
        input: a video file (mp4, mov, webm, animated gif...) or a folder or glob of frames.
        output: an .mp4 (H.264, with the input's audio), a .gif, or a folder of PNG frames (a name ending in /
            or without an extension).
        fps: frames per second to process and write (default: the clip's own; 25 for a folder of frames).
        start: where to start in the clip, in seconds.
        duration: how many seconds to process (default: to the end).
        size: longest side of the output frames in pixels (None keeps the clip's size).
        consistent: flow-guided feedback (the previous dream, warped, seeds the next frame); off dreams every
            frame on its own.
        blend: share of the warped previous dream in each frame's start image (the rest is the new frame).
        later_iterations: steps per octave for every frame after the first (default: 0.4 x iterations: the
            warped previous dream already carries most of the dream; the full count made it grow frame by frame).
        flow_preset: DIS optical flow preset: ultrafast, fast or medium.
        restart: discard the frames of an earlier, unfinished run in the output instead of resuming it.
        keep_frames: keep the PNG frames of an mp4 or gif output (in .NAME.deepcanvas-video/ next to it).
        layers: layers whose activations to amplify, with optional weights (default: the model's dream layers).
        channels: amplify only these channels of the layers, e.g. "12,40".
        octaves: number of scales per frame.
        octave_scale: size ratio between neighbouring octaves (greater than 1).
        iterations: gradient steps per octave (first frame).
        lr: step size (default: 0.01; 0.004 for VGGs).
        jitter: largest random shift of the image before each step, in pixels.
        guide: image whose features to dream toward.
        tile: process frames larger than this many pixels in tiles of this size.
        model: network from `deepcanvas models`, or a network object (models.LayeredNet).
        weights: local checkpoint for the model's architecture.
        pooling: max or avg.
        seed: random seed.
        device: auto, cpu, cuda or mps.
        precision: auto (bf16 on CUDA, fp32 elsewhere), fp32, bf16 or fp16.
    """
    from PIL import Image

    blend = check_number("blend", blend, minimum=0, maximum=1)
    check_choice("flow_preset", flow_preset, temporal.FlowPreset)
    if later_iterations is not None:
        later_iterations = int(check_number("later_iterations", later_iterations, integer=True, positive=True))
    info, pl, store = open_clip(input, output, fps, start, duration, None if size is None else longest_side(size))
    kw = dict(layers=layers, channels=channels, octaves=octaves, octave_scale=octave_scale, iterations=iterations,
              lr=lr, jitter=jitter, size=None, guide=guide, tile=tile, model=model, weights=weights, pooling=pooling,
              seed=seed, device=device, precision=precision)
    settings = {k: v for k, v in kw.items() if k != "model" or isinstance(v, str)}
    settings.update(times=pl.times, hw=pl.hw, consistent=consistent, blend=blend, later=later_iterations,
                    flow_preset=flow_preset, input=input_identity(info), kind="dream")
    digest = settings_digest(settings)
    store.check(digest, restart)
    frames = clip.read_frames(info, pl)
    s = prepare_dream(Image.fromarray(frames[0]), **kw)
    done = store.begin(digest, restart)
    stages, total = [], 0
    result = store.result(pl)
    if done < store.n:
        flows = temporal.Flows(frames, flow_preset)
        outputs = {i: store.read(i) for i in range(max(0, done - 1), done)}
        n_oct = len(octave_sizes(*pl.hw, s.octaves, s.octave_scale))
        later = later_iterations or max(1, round(DREAM_LATER_SHARE * s.iterations))
        clock = {"t": time.perf_counter()}
        for i in range(done, store.n):
            def base(prev, i=i):
                cur = array_to_tensor(frames[i])
                if not consistent or (i - 1) not in outputs:
                    return cur
                return temporal.warped_blend(i, flows, outputs[i - 1], cur, blend)

            def after(img: torch.Tensor, i=i):
                outputs[i] = img.cpu()
                outputs.pop(i - 2, None)
                store.write(i, img)
                now = time.perf_counter()
                result.seconds_per_frame.append(now - clock["t"])
                clock["t"] = now

            it = s.iterations if (i == done or not consistent) else later
            st = octave_stages(s, base, size=pl.hw, label=f"frame {i + 1}/{store.n}, ", after=after)
            if it != s.iterations:
                st = [_with_steps(b, it) for b in st]
            stages += st
            total += n_oct * it
    yield from render(s.net, stages, total=total, precision=s.precision, rng=random.Random(s.rng.getrandbits(32)),
                      finish=store.last_frame, output=lambda final: store.finish(info, pl, keep_frames, result))


def _with_steps(build, steps: int):
    def b(prev):
        st = build(prev)
        st.steps = steps
        return st
    return b


def dream_video(input, output, *, callback: Callable[[Progress], None] | None = None, **kwargs) -> VideoResult:
    """DeepDream a clip and write it; return what was written. See :func:`dream_video_steps`."""
    return drive(dream_video_steps(input, output, **kwargs), callback).output
