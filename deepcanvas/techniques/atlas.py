"""A layer atlas: what each chosen layer's channels respond to, one sheet per network.

For every layer, the feature visualization of N channels (the first N, the ones
named, or, with ``photo``, the N that fire most on that photo) as one row of a
sheet. A configuration of the one loop: each layer is one stage whose batch holds
the N channels (item i ascends the mean of channel i), in lucid's decorrelated
Fourier parameterisation with random pad / jitter / scale / rotate each step.

Each channel's picture depends only on (network, layer, channel, size, seed,
iterations, lr): its spectrum starts from noise drawn from a generator seeded by
those, and the transforms' random sequence is the seed's. So tiles are cached
one per channel on disk (``<cache>/atlas/``) and a sheet with one more layer or
channel renders only what is new.

With ``photo``, each tile is the channel's visualization beside the patch of the
photo around the position where the channel fires most (about three cells of the
layer's grid wide).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from pathlib import Path
from typing import Callable, Iterator, Literal

import torch
from PIL import Image

from .. import imaging, io, models
from .. import transforms as T
from ..errors import DeepCanvasError
from ..limits import check_number
from ..models.layered import probe_layers
from ..objectives import Channel, Sum
from ..param import FourierParam
from ..render import Progress, Stage, drive, render
from ..sheet import contact_sheet
from .common import Precision, begin, check_layer_names, longest_side, seed_everything

VERSION = 2  # part of every cache key: bump when the recipe changes
#: Atlas memory: the estimated peak of one layer's batch (activations kept for the backward pass) may not pass this.
MEMORY_LIMIT_GIB = 4.0
MAX_CHANNELS = 1024  # per layer
PRE_RELU_WEIGHT = 0.1

Order = Literal["first", "photo"]


# -- arguments ---------------------------------------------------------------------------------------
def _layer_list(layers, info) -> list[str]:
    if layers in (None, ""):
        spec = info.defaults.get("atlas_layers") or info.defaults.get("style_layers")
        if not spec:
            raise DeepCanvasError(f"model {info.name} has no default atlas layers; give them with layers")
        layers = spec
    out = [s.strip() for s in layers.split(",") if s.strip()] if isinstance(layers, str) else [str(s) for s in layers]
    if not out:
        raise DeepCanvasError("no layer given")
    seen: list[str] = []
    for name in out:
        if name not in seen:
            seen.append(name)
    return seen


def parse_channels(spec) -> tuple[int | None, list[int] | None]:
    """'8' or 8 -> (8, None): the first (or most active) 8; '3,7,9' or [3, 7, 9] -> (None, [3, 7, 9])."""
    if isinstance(spec, bool):
        raise DeepCanvasError(f"channels must be a count or a list of channel numbers, got {spec!r}")
    if isinstance(spec, int):
        return int(check_number("channels", spec, integer=True, positive=True, maximum=MAX_CHANNELS)), None
    if isinstance(spec, str):
        parts = [p.strip() for p in spec.split(",") if p.strip()]
        if not parts:
            raise DeepCanvasError("channels: nothing given")
        if len(parts) == 1 and "," not in spec:
            return int(check_number("channels", parts[0], integer=True, positive=True, maximum=MAX_CHANNELS)), None
        spec = parts
    try:
        chosen = [int(check_number("channel", c, integer=True, minimum=0)) for c in spec]
    except TypeError:
        raise DeepCanvasError(f"channels must be a count or a list of channel numbers, got {spec!r}") from None
    if not chosen:
        raise DeepCanvasError("channels: nothing given")
    check_number("channels", len(chosen), integer=True, positive=True, maximum=MAX_CHANNELS)
    return None, list(dict.fromkeys(chosen))


def objective_layer(net, layer: str) -> str:
    """The convolution feeding a ReLU layer (``relu3_3`` -> ``conv3_3``), else the layer itself.

    A ReLU channel that is zero everywhere on the grey start has no gradient and stays grey (the first
    VGG16 sheet had all of relu3_3 grey). Its convolution has the same channels, one to one, and a
    gradient everywhere, so its channel mean is added with a small weight (PRE_RELU_WEIGHT): it lifts
    a dead channel until the ReLU passes something, and the ReLU's own mean does the rest. (The
    convolution alone, tried first, gave shallow layers flat, faint tiles: a flat colour maximises a
    shallow filter's mean.)
    """
    names = list(getattr(net, "layer_names", []))
    if layer.startswith("relu") and layer in names:
        i = names.index(layer)
        if i > 0 and names[i - 1].startswith("conv"):
            return names[i - 1]
    return layer


def step_seconds(net, layer: str, batch: int, size: int, dev) -> float:
    """The time of one step's work for ``batch`` channels of ``layer`` (the image, the transforms, the network
    there and back), the faster of two tries; only its ratio to other layers' matters."""
    best = math.inf
    for _ in range(2):
        t = time.perf_counter()
        img = FourierParam(batch, size, size, device=dev, generator=torch.Generator().manual_seed(0)).image()
        net(T.robust(8, 0.1, 10, 1.0, random.Random(0))(img), [layer])[layer].mean().backward()
        best = min(best, time.perf_counter() - t)
    return best


