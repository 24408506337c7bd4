"""DeepDream (Mordvintsev, Olah & Tyka 2015), the way Google's notebook does it.

Configuration of the one loop: pixels initialised from the photo, the layer's
energy ½‖a‖² (or a guide image's features) as the objective, the normalised
gradient step ``lr * g / mean|g|``, a random roll of the image before every
step (undone on the gradient) and pixels clipped to the valid range.

Around it, the notebook's octave schedule: the photo is shrunk ``octaves - 1``
times by ``octave_scale``; the smallest copy is dreamt first, and what the
dream added to it (the *detail*) is upscaled and added to the next larger copy,
and so on up to the full size. Images larger than ``tile`` pixels get their
gradients tile by tile (the renderer's tiled gradients, on a grid that moves at
random every step), so memory is bounded by the tile, not by the image.

:func:`dream_zoom` repeats a (shorter) dream on a slightly zoomed-in copy of
its previous frame: the classic endless zoom.
"""

from __future__ import annotations

import inspect
import os
import pathlib
import random
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from .. import io, models
from .. import transforms as T
from ..errors import DeepCanvasError, check_number
from ..objectives import GuideMatch, LayerEnergy, Objective, Sum
from ..param import PixelParam, resize
from ..render import Interrupted, Progress, Renderer, drive, resolve_precision
from .common import check_layer_names, fit_size, longest_side, parse_layers, seed_everything

#: Octaves whose shorter side would fall below this many pixels are left out.
MIN_OCTAVE_SIDE = 32
#: Context around each tile's core, in pixels (about half of relu4_3's receptive field and more).
TILE_MARGIN = 64
#: Smallest tile accepted: the core must stay larger than the margins around it.
MIN_TILE = 4 * TILE_MARGIN

#: Step sizes chosen by eye at 512 px with the default schedule: VGG dreams burn out (saturated
#: colour fringes, dotted textures) at steps EfficientNet's dreams need to show their animals.
DEFAULT_LR = 0.01
VGG_LR = 0.004


# --------------------------------------------------------------------------- pieces


def octave_sizes(height: int, width: int, octaves: int, octave_scale: float,
                 min_side: int = MIN_OCTAVE_SIDE) -> list[tuple[int, int]]:
    """The pyramid's (height, width) per octave, smallest first (the order they are dreamt in).

    The last entry is the full size; each earlier one is ``octave_scale`` times
    smaller than the next. Octaves whose shorter side would drop below
    ``min_side`` are left out (the full size is always kept).
    """
    sizes = [(height, width)]
    for k in range(1, octaves):
        s = octave_scale ** k
        h, w = max(1, round(height / s)), max(1, round(width / s))
        if min(h, w) < min_side:
            break
        sizes.append((h, w))
    return sizes[::-1]


