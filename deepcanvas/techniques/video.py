"""Style transfer and DeepDream on video clips, temporally consistent (Ruder, Dosovitskiy & Brox 2016).

Styling each frame on its own flickers: every frame's optimisation paints its texture in other
places. Here each frame is one stage of the one loop (render.py), built from the previous one:

- the optical flow between consecutive *input* frames (flow.py: OpenCV's DIS flow, both ways) says
  where each pixel of frame t was in frame t-1; a forward-backward check marks the pixels that just
  appeared (disocclusions) and motion boundaries;
- frame t starts from the previous *output* warped along the flow (the new frame's own content where
  the mask says the warp cannot be trusted), so most of the picture is already styled and a few
  steps finish it: later frames take ``later_iterations`` steps instead of ``iterations``;
- the objective adds a temporal loss (objectives.Temporal): the masked squared difference to the
  warped previous output, optionally to several earlier outputs too (``long_term``), each pixel tied
  to the nearest earlier frame in which it was visible.

DeepDream's version is the flow-guided feedback of dream videos: each frame's dream starts from the
previous dream warped by the flow, blended with the new frame (the new frame alone where occluded).

Frames are written as they finish into a folder (the output itself for a folder of PNGs, or a work
folder ``.NAME.deepcanvas-video/`` next to an MP4 or GIF, encoded when the last frame is done). A
state file there records a digest of the input and the settings; running the same command again
skips the finished frames. ``ray`` cuts a long clip into overlapping chunks styled in parallel.
"""

from __future__ import annotations

import hashlib
import io as _io
import json
import os
import pathlib
import random
import shutil
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Literal

import numpy as np
import torch

from .. import clip, io, models
from ..errors import DeepCanvasError
from ..limits import check_number
from ..objectives import Temporal
from ..render import Progress, Stage, cosine_decay, drive, render
from .common import Pooling, Precision, longest_side

STATE = ".deepcanvas-video.json"
FlowPreset = Literal["ultrafast", "fast", "medium"]

#: Share of the first frame's iterations a later frame takes (warm start from the warped previous
#: output): the visible pixels are already styled, only the disoccluded strips start from the photo.
LATER_SHARE = 0.3
#: How the previous output is moved along the flow (flow.warp): bicubic, so the blur does not compound.
WARP_MODE = "bicubic"
#: A warm-started frame's learning rate decays to this share of the first frame's.
LR_FLOOR = 0.1


@dataclass
class VideoResult:
    """What a video run wrote."""

    output: pathlib.Path
    kind: str  # 'mp4', 'gif' or 'folder'
    frames: list[pathlib.Path]  # the PNG frames (removed after encoding unless keep_frames)
    fps: float
    size: tuple[int, int]  # (width, height)
    seconds_per_frame: list[float] = field(default_factory=list)  # this run's frames, in order
    seams: list[int] = field(default_factory=list)  # with ray: the first frame of each later chunk's own frames


# --------------------------------------------------------------------------- where frames go, and resuming


@dataclass
class _Work:
    kind: str
    output: pathlib.Path
    folder: pathlib.Path  # where the PNG frames go
    n: int

    def frame(self, i: int) -> pathlib.Path:
        return self.folder / clip.frame_name(i)

    def finished(self) -> int:
        """How many frames from the first on are already written (frames are written atomically)."""
        k = 0
        while k < self.n and self.frame(k).is_file():
            k += 1
        return k


def _work(output, n: int) -> _Work:
    kind, p = clip.check_output(output)
    if kind == "folder":
        return _Work(kind, p, p, n)
    return _Work(kind, p, p.parent / f".{p.name}.deepcanvas-video", n)


def _digest(parts: dict) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _input_identity(info: clip.ClipInfo) -> list:
    files = info.files or [pathlib.Path(info.source)]
    out = []
    for f in files:
        st = f.stat()
        out.append([str(f.resolve()), st.st_size, int(st.st_mtime)])
    return out


def _image_digest(imgs) -> str:
    h = hashlib.sha1()
    for im in imgs:
        if hasattr(im, "tobytes"):
            h.update(im.tobytes())
        else:
            h.update(pathlib.Path(im).read_bytes())
    return h.hexdigest()