def estimate_bytes(elems_per_pixel: float, size: int, batch: int) -> float:
    """Peak memory of one atlas stage: activations (forward, kept) and their gradients, fp32, ×1.5 for
    the transforms' copies and the allocator."""
    return elems_per_pixel * size * size * batch * 4 * 2 * 1.5


# -- caching ----------------------------------------------------------------------------------------
def _cache_root() -> Path:
    from ..models.weights import cache_dir

    return cache_dir() / "atlas"


def _tile_path(net_name: str, layer: str, channel: int, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps({**key, "channel": channel, "v": VERSION}, sort_keys=True).encode()).hexdigest()
    safe = lambda s: "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in s)  # noqa: E731
    return _cache_root() / safe(net_name) / safe(layer) / f"{channel:05d}_{digest[:16]}.png"


def _load_cached(path: Path) -> Image.Image | None:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, ValueError):
        return None


# -- the technique --------------------------------------------------------------------------------
def atlas_steps(
    *,
    model: str | models.LayeredNet = "vgg16",
    layers: str | None = None,
    channels: str = "8",
    photo: str | None = None,
    size: int = 128,
    iterations: int = 128,
    lr: float = 0.05,
    weights: str | None = None,
    cache: bool = True,
    memory_limit_gb: float = MEMORY_LIMIT_GIB,
    seed: int = 0,
    device: str = "auto",
    precision: Precision = "auto",
) -> Iterator[Progress]:
    """Yield a Progress after every iteration; the last one has ``done=True`` and the sheet in ``output``.

    Args:
        model: network from `deepcanvas models`, or a network object (models.LayeredNet).
        layers: comma-separated layers, one row each (default: the model's style layers).
        channels: how many channels per layer (the first N, or with photo the N most active), or a
            comma-separated list of channel numbers.
        photo: show, per layer, the channels that fire most on this photo, each beside the photo patch
            that excites it most.
        size: side of each channel's picture in pixels.
        iterations: optimisation steps per layer (all its channels at once, as one batch).
        lr: learning rate of Adam on the Fourier spectrum.
        weights: local checkpoint for the model's architecture.
        cache: reuse (and store) each channel's picture in the user cache directory.
        memory_limit_gb: refuse a layer whose batch would need more memory than this (estimated before any work).
        seed: random seed; a channel's picture depends only on it, the network, layer, channel, size,
            iterations and lr.
        device: auto, cpu, cuda or mps.
        precision: auto (bf16 on CUDA, fp32 elsewhere), fp32, bf16 or fp16.
    """
    # -- check everything before any slow work -------------------------------------
    size = longest_side(size)
    iterations = int(check_number("iterations", iterations, integer=True, positive=True))
    lr = check_number("lr", lr, positive=True)
    memory_limit_gb = check_number("memory_limit_gb", memory_limit_gb, positive=True)
    seed = int(check_number("seed", seed, integer=True, minimum=0))
    count, chosen = parse_channels(channels)
    if photo not in (None, "") and chosen is not None:
        raise DeepCanvasError("with photo, give channels as a count (the most active ones are shown), not a list")
    info, dev = begin(model, device=device, precision=precision)
    layer_list = _layer_list(layers, info)
    check_layer_names(info, layer_list)
    photo_t = None
    if photo not in (None, ""):
        from .common import fit_size, load_tensor

        photo_t = load_tensor(photo, "photo")
    net = models.load_model(model, weights=weights, device=dev)
    shapes, per_pixel = probe_layers(net, layer_list)
    counts = {name: shape[0] for name, shape in shapes.items()}
    for name in layer_list:
        if len(shapes[name]) != 3:
            raise DeepCanvasError(f"layer {name!r} has no positions; pick a convolutional layer "
                                  f"(it has {counts[name]} outputs)")
    picks: dict[str, list[int]] = {}
    for name in layer_list:
        c = counts[name]
        if chosen is not None:
            bad = [ch for ch in chosen if ch >= c]
            if bad:
                raise DeepCanvasError(f"channel {bad[0]} is out of range for layer {name!r}, which has channels "
                                      f"0..{c - 1}")
            picks[name] = list(chosen)
        elif count > c:
            raise DeepCanvasError(f"channels: layer {name!r} has only {c} channels, {count} asked for")
    n = count if chosen is None else len(chosen)
    need = estimate_bytes(per_pixel, size, n)
    if need > memory_limit_gb * 2**30:
        most = max(1, int(memory_limit_gb * 2**30 // estimate_bytes(per_pixel, size, 1)))
        raise DeepCanvasError(
            f"{n} channels at {size} px need about {need / 2**30:.1f} GiB for one layer, over the "
            f"{memory_limit_gb:g} GiB limit; at most {most} channels at this size (or a smaller size, or a "
            f"larger memory_limit_gb)")
    seed_everything(seed)

    # -- which channels, and the photo's patches ------------------------------------
    patches: dict[str, dict[int, Image.Image]] = {}
    if photo_t is not None:
        hw = fit_size(*photo_t.shape[-2:], max(224, size))
        from ..param import resize

        x = resize(photo_t, hw).to(dev)
        with torch.no_grad():
            acts = net(x, layer_list)
        full = imaging.tensor_to_image(x.cpu())
        for name in layer_list:
            a = acts[name][0].float()  # (C, h, w)
            peak = a.flatten(1).max(1).values
            top = peak.argsort(descending=True)[:count].tolist()
            picks[name] = top
            h, w = a.shape[-2:]
            sy, sx = hw[0] / h, hw[1] / w
            side = int(min(max(hw), max(24, 3 * max(sy, sx))))
            patches[name] = {}
            for ch in top:
                pos = int(a[ch].flatten().argmax())
                cy, cx = (pos // w + 0.5) * sy, (pos % w + 0.5) * sx
                y0 = int(min(max(0, cy - side / 2), max(0, hw[0] - side)))
                x0 = int(min(max(0, cx - side / 2), max(0, hw[1] - side)))
                patches[name][ch] = full.crop((x0, y0, x0 + side, y0 + side))
    elif chosen is None:
        for name in layer_list:
            picks[name] = list(range(count))

    # -- cached tiles, and the stages for the rest ------------------------------------
    net_name = info.name if isinstance(model, str) and weights in (None, "") else None
    use_cache = cache and net_name is not None
    key = {"net": net_name, "size": size, "seed": seed, "iterations": iterations, "lr": lr}
    tiles: dict[str, dict[int, Image.Image]] = {name: {} for name in layer_list}
    todo: dict[str, list[int]] = {}
    for name in layer_list:
        layer_key = {**key, "layer": name, "target": objective_layer(net, name)}
        for ch in picks[name]:
            got = _load_cached(_tile_path(net_name, name, ch, layer_key)) if use_cache else None
            if got is not None and got.size == (size, size):
                tiles[name][ch] = got
            else:
                todo.setdefault(name, []).append(ch)

    def layer_stage(k: int, name: str, chs: list[int]):
        def build(prev):
            spectra = []
            for ch in chs:
                g = torch.Generator().manual_seed(_channel_seed(seed, name, ch))
                spectra.append(FourierParam(1, size, size, device="cpu", generator=g).spectrum.detach())
            prm = FourierParam(len(chs), size, size, device=dev)
            with torch.no_grad():
                prm.spectrum.copy_(torch.cat(spectra).to(dev))
            objective = Sum([])
            target = objective_layer(net, name)
            for i, ch in enumerate(chs):
                b = i if len(chs) > 1 else None
                objective = objective + Channel(name, ch, batch=b)
                if target != name:  # the convolution's channel too, weakly: a way out for a ReLU dead at grey
                    objective = objective + PRE_RELU_WEIGHT * Channel(target, ch, batch=b)
            rng = random.Random(_channel_seed(seed, name, -1))
            return Stage(prm, objective, iterations, name=f"{name} ({k + 1}/{len(todo)})", optimizer="adam", lr=lr,
                         transforms=T.robust(8, 0.1, 10, 1.0, rng), keep_best=False,
                         after=lambda result: save_tiles(name, chs, result))
        return build

    def save_tiles(name: str, chs: list[int], result: torch.Tensor) -> None:
        for i, ch in enumerate(chs):
            img = imaging.tensor_to_image(result[i:i + 1])
            tiles[name][ch] = img
            if use_cache:
                try:
                    path = _tile_path(net_name, name, ch, {**key, "layer": name, "target": objective_layer(net, name)})
                    io.save_image(img, _mkdir(path))
                except DeepCanvasError:
                    pass  # an unwritable cache costs only the time next run

    title = f"{info.name}: " + ("channels most active on the photo" if photo_t is not None else
                                 f"{'first ' + str(count) if chosen is None else 'chosen'} channels") + \
        f", {size} px, {iterations} steps, seed {seed}"
    sheet: dict[str, Image.Image] = {}

    def finish(results: list[torch.Tensor]) -> torch.Tensor:
        """The sheet of every layer whose channels are all drawn (on Ctrl-C: those finished so far)."""
        got = {name: dict(tiles[name]) for name in layer_list}
        for (name, chs), result in zip(todo.items(), results):
            for i, ch in enumerate(chs):
                got[name].setdefault(ch, imaging.tensor_to_image(result[i:i + 1]))
        rows = [(name, [(f"#{ch}", got[name][ch], patches.get(name, {}).get(ch)) for ch in picks[name]])
                for name in layer_list if all(ch in got[name] for ch in picks[name])]
        sheet["image"] = contact_sheet(rows, title)
        return imaging.image_to_tensor(sheet["image"])

    stages = [layer_stage(k, name, chs) for k, (name, chs) in enumerate(todo.items())]
    # A deep layer's step costs more than a shallow one's: weigh them by a measured step, for the time left.
    costs = [(iterations, step_seconds(net, name, len(chs), size, dev)) for name, chs in todo.items()]
    yield from render(net, stages, total=iterations * len(todo), precision=precision, finish=finish,
                      output=lambda final: sheet["image"], costs=costs)


def _mkdir(p: Path) -> Path:
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DeepCanvasError(f"cannot create cache folder '{p.parent}': {e.strerror}") from None
    return p


def _channel_seed(seed: int, layer: str, channel: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}/{layer}/{channel}".encode()).digest()[:6], "big")


def atlas(*, callback: Callable[[Progress], None] | None = None, **kwargs) -> Image.Image:
    """Render a layer atlas; return the sheet (a PIL image). See :func:`atlas_steps` for the arguments."""
    return drive(atlas_steps(**kwargs), callback).output