def upscale_detail(detail: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a detail layer (any sign, so no clamping), as the notebook does."""
    if tuple(detail.shape[-2:]) == tuple(size):
        return detail
    return F.interpolate(detail, size=size, mode="bilinear", align_corners=False)


def zoom_in(img: torch.Tensor, zoom: float) -> torch.Tensor:
    """Centre crop of 1/``zoom`` of the image, resized back to the full size (sub-pixel exact)."""
    if zoom == 1:
        return img
    n = img.shape[0]
    theta = torch.tensor([[1 / zoom, 0.0, 0.0], [0.0, 1 / zoom, 0.0]], dtype=img.dtype, device=img.device)
    grid = F.affine_grid(theta.expand(n, 2, 3), list(img.shape), align_corners=False)
    return F.grid_sample(img, grid, mode="bicubic", padding_mode="border", align_corners=False).clamp(0, 1)


@torch.no_grad()
def roll_pixels(param: PixelParam, dy: int, dx: int) -> None:
    """Roll ``param``'s pixels in place (the notebook's jitter: roll, step, roll back)."""
    if dy or dx:
        param.pixels.copy_(T.roll(param.pixels, dy, dx))


def dream_objective(layers: dict[str, float], channels: list[int] | None = None,
                    guide_features: dict[str, torch.Tensor] | None = None,
                    scales: dict[str, float] | None = None) -> Objective:
    """Sum of ``weight / scale * LayerEnergy(layer, channels)`` over the layers.

    With ``guide_features`` ({layer: features of the guide image}) each term is
    a :class:`GuideMatch` instead. ``scales`` divides each layer's term (see
    :func:`layer_scales`) so that layer weights mean the same on every layer.
    """
    obj: Objective = Sum([])
    for layer, w in layers.items():
        if w <= 0:
            continue
        term = GuideMatch(layer, guide_features[layer]) if guide_features is not None else LayerEnergy(layer, channels)
        obj = obj + (w / (scales or {}).get(layer, 1.0)) * term
    if not obj.terms():
        raise DeepCanvasError("all dream layer weights are zero")
    return obj


@torch.no_grad()
def layer_scales(net, img: torch.Tensor, layers, channels: list[int] | None = None,
                 guide_features: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
    """Each layer's typical objective size on ``img``, to divide that layer's term by.

    For energies, the mean squared activation (of ``channels``); for a guide,
    the mean squared norm of the guide's feature vectors.
    """
    out = {}
    if guide_features is not None:
        for layer in layers:
            g = guide_features[layer].float()
            out[layer] = float(g.pow(2).sum(1).mean().clamp_min(1e-12))
        return out
    acts = net(img, list(layers))
    for layer in layers:
        a = acts[layer].float()
        if channels is not None:
            a = a[:, channels]
        out[layer] = float(a.pow(2).mean().clamp_min(1e-12))
    return out


# --------------------------------------------------------------------------- set-up


@dataclass
class _Setup:
    net: torch.nn.Module
    dev: torch.device
    layers: dict[str, float]
    channels: list[int] | None
    guide: torch.Tensor | None
    octaves: int
    octave_scale: float
    iterations: int
    lr: float
    jitter: int
    size: int | None
    tile: int
    precision: str
    rng: random.Random
    margin: int = TILE_MARGIN
    scales: dict[str, float] | None = None


def _parse_channels(channels) -> list[int] | None:
    if channels is None or channels == "":
        return None
    if isinstance(channels, str):
        items = [c for c in channels.replace(" ", "").split(",") if c]
    elif isinstance(channels, int):
        items = [channels]
    else:
        items = list(channels)
    out = [int(check_number("channel", c, integer=True, minimum=0)) for c in items]
    if not out:
        raise DeepCanvasError("no channels given")
    return out


def _setup(image, *, layers, channels, octaves, octave_scale, iterations, lr, jitter, size, guide, tile, model,
           weights, pooling, seed, device, precision) -> tuple[_Setup, torch.Tensor]:
    """Check every argument, load the images and the network; fail before any slow work.

    Returns the set-up and the photo as a (1, 3, H, W) tensor at ``size``.
    """
    octaves = int(check_number("octaves", octaves, integer=True, positive=True))
    octave_scale = check_number("octave_scale", octave_scale)
    if octave_scale <= 1:
        raise DeepCanvasError(f"octave_scale must be greater than 1, got {octave_scale!r}")
    iterations = int(check_number("iterations", iterations, integer=True, positive=True))
    if lr is None:
        lr = VGG_LR if model.startswith("vgg") else DEFAULT_LR
    lr = check_number("lr", lr, positive=True)
    jitter = int(check_number("jitter", jitter, integer=True, minimum=0))
    size = None if size is None else longest_side(size)
    tile = int(check_number("tile", tile, integer=True, minimum=MIN_TILE))
    chans = _parse_channels(channels)
    if guide is not None and chans is not None:
        raise DeepCanvasError("channels cannot be combined with a guide image (the guide picks the features)")
    rng = seed_everything(seed)
    dev = models.resolve_device(device)
    resolve_precision(dev, precision)  # validates the name
    info = models.get_info(model)
    spec = layers or info.defaults.get("dream_layers")
    if not spec:
        raise DeepCanvasError(f"model {model} has no default dream layers; give layers")
    layer_w = parse_layers(spec, "dream layers")
    if not any(w > 0 for w in layer_w.values()):
        raise DeepCanvasError("all dream layer weights are zero")
    check_layer_names(info, list(layer_w))
    base = _load_base(image, size)
    guide_img = io.image_to_tensor(io.load_image(guide, what="guide image")) if guide is not None else None
    net = models.load_model(model, weights=weights, pooling=pooling, device=dev)

    # A dry run at a tiny size tells each layer's channel count and shape.
    with torch.no_grad():
        probe = net(torch.full((1, 3, 64, 64), 0.5, device=dev), list(layer_w))
    for layer, a in probe.items():
        if chans is not None:
            bad = [c for c in chans if c >= a.shape[1]]
            if bad:
                raise DeepCanvasError(
                    f"channel {bad[0]} is out of range for layer {layer!r}, which has channels 0..{a.shape[1] - 1}"
                )
        if guide_img is not None and a.dim() != 4:
            raise DeepCanvasError(f"a guide needs spatial layers; {layer!r} has no positions")
    return _Setup(net, dev, layer_w, chans, guide_img, octaves, octave_scale, iterations, lr, jitter, size, tile,
                  precision, rng), base


@torch.no_grad()
def _guide_features(s: _Setup, side: int) -> dict[str, torch.Tensor]:
    """The guide's features, at the octave's size but no larger than a tile (memory)."""
    g = s.guide
    hw = fit_size(*g.shape[-2:], max(MIN_OCTAVE_SIDE, min(side, s.tile)))
    acts = s.net(resize(g, hw).to(s.dev), list(s.layers))
    return {k: v.float() for k, v in acts.items()}


def _scales(s: _Setup, base: torch.Tensor) -> dict[str, float] | None:
    """Per-layer normalisers, only needed when several layers are mixed."""
    if len([w for w in s.layers.values() if w > 0]) < 2:
        return None
    probe = resize(base, fit_size(*base.shape[-2:], min(max(base.shape[-2:]), s.tile))).to(s.dev)
    guide = _guide_features(s, s.tile) if s.guide is not None else None
    return layer_scales(s.net, probe, list(s.layers), s.channels, guide)


def _octaves(s: _Setup, base: torch.Tensor, *, start: int = 0, total: int | None = None, stage: str = "",
             t0: float | None = None):
    """Dream ``base`` (1, 3, H, W) at its own size. Yields Progress; returns the result (CPU)."""
    t0 = t0 or time.perf_counter()
    base = base.cpu()
    sizes = octave_sizes(*base.shape[-2:], s.octaves, s.octave_scale)
    total = total or len(sizes) * s.iterations
    if s.scales is None:
        s.scales = _scales(s, base)
    detail = torch.zeros(1, 3, *sizes[0])
    done = start
    for k, hw in enumerate(sizes):
        octave_base = resize(base, hw)
        detail = upscale_detail(detail, hw)
        guide = _guide_features(s, max(hw)) if s.guide is not None else None
        objective = dream_objective(s.layers, s.channels, guide, s.scales)
        param = PixelParam((octave_base + detail).to(s.dev))
        # The renderer gets its own generator, so the jitter does not depend on whether it tiles.
        renderer = Renderer(s.net, objective, param, optimizer="normalized", lr=s.lr, keep_best=False,
                            tile=s.tile, tile_margin=s.margin, precision=s.precision,
                            rng=random.Random(s.rng.getrandbits(32)))
        label = f"{stage}octave {k + 1}/{len(sizes)} ({max(hw)} px)"
        dy = dx = 0
        try:
            for i in range(s.iterations):
                # Jitter: roll the image, take the step, roll it back. The tiled path also moves its
                # tile grid at random, but only in whole strides, so the roll is still needed.
                dy, dx = s.rng.randint(-s.jitter, s.jitter), s.rng.randint(-s.jitter, s.jitter)
                roll_pixels(param, dy, dx)
                p = next(renderer.run(1, start=done + i, total=total, stage=label, t0=t0))
                roll_pixels(param, -dy, -dx)
                dy = dx = 0
                yield p  # p.tensor shows the pixels, rolled back
        except KeyboardInterrupt:  # from the step, or thrown in at our yield by render.drive
            roll_pixels(param, -dy, -dx)
            # Best so far, at the full size: the full-size photo plus the detail dreamt up to now.
            cur = renderer.current().cpu() - octave_base
            img = (base + upscale_detail(cur, tuple(base.shape[-2:]))).clamp(0, 1)
            raise Interrupted(io.tensor_to_image(img)) from None
        done += s.iterations
        with torch.no_grad():
            result = param.image().detach().cpu()
        detail = result - octave_base
    return result, renderer.last_loss, dict(renderer.last_parts)


def _load_base(image, size: int | None) -> torch.Tensor:
    img = io.image_to_tensor(io.load_image(image, what="image"))
    if size is not None:
        img = resize(img, fit_size(*img.shape[-2:], size))
    return img


# --------------------------------------------------------------------------- DeepDream


def dream_steps(
    image,
    *,
    layers: str | None = None,
    channels: str | None = None,
    octaves: int = 4,
    octave_scale: float = 1.4,
    iterations: int = 10,
    lr: float | None = None,
    jitter: int = 32,
    size: int | None = 512,
    guide: str | None = None,
    tile: int = 512,
    model: str = "efficientnet-lite0",
    weights: str | None = None,
    pooling: str = "max",
    seed: int | None = None,
    device: str = "auto",
    precision: str = "auto",
) -> Iterator[Progress]:
    """Yield a Progress after every step; the last one has ``done=True`` and the dream.

    Args:
        image: the photo to dream on (path or PIL image).
        layers: layers whose activations to amplify, with optional weights, e.g. "block10" or
            "block6:1,block10:0.5" (default: the model's dream layers: block10, or relu4_3 on VGGs).
        channels: amplify only these channels of the layers, e.g. "12,40".
        octaves: number of scales, each octave_scale times smaller than the next.
        octave_scale: size ratio between neighbouring octaves (greater than 1).
        iterations: gradient steps per octave.
        lr: step size in pixel values (0..1) on the normalised gradient (default: 0.01; 0.004 for VGGs).
        jitter: largest random shift of the image before each step, in pixels.
        size: longest side of the output in pixels (None keeps the photo's own size).
        guide: image whose features to dream toward, instead of amplifying the photo's own.
        tile: process images larger than this many pixels in tiles of this size (bounds memory; at least 256).
        model: network from `deepcanvas models`.
        weights: local checkpoint for the model's architecture.
        pooling: max or avg.
        seed: random seed for reproducible results.
        device: auto, cpu, cuda or mps.
        precision: auto (bf16 on CUDA, fp32 elsewhere), fp32, bf16 or fp16.
    """
    s, base = _setup(image, layers=layers, channels=channels, octaves=octaves, octave_scale=octave_scale,
                     iterations=iterations, lr=lr, jitter=jitter, size=size, guide=guide, tile=tile, model=model,
                     weights=weights, pooling=pooling, seed=seed, device=device, precision=precision)
    t0 = time.perf_counter()
    total = len(octave_sizes(*base.shape[-2:], s.octaves, s.octave_scale)) * s.iterations
    result, loss, parts = yield from _octaves(s, base, total=total, t0=t0)
    yield Progress(total, total, loss, parts, "done", result, time.perf_counter() - t0, done=True)


def dream(image, *, callback: Callable[[Progress], None] | None = None, **kwargs):
    """Run DeepDream and return the result as a PIL image. See :func:`dream_steps`."""
    return drive(dream_steps(image, **kwargs), callback).image


# --------------------------------------------------------------------------- zoom


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


def _check_zoom_args(frames, zoom, fps):
    frames = int(check_number("frames", frames, integer=True, positive=True))
    zoom = check_number("zoom", zoom, minimum=1)
    fps = check_number("fps", fps, positive=True)
    return frames, zoom, fps


def dream_zoom_steps(image, output, *, frames: int = 30, zoom: float = 1.05, octaves: int = 2,
                     iterations: int = 10, fps: float = 10.0, **dream_kw):
    """Dream, zoom in, dream again: yield a Progress per step, then one ``done=True`` with the last frame.

    Frames are written as they are finished; the GIF (and an MP4 when
    imageio-ffmpeg is installed) at the end. The generator's return value
    is a :class:`ZoomResult`.

    Args:
        image: the photo to start from (path or PIL image).
        output: directory for frame_0001.png... and dream.gif, or a prefix such as out/zoom.
        frames: number of frames.
        zoom: zoom factor from one frame to the next (1 keeps the frame still).
        octaves: octaves per frame (the previous frame already holds the large patterns).
        iterations: gradient steps per octave and frame.
        fps: frames per second of the GIF and MP4.
        dream_kw: any other argument of :func:`dream_steps` (layers, lr, size, guide, model...).
    """
    frames, zoom, fps = _check_zoom_args(frames, zoom, fps)
    unknown = sorted(set(dream_kw) - set(_DREAM_DEFAULTS))
    if unknown:
        raise DeepCanvasError(f"unknown dream argument {unknown[0]!r}; valid: {', '.join(_DREAM_DEFAULTS)}")
    frame_paths, gif_path, mp4_path = zoom_paths(output, frames)
    folder = gif_path.parent
    # "out/" names a directory, made (once everything else checks out) if its parent exists.
    make_folder = not folder.exists() and os.fspath(output).endswith(("/", os.sep))
    io.check_output_path(folder.parent / "probe.gif" if make_folder else gif_path)
    s, frame = _setup(image, **{**_DREAM_DEFAULTS, **dream_kw, "octaves": octaves, "iterations": iterations})
    if make_folder:
        try:
            folder.mkdir(exist_ok=True)
        except OSError as e:
            raise DeepCanvasError(f"cannot create the directory '{folder}': {e.strerror or e}") from None
    n_oct = len(octave_sizes(*frame.shape[-2:], s.octaves, s.octave_scale))
    per_frame = n_oct * s.iterations
    total = frames * per_frame
    t0 = time.perf_counter()
    images = []
    loss, parts = 0.0, {}
    for i in range(frames):
        if i > 0:
            frame = zoom_in(frame, zoom)
        frame, loss, parts = yield from _octaves(s, frame, start=i * per_frame, total=total,
                                                 stage=f"frame {i + 1}/{frames}, ", t0=t0)
        img = io.tensor_to_image(frame)
        io.save_image(img, frame_paths[i])
        images.append(img)
    write_gif(images, gif_path, fps)
    mp4 = write_mp4(images, mp4_path, fps)
    yield Progress(total, total, loss, parts, "done", frame, time.perf_counter() - t0, done=True)
    return ZoomResult(frame_paths, gif_path, mp4)


def dream_zoom(image, output, *, frames: int = 30, zoom: float = 1.05, octaves: int = 2, iterations: int = 10,
               fps: float = 10.0, callback: Callable[[Progress], None] | None = None, **dream_kw) -> ZoomResult:
    """Write a zooming dream sequence and return what was written. See :func:`dream_zoom_steps`."""
    gen = dream_zoom_steps(image, output, frames=frames, zoom=zoom, octaves=octaves, iterations=iterations,
                           fps=fps, **dream_kw)
    while True:
        try:
            p = next(gen)
        except StopIteration as stop:
            return stop.value
        if callback is not None:
            try:
                callback(p)
            except KeyboardInterrupt as e:  # as render.drive: let the generator end it with the image
                if isinstance(e, Interrupted):
                    raise
                gen.throw(KeyboardInterrupt())
                raise


# dream_steps' keyword arguments and their defaults (what dream_zoom passes on).
_DREAM_DEFAULTS = {
    name: p.default for name, p in inspect.signature(dream_steps).parameters.items()
    if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in ("octaves", "iterations")
}