def _check_state(work: _Work, digest: str, restart: bool) -> None:
    """Fail now if the work folder holds frames of another run (and ``restart`` was not asked); writes nothing."""
    state_path = work.folder / STATE
    if restart:
        return
    if state_path.is_file():
        try:
            state = json.loads(state_path.read_text())
        except (OSError, ValueError):
            state = {}
        if state.get("digest") != digest:
            raise DeepCanvasError(f"'{work.folder}' holds frames of another run (a different input or settings); "
                                  f"delete them, choose another output, or pass --restart to start over")
    elif work.folder.is_dir() and work.frame(0).exists():
        raise DeepCanvasError(f"'{work.folder}' already holds {clip.frame_name(0)} from something else; "
                              f"choose another output, or pass --restart to overwrite")


def _begin_work(work: _Work, digest: str, restart: bool) -> int:
    """Start (or resume) the work folder; return how many frames are already finished."""
    _check_state(work, digest, restart)
    state_path = work.folder / STATE
    if restart and work.folder.is_dir():
        for i in range(work.n):
            work.frame(i).unlink(missing_ok=True)
        state_path.unlink(missing_ok=True)
    try:
        work.folder.mkdir(parents=False, exist_ok=True)
    except OSError as e:
        raise DeepCanvasError(f"cannot create the folder '{work.folder}': {e.strerror or e}") from None
    io.save_bytes_atomic(json.dumps({"digest": digest, "frames": work.n}).encode(), state_path)
    return work.finished()


def _finish_work(work: _Work, fps: float, info: clip.ClipInfo, pl: clip.Plan, keep_frames: bool) -> list:
    frames = [work.frame(i) for i in range(work.n)]
    if work.kind == "mp4":
        clip.write_mp4(frames, work.output, fps, audio_from=info.source if info.has_audio else None,
                       start=pl.start, duration=pl.duration)
    elif work.kind == "gif":
        clip.write_gif(frames, work.output, fps)
    if work.kind != "folder" and not keep_frames:
        shutil.rmtree(work.folder, ignore_errors=True)
    return frames


def _to_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.uint8)).permute(2, 0, 1)[None].float() / 255


