"""A layer atlas: what each chosen layer's channels respond to, one sheet per network.

For every layer, the feature visualization of N channels (:mod:`.atlas_channels`: the first N, the ones
named, or with ``photo`` the N that fire most on that photo, each beside the patch that excites it) as one
row of a sheet. A configuration of the one loop: each layer is one stage whose batch holds its N channels
(item i ascends the mean of channel i), in lucid's decorrelated Fourier parameterisation with random pad /
jitter / scale / rotate each step.

Each channel's picture depends only on (network, layer, channel, size, seed, iterations, lr): its spectrum
starts from noise drawn from a generator seeded by those, and the transforms' random sequence is the
seed's. So tiles are cached one per channel on disk (:mod:`.atlas_cache`), and a sheet with one more layer
or channel renders only what is new.
"""

from __future__ import annotations

import hashlib
import random
from typing import Callable, Iterator

import torch
from PIL import Image

from .. import imaging, models
from .. import transforms as T
from ..errors import DeepCanvasError
from ..models.layered import probe_layers
from ..objectives import Channel, Sum
from ..options import AtlasOptions, AtlasRunOptions, NetworkOptions
from ..param import FourierParam
from ..render import Progress, Stage, drive, render
from ..sheet import contact_sheet
from ..signature import flat_options
from .atlas_cache import TileCache
from .atlas_channels import check_channels, most_active, parse_channels
from .common import begin, network_of, check_layer_names, layer_names, load_tensor, seed_everything

PRE_RELU_WEIGHT = 0.1


def atlas_layers(layers, info) -> list[str]:
    """The layers asked for, or the model's atlas (else style) layers."""
    if layers in (None, ""):
        layers = info.defaults.get("atlas_layers") or info.defaults.get("style_layers")
        if not layers:
            raise DeepCanvasError(f"model {info.name} has no default atlas layers; give them with layers")
    return layer_names(layers)


def objective_layer(net, layer: str) -> str:
    """The convolution feeding a ReLU layer (``relu3_3`` -> ``conv3_3``), else the layer itself.

    A ReLU channel that is zero everywhere on the grey start has no gradient and would stay grey. Its
    convolution has the same channels, one to one, and a gradient everywhere, so its channel mean is added
    with a small weight (PRE_RELU_WEIGHT): it lifts a dead channel until the ReLU passes something, and the
    ReLU's own mean does the rest (the convolution alone would give shallow layers flat tiles: a flat
    colour maximises a shallow filter's mean).
    """
    names = list(getattr(net, "layer_names", []))
    if layer.startswith("relu") and layer in names:
        i = names.index(layer)
        if i > 0 and names[i - 1].startswith("conv"):
            return names[i - 1]
    return layer


def estimate_bytes(elems_per_pixel: float, size: int, batch: int) -> float:
    """Peak memory of one atlas stage: activations (forward, kept) and their gradients, fp32, ×1.5 for
    the transforms' copies and the allocator."""
    return elems_per_pixel * size * size * batch * 4 * 2 * 1.5