def _to_array(t: torch.Tensor) -> np.ndarray:
    return (t.detach().cpu()[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def _png(t: torch.Tensor) -> bytes:
    from PIL import Image

    buf = _io.BytesIO()
    Image.fromarray(_to_array(t)).save(buf, format="PNG")
    return buf.getvalue()


def _parse_offsets(long_term) -> list[int]:
    """[1] plus the long-term offsets, e.g. '2,4' -> [1, 2, 4]."""
    if long_term in (None, "", 0):
        return [1]
    items = long_term.replace(" ", "").split(",") if isinstance(long_term, str) else list(long_term)
    out = sorted({1} | {int(check_number("long_term offset", x, integer=True, positive=True, maximum=100))
                        for x in items if str(x)})
    return out


class _Flows:
    """Backward flows and consistency masks between input frames, computed once each."""

    def __init__(self, frames: list[np.ndarray], preset: str):
        self.frames, self.preset = frames, preset
        self._cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def get(self, t: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        """(flow t -> j, mask of frame t's pixels visible in frame j)."""
        from .. import flow

        if (t, j) not in self._cache:
            for key in [k for k in self._cache if k[0] < t]:  # frames are styled in order: earlier ones are done
                del self._cache[key]
            self._cache[(t, j)] = flow.flows_and_mask(self.frames[j], self.frames[t], self.preset)
        return self._cache[(t, j)]


def temporal_targets(t: int, offsets: list[int], flows: _Flows, outputs: dict[int, torch.Tensor]):
    """[(warped earlier output, mask)] for frame t: each pixel tied to the nearest earlier frame it was seen in.

    Ruder et al.'s long-term weights: c_j minus everything already claimed by a nearer frame, floored at 0.
    """
    from .. import flow

    out, claimed = [], None
    for j in offsets:
        if t - j < 0 or (t - j) not in outputs:
            continue
        fl, m = flows.get(t, t - j)
        m = torch.from_numpy(m)[None, None]
        eff = m if claimed is None else (m - claimed).clamp_min(0)
        claimed = m if claimed is None else torch.maximum(claimed, m)
        out.append((flow.warp(outputs[t - j], fl, WARP_MODE), eff))
    return out


# --------------------------------------------------------------------------- style


def _check_video_args(input, output, fps, start, duration, size, max_frames=None):
    """Probe the clip and the output; return (info, plan, work) or a one-line error, before any slow work."""
    info = clip.probe(input)
    size = None if size is None else longest_side(size)
    pl = clip.plan(info, fps=fps, start=start, duration=duration, size=size, max_frames=max_frames)
    work = _work(output, len(pl.times))
    return info, pl, work


def style_video_steps(
    input,
    styles,
    output,
    *,
    fps: float | None = None,
    start: float = 0.0,
    duration: float | None = None,
    size: int | None = 512,
    consistent: bool = True,
    temporal_weight: float = 5.0,
    long_term: str | None = None,
    later_iterations: int | None = None,
    flow_preset: FlowPreset = "medium",
    restart: bool = False,
    keep_frames: bool = False,
    chunk: int = 0,
    overlap: int = 8,
    ray: str | None = None,
    style_blend_weights: str | None = None,
    style_scale: float = 1.0,
    model: str | models.LayeredNet = "vgg16",
    weights: str | None = None,
    pooling: Pooling = "max",
    content_layers: str | None = None,
    style_layers: str | None = None,
    content_weight: float | None = None,
    style_weight: float | None = None,
    tv_weight: float | None = None,
    method: Literal["swd", "gram"] | None = None,
    style_strength: float = 0.5,
    lr: float | None = None,
    iterations: int | None = None,
    colors: Literal["style", "luma", "luminance", "histogram"] = "style",
    seed: int | None = 0,
    device: str = "auto",
    precision: Precision = "auto",
) -> Iterator[Progress]:
    """Style a clip frame by frame, each frame warm-started from the previous output moved by the optical flow.

    Yields a Progress per step over the whole clip; the last has ``done=True`` and a VideoResult as ``output``.

    Args:
        input: a video file (mp4, mov, webm, animated gif...) or a folder or glob of frames.
        styles: one or more style images (paths or PIL images).
        output: an .mp4 (H.264, with the input's audio), a .gif, or a folder of PNG frames (a name ending in /
            or without an extension).
        fps: frames per second to process and write (default: the clip's own; 25 for a folder of frames).
        start: where to start in the clip, in seconds.
        duration: how many seconds to process (default: to the end).
        size: longest side of the output frames in pixels (None keeps the clip's size).
        consistent: temporal consistency (warm start from the warped previous output and a temporal loss);
            off styles every frame on its own, as a still picture.
        temporal_weight: weight of the temporal loss (the masked difference to the warped previous output),
            against the style loss's 1.
        long_term: also tie each frame to these earlier frames, e.g. "2,4" (Ruder et al.'s long-term loss).
        later_iterations: iterations for every frame after the first (default: 0.3 x iterations).
        flow_preset: DIS optical flow preset: ultrafast, fast or medium.
        restart: discard the frames of an earlier, unfinished run in the output instead of resuming it.
        keep_frames: keep the PNG frames of an mp4 or gif output (in .NAME.deepcanvas-video/ next to it).
        chunk: with ray: frames per chunk styled in parallel (default: split the clip evenly over the workers).
        overlap: with ray: frames each chunk shares with the previous one, cross-faded when joined (the longer,
            the smoother the seam: two chunks' textures differ by about a frame-by-frame restyling, and the
            fade spreads that over overlap + 1 frame pairs).
        ray: style chunks of the clip in parallel on a Ray cluster (an address, or 'local').
        style_blend_weights: one weight per style image, e.g. "3,1" (default: equal).
        style_scale: style image size relative to the output size.
        model: network from `deepcanvas models`, or a network object (models.LayeredNet).
        weights: local checkpoint for the model's architecture.
        pooling: max or avg.
        content_layers: content layers with optional weights, e.g. "relu4_2".
        style_layers: style layers with optional weights, e.g. "relu1_1,relu2_1:2".
        content_weight: weight of the content loss (default from the preset).
        style_weight: weight of the style loss (default from the preset).
        tv_weight: weight of the total-variation loss (default from the preset).
        method: style loss: swd (sliced Wasserstein, the default) or gram.
        style_strength: from 0 (the photo) to 1 (the painting's texture alone); 0.5 keeps the weights.
        lr: learning rate (default from the preset).
        iterations: iterations for the first frame (and every frame when not consistent; default from the preset).
        colors: style (the painting's colours), luma (keep each frame's colours), luminance, or histogram
            (recolour the style images to the first frame's palette).
        seed: random seed (the same seed for every frame keeps the random projections the same).
        device: auto, cpu, cuda or mps.
        precision: auto (bf16 on CUDA, fp32 elsewhere), fp32, bf16 or fp16.
    """
    from .style import prepare_style

    # -- everything checked before any slow work --------------------------------------------------
    tw = check_number("temporal_weight", temporal_weight, minimum=0)
    offsets = _parse_offsets(long_term)
    chunk = int(check_number("chunk", chunk, integer=True, minimum=0))
    overlap = int(check_number("overlap", overlap, integer=True, minimum=0, maximum=100))
    from ..signature import check_choice

    check_choice("flow_preset", flow_preset, FlowPreset)
    if isinstance(styles, (str, os.PathLike)) or hasattr(styles, "mode"):
        styles = [styles]
    styles = list(styles)
    if not styles:
        raise DeepCanvasError("no style image given")
    for s in styles:
        io.load_image(s, what="style image")
    info, pl, work = _check_video_args(input, output, fps, start, duration, size,
                                       max_frames=_limits().MAX_FRAMES)
    style_kw = dict(style_blend_weights=style_blend_weights, size=max(pl.hw), style_scale=style_scale, model=model,
                    weights=weights, pooling=pooling, content_layers=content_layers, style_layers=style_layers,
                    content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight, method=method,
                    style_strength=style_strength, lr=lr, iterations=iterations, colors=colors, seed=seed,
                    device=device, precision=precision)
    settings = {k: v for k, v in style_kw.items() if k != "model" or isinstance(v, str)}
    settings.update(times=pl.times, hw=pl.hw, consistent=consistent, styles=_image_digest(
                        [io.load_image(s, what="style image") for s in styles]), input=_input_identity(info),
                    **({"ray": {"chunk": chunk, "overlap": overlap}} if ray else {}))
    if consistent:  # what only a consistent run depends on
        settings.update(temporal_weight=tw, offsets=offsets, later_iterations=later_iterations,
                        flow_preset=flow_preset)
    digest = _digest(settings)
    if later_iterations is not None:
        later_iterations = int(check_number("later_iterations", later_iterations, integer=True, positive=True))
    if ray:
        _check_ray()
    _check_state(work, digest, restart)
    frames = clip.read_frames(info, pl)  # decoded once, at the working size
    from PIL import Image

    plan = prepare_style(Image.fromarray(frames[0]), styles, **style_kw)
    done = _begin_work(work, digest, restart)
    total = 0
    later = later_iterations or max(1, round(LATER_SHARE * plan.iterations))
    result = VideoResult(work.output, work.kind, [work.frame(i) for i in range(work.n)], pl.fps, (pl.hw[1], pl.hw[0]))
    if done < work.n:
        if ray:
            total = yield from _relay(_style_on_ray(ray, frames, styles, style_kw, done, work, chunk, overlap,
                                                    dict(consistent=consistent, tw=tw, offsets=offsets, later=later,
                                                         preset=flow_preset), result))
        else:
            outputs = {i: _to_tensor(np.asarray(io.load_image(work.frame(i), what="frame")))
                       for i in range(max(0, done - max(offsets)), done)}

            def write(i: int, img: torch.Tensor):
                io.save_bytes_atomic(_png(img), work.frame(i))

            total = yield from _relay(style_frames(plan, frames, range(done, work.n), outputs, write,
                                                   consistent=consistent, tw=tw, offsets=offsets, later=later,
                                                   preset=flow_preset, result=result))
    yield _final(work, info, pl, keep_frames, total, result)


def _final(work: _Work, info, pl, keep_frames: bool, total: int, result: VideoResult) -> Progress:
    """Encode the finished frames (MP4/GIF) and make the run's last Progress."""
    last = _to_tensor(np.asarray(io.load_image(work.frame(work.n - 1), what="frame")))
    _finish_work(work, pl.fps, info, pl, keep_frames)
    total = max(1, total)
    return Progress(total, total, float("nan"), {}, "done", last, done=True, output=result)


def _relay(gen: Iterator[Progress]):
    """Pass on ``gen``'s steps but its final ``done`` one; return the run's total.

    Ctrl-C thrown in here (by render.drive) is thrown on into ``gen``, so that render() turns it into
    Interrupted; the frames finished so far are already on disk.
    """
    total = 0
    try:
        p = next(gen)
        while True:
            if not p.done:
                total = p.total
                try:
                    yield p
                except KeyboardInterrupt as e:
                    p = gen.throw(e)
                    continue
            p = next(gen)
    except StopIteration:
        return total


def _limits():
    from .. import limits

    return limits


def style_frames(plan, frames: list[np.ndarray], todo, outputs: dict[int, torch.Tensor],
                 write: Callable[[int, torch.Tensor], None], *, consistent: bool, tw: float, offsets: list[int],
                 later: int, preset: str, result: VideoResult | None = None,
                 label: str = "") -> Iterator[Progress]:
    """Style ``frames[i]`` for i in ``todo`` (consecutive), one stage each, through render().

    ``outputs`` holds earlier finished outputs (for the warm start and the temporal loss) and gets each new
    one; ``write(i, img)`` stores a finished frame. The first frame of ``todo`` without a previous output
    gets the full ``plan.iterations``; the others ``later`` when consistent.
    """
    todo = list(todo)
    flows = _Flows(frames, preset)
    n = len(frames)
    side = max(frames[0].shape[:2])
    steps = {i: plan.iterations if (not consistent or (i - 1) not in outputs and i == todo[0]) else later
             for i in todo}
    clock = {"t": time.perf_counter()}

    def frame_stage(i: int):
        def build(prev: torch.Tensor | None) -> Stage:
            content = plan.work(_to_tensor(frames[i]))
            extra = None
            start_img = content
            if consistent and (i - 1) in outputs:
                targets = temporal_targets(i, offsets, flows, outputs)
                warped, mask = targets[0]
                start_img = mask * warped + (1 - mask) * content  # the new frame where the warp is not trusted
                if tw > 0:
                    mode = plan.setup.mode

                    def extra(box, targets=targets):
                        from .style import pad_image

                        obj = None
                        for tgt, m in targets:
                            term = Temporal(pad_image(tgt, box).to(plan.dev),
                                            torch.nn.functional.pad(m, (box[2], box[3], box[0], box[1])).to(plan.dev),
                                            mode)
                            obj = term if obj is None else obj + term
                        return tw * obj

            def after(img: torch.Tensor, i=i):
                outputs[i] = img
                for k in [k for k in outputs if k < i - max(offsets)]:
                    del outputs[k]
                write(i, plan.finish(img, _to_tensor(frames[i])))
                now = time.perf_counter()
                if result is not None:
                    result.seconds_per_frame.append(now - clock["t"])
                clock["t"] = now

            # A warm-started frame: the step size decays along half a cosine, so that the last steps settle
            # on the optimum instead of jittering around it by Adam's full step (which is flicker).
            warm = consistent and (i - 1) in outputs
            return plan.stage(content, start_img, side, steps[i], name=f"{label}frame {i + 1}/{n}", extra=extra,
                              after=after, lr_schedule=cosine_decay(LR_FLOOR) if warm and LR_FLOOR < 1 else None)
        return build

    yield from render(plan.net, [frame_stage(i) for i in todo], total=sum(steps.values()), precision=plan.precision,
                      rng=plan.rng)


def style_video(input, styles, output, *, callback: Callable[[Progress], None] | None = None,
                **kwargs) -> VideoResult:
    """Style a clip and write it; return what was written. See :func:`style_video_steps`."""
    return drive(style_video_steps(input, styles, output, **kwargs), callback).output


# --------------------------------------------------------------------------- Ray: overlapping chunks


def _check_ray():
    try:
        import ray  # noqa: F401
    except ImportError:
        raise DeepCanvasError("--ray needs Ray: pip install 'deepcanvas[ray]'") from None


def chunk_ranges(n: int, chunk: int, overlap: int) -> list[tuple[int, int]]:
    """[(first, end)] per chunk: cores of ``chunk`` frames, each chunk starting ``overlap`` frames early."""
    chunk = max(1, chunk)
    out = []
    a = 0
    while a < n:
        b = min(n, a + chunk)
        out.append((max(0, a - overlap), b))
        a = b
    return out


def join_chunks(ranges: list[tuple[int, int]], outputs: list[list[np.ndarray]], n: int) -> list[np.ndarray]:
    """One frame per index from overlapping chunks: in an overlap, a cross-fade from the earlier chunk to the later.

    Frame ``a - overlap + j`` of an overlap of k frames takes (j + 1) / (k + 1) of the later chunk, so the
    change between the chunks' stylisations is spread over k + 1 frame pairs instead of landing on one.
    """
    joined: list[np.ndarray | None] = [None] * n
    for (a, b), outs in zip(ranges, outputs):
        for idx, img in zip(range(a, b), outs):
            if joined[idx] is None:
                joined[idx] = img.astype(np.float32)
                continue
            # the overlap: previous chunk's frame already there
            prev_end = max(e for (s, e) in ranges if s < a) if any(s < a for s, _ in ranges) else a
            k = prev_end - a
            w = (idx - a + 1) / (k + 1)
            joined[idx] = (1 - w) * joined[idx] + w * img.astype(np.float32)
    return [np.clip(j + 0.5, 0, 255).astype(np.uint8) for j in joined]


class _ChunkWorker:
    """A Ray actor: loads the network once, styles the chunks it is sent, returns PNG bytes per frame."""

    def __init__(self, style_bytes: list[bytes], style_kw: dict, opts: dict):
        from PIL import Image

        self.styles = [Image.open(_io.BytesIO(b)).convert("RGB") for b in style_bytes]
        self.style_kw, self.opts = style_kw, opts

    def run(self, first: int, frames: list[np.ndarray]) -> tuple[int, list[bytes]]:
        from PIL import Image

        from .style import prepare_style

        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
        plan = prepare_style(Image.fromarray(frames[0]), self.styles, **self.style_kw)
        out: dict[int, bytes] = {}
        o = self.opts
        drive(style_frames(plan, frames, range(len(frames)), {}, lambda i, img: out.__setitem__(i, _png(img)),
                           consistent=o["consistent"], tw=o["tw"], offsets=o["offsets"], later=o["later"],
                           preset=o["preset"]))
        return first, [out[i] for i in range(len(frames))]


def _style_on_ray(address, frames, styles, style_kw, done, work: _Work, chunk, overlap, opts,
                  result: VideoResult) -> Iterator[Progress]:
    import ray
    from PIL import Image

    style_bytes = []
    for s in styles:
        buf = _io.BytesIO()
        io.load_image(s, what="style image").save(buf, format="PNG")
        style_bytes.append(buf.getvalue())
    started = False
    if not ray.is_initialized():
        if address == "local":  # Ray nices its local workers to 15; here they do the work (a caller may override)
            os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(address=None if address == "local" else address, include_dashboard=False, log_to_driver=False,
                 ignore_reinit_error=True)
        started = True
    try:
        cpus = int(ray.available_resources().get("CPU", 1))
        n_workers = max(1, cpus)
        n = len(frames)
        # Resume: chunks wholly finished are skipped; the rest restart from their first frame.
        if not chunk:
            chunk = max(overlap + 2, -(-(n - done) // n_workers))
        ranges = [(a, b) for a, b in chunk_ranges(n, chunk, overlap) if b > done]
        remote = ray.remote(num_cpus=1)(_ChunkWorker)
        from ray.util import ActorPool

        pool = ActorPool([remote.remote(style_bytes, style_kw, opts)
                          for _ in range(min(n_workers, len(ranges)))])
        t0 = time.perf_counter()
        results: dict[int, list[np.ndarray]] = {}
        for first, pngs in pool.map_unordered(lambda a, r: a.run.remote(r[0], frames[r[0]:r[1]]), ranges):
            results[first] = [np.asarray(Image.open(_io.BytesIO(b)).convert("RGB")) for b in pngs]
            yield Progress(len(results), len(ranges), float("nan"), {}, f"chunk {len(results)}/{len(ranges)} [ray]",
                           _to_tensor(results[first][-1]), time.perf_counter() - t0)
        # A chunk's first frame is already written when the run resumed inside it: keep the written ones.
        outs = [results[a] for a, _ in ranges]
        starts = [a for a, _ in ranges]
        joined = join_chunks(ranges, outs, n)
        for i in range(min(starts), n):
            if i >= done:
                io.save_bytes_atomic(_png(_to_tensor(joined[i])), work.frame(i))
        result.seams = [b for _, b in ranges[:-1]]  # where each later chunk takes over alone
    finally:
        if started:
            ray.shutdown()


# --------------------------------------------------------------------------- DeepDream


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
    flow_preset: FlowPreset = "medium",
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

    from .dream import _setup, octave_sizes, octave_stages

    blend = check_number("blend", blend, minimum=0, maximum=1)
    from ..signature import check_choice

    check_choice("flow_preset", flow_preset, FlowPreset)
    if later_iterations is not None:
        later_iterations = int(check_number("later_iterations", later_iterations, integer=True, positive=True))
    info, pl, work = _check_video_args(input, output, fps, start, duration, size,
                                       max_frames=_limits().MAX_FRAMES)
    kw = dict(layers=layers, channels=channels, octaves=octaves, octave_scale=octave_scale, iterations=iterations,
              lr=lr, jitter=jitter, size=None, guide=guide, tile=tile, model=model, weights=weights, pooling=pooling,
              seed=seed, device=device, precision=precision)
    settings = {k: v for k, v in kw.items() if k != "model" or isinstance(v, str)}
    settings.update(times=pl.times, hw=pl.hw, consistent=consistent, blend=blend, later=later_iterations,
                    flow_preset=flow_preset, input=_input_identity(info), kind="dream")
    digest = _digest(settings)
    _check_state(work, digest, restart)
    frames = clip.read_frames(info, pl)
    s, _ = _setup(Image.fromarray(frames[0]), **kw)
    done = _begin_work(work, digest, restart)
    total = 0
    result = VideoResult(work.output, work.kind, [work.frame(i) for i in range(work.n)], pl.fps, (pl.hw[1], pl.hw[0]))
    if done < work.n:
        flows = _Flows(frames, flow_preset)
        outputs = {i: _to_tensor(np.asarray(io.load_image(work.frame(i), what="frame")))
                   for i in range(max(0, done - 1), done)}
        n_oct = len(octave_sizes(*pl.hw, s.octaves, s.octave_scale))
        later = later_iterations or max(1, round(DREAM_LATER_SHARE * s.iterations))
        clock = {"t": time.perf_counter()}
        stages, total = [], 0
        for i in range(done, work.n):
            def base(prev, i=i):
                from .. import flow

                cur = _to_tensor(frames[i])
                if not consistent or (i - 1) not in outputs:
                    return cur
                fl, m = flows.get(i, i - 1)
                m = torch.from_numpy(m)[None, None]
                warped = flow.warp(outputs[i - 1], fl, WARP_MODE)
                return (m * (blend * warped + (1 - blend) * cur) + (1 - m) * cur).clamp(0, 1)

            def after(img: torch.Tensor, i=i):
                outputs[i] = img.cpu()
                outputs.pop(i - 2, None)
                io.save_bytes_atomic(_png(img), work.frame(i))
                now = time.perf_counter()
                result.seconds_per_frame.append(now - clock["t"])
                clock["t"] = now

            it = s.iterations if (i == done or not consistent) else later
            st = octave_stages(s, base, size=pl.hw, label=f"frame {i + 1}/{work.n}, ", after=after)
            if it != s.iterations:
                st = [_with_steps(b, it) for b in st]
            stages += st
            total += n_oct * it
        yield from _relay(render(s.net, stages, total=total, precision=s.precision,
                                 rng=random.Random(s.rng.getrandbits(32))))
    yield _final(work, info, pl, keep_frames, total, result)


def _with_steps(build, steps: int):
    def b(prev):
        st = build(prev)
        st.steps = steps
        return st
    return b


def dream_video(input, output, *, callback: Callable[[Progress], None] | None = None, **kwargs) -> VideoResult:
    """DeepDream a clip and write it; return what was written. See :func:`dream_video_steps`."""
    return drive(dream_video_steps(input, output, **kwargs), callback).output