# -- the technique --------------------------------------------------------------------------------
@flat_options(omit=("pooling",), options=AtlasOptions, run=AtlasRunOptions, network=NetworkOptions)
def atlas_steps(*, options: AtlasOptions, run: AtlasRunOptions, network: NetworkOptions) -> Iterator[Progress]:
    """Yield a Progress after every iteration; the last one has ``done=True`` and the sheet in ``output``."""
    # -- check everything before any slow work -------------------------------------
    size, iterations, lr, seed = options.size, options.iterations, options.lr, run.seed
    count, chosen = parse_channels(options.channels)
    if options.photo not in (None, "") and chosen is not None:
        raise DeepCanvasError("with photo, give channels as a count (the most active ones are shown), not a list")
    info, dev = begin(network.model, device=network.device, precision=network.precision,
                     weights=network.weights, mean=network.mean, std=network.std)
    layer_list = atlas_layers(options.layers, info)
    check_layer_names(info, layer_list)
    photo_t = load_tensor(options.photo, "photo") if options.photo not in (None, "") else None
    net = network_of(network, dev, pooling=False)
    shapes, per_pixel = probe_layers(net, layer_list)
    check_channels(layer_list, shapes, count, chosen)
    n = count if chosen is None else len(chosen)
    need = estimate_bytes(per_pixel, size, n)
    limit = options.memory_limit_gb
    if need > limit * 2**30:
        most = max(1, int(limit * 2**30 // estimate_bytes(per_pixel, size, 1)))
        raise DeepCanvasError(
            f"{n} channels at {size} px need about {need / 2**30:.1f} GiB for one layer, over the "
            f"{limit:g} GiB limit; at most {most} channels at this size (or a smaller size, or a "
            f"larger memory_limit_gb)")
    seed_everything(seed)

    # -- which channels (with a photo: the most active ones, and their patches) -------------
    patches: dict[str, dict[int, Image.Image]] = {}
    if photo_t is not None:
        picks, patches = most_active(net, photo_t, layer_list, count, size, dev)
    else:
        picks = {name: list(chosen) if chosen is not None else list(range(count)) for name in layer_list}

    # -- cached tiles, and the stages for the rest ------------------------------------
    # your own model's weights may change under the same name (a spec, a registered model): not cached
    named = isinstance(network.model, str) and not isinstance(info, models.specs.SpecInfo)
    net_name = info.name if named and network.weights in (None, "") else None
    store = TileCache(net_name, {"net": net_name, "size": size, "seed": seed, "iterations": iterations, "lr": lr},
                      enabled=options.cache)
    tiles: dict[str, dict[int, Image.Image]] = {name: {} for name in layer_list}
    todo: dict[str, list[int]] = {}
    for name in layer_list:
        for ch in picks[name]:
            got = store.get(name, objective_layer(net, name), ch, size)
            if got is not None:
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
            tiles[name][ch] = imaging.tensor_to_image(result[i:i + 1])
            store.put(name, objective_layer(net, name), ch, tiles[name][ch])

    title = f"{info.name}: " + ("channels most active on the photo" if photo_t is not None else
                                 f"{'first ' + str(count) if chosen is None else 'chosen'} channels") + \
        f", {size} px, {iterations} steps, seed {seed}"
    sheet: dict[str, Image.Image] = {}

    def finish(results: list[torch.Tensor]) -> torch.Tensor:
        """The sheet of every layer whose channels are all drawn (on Ctrl-C: those finished so far)."""
        got = {name: dict(tiles[name]) for name in layer_list}
        for (name, chs), result in zip(todo.items(), results):
            for i, ch in enumerate(chs):
                if ch not in got[name]:  # the running layer's best on Ctrl-C (finished ones are in tiles)
                    got[name][ch] = imaging.tensor_to_image(result[i:i + 1])
        rows = [(name, [(f"#{ch}", got[name][ch], patches.get(name, {}).get(ch)) for ch in picks[name]])
                for name in layer_list if all(ch in got[name] for ch in picks[name])]
        sheet["image"] = contact_sheet(rows, title)
        return imaging.image_to_tensor(sheet["image"])

    stages = [layer_stage(k, name, chs) for k, (name, chs) in enumerate(todo.items())]
    yield from render(net, stages, total=iterations * len(todo), precision=network.precision, finish=finish,
                      output=lambda final: sheet["image"])


def _channel_seed(seed: int, layer: str, channel: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}/{layer}/{channel}".encode()).digest()[:6], "big")


def atlas(*, callback: Callable[[Progress], None] | None = None, **kwargs) -> Image.Image:
    """Render a layer atlas; return the sheet (a PIL image). See :func:`atlas_steps` for the arguments."""
    return drive(atlas_steps(**kwargs), callback).output
