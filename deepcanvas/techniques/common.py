"""Argument handling shared by the techniques: layer specs, devices, seeds, images."""

from __future__ import annotations

import random
from typing import Mapping

import numpy as np
import torch

from .. import imaging, io, models
from ..errors import DeepCanvasError
from ..limits import check_number
from ..options import Pooling, Precision  # the choices every technique shares, declared with NetworkOptions
from ..precision import resolve_precision
from ..signature import check_choice


def parse_layers(spec, what: str = "layers") -> dict[str, float]:
    """'relu4_2' | 'relu4_2:0.5,relu5_2:0.5' | ['a', 'b'] | {'a': 1.0} -> {'a': 1.0, ...}."""
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        items = list(spec.items())
    else:
        if isinstance(spec, str):
            spec = [s for s in spec.replace(" ", "").split(",") if s]
        items = []
        for s in spec:
            if isinstance(s, (tuple, list)):
                items.append((s[0], s[1]))
            elif ":" in s:
                name, w = s.split(":", 1)
                items.append((name, w))
            else:
                items.append((s, 1.0))
    out: dict[str, float] = {}
    for name, w in items:
        out[str(name)] = check_number(f"weight of {what[:-1] if what.endswith('s') else what} {name!r}", w, minimum=0)
    if not out:
        raise DeepCanvasError(f"no {what} given")
    return out


def layer_names(spec) -> list[str]:
    """'a, b' or ['a', 'b'] -> ['a', 'b']: each layer once, in the order given; an error when none is."""
    out = [s.strip() for s in spec.split(",") if s.strip()] if isinstance(spec, str) else [str(s) for s in spec]
    if not out:
        raise DeepCanvasError("no layer given")
    return list(dict.fromkeys(out))


def parse_floats(spec, n: int, what: str) -> list[float]:
    if spec is None:
        return [1.0] * n
    if isinstance(spec, str):
        spec = [s for s in spec.replace(" ", "").split(",") if s]
    vals = [check_number(what, v, minimum=0) for v in spec]
    if len(vals) != n:
        raise DeepCanvasError(f"{what}: got {len(vals)} values for {n} images")
    if sum(vals) <= 0:
        raise DeepCanvasError(f"{what} must not all be zero")
    return vals


def seed_everything(seed: int | None) -> random.Random:
    """Seed torch's global generator and return a Python RNG for transforms."""
    if seed is None:
        seed = random.randrange(2**31)
    seed = int(check_number("seed", seed, integer=True, minimum=0))
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    return random.Random(seed)


def longest_side(size, what="size") -> int:
    return int(check_number(what, size, integer=True, positive=True))


def fit_size(h: int, w: int, longest: int) -> tuple[int, int]:
    """(h, w) scaled so the longest side is ``longest``."""
    s = longest / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def begin(model, *, device, precision, pooling: str = "max", weights=None, mean=None, std=None):
    """The opening every technique shares, before any image is loaded.

    Checks the device, precision and pooling; returns (model info, device).
    ``model`` is a registered name, a spec or a network object (see models.get_info); a spec's network
    is built here (with ``weights``, ``mean``, ``std``), so that a model that does not fit fails now.
    """
    check_choice("pooling", pooling, Pooling)
    check_choice("precision", precision, Precision)
    dev = models.resolve_device(device)
    resolve_precision(dev, precision)
    extra = {k: v for k, v in (("weights", weights), ("mean", mean), ("std", std)) if v is not None}
    return models.get_info(model, **extra), dev


def network_of(network, dev, pooling: bool = True):
    """The loaded network a NetworkOptions names, on ``dev``."""
    norm = {k: v for k, v in (("mean", network.mean), ("std", network.std)) if v is not None}
    return models.load_model(network.model, weights=network.weights, device=dev, **norm,
                             **({"pooling": network.pooling} if pooling else {}))


def load_tensor(path_or_image, what: str) -> torch.Tensor:
    """An image (path or PIL) as a (1, 3, H, W) tensor in [0, 1]; a clear error if it is not one."""
    return imaging.image_to_tensor(io.load_image(path_or_image, what=what))


def check_layer_names(info, names, maps: bool = True) -> None:
    """Fail fast, before any image or weight is loaded, on a layer the network lacks (with ``maps``, or on one
    that gives no feature map, for a network read through hooks)."""
    models.check_layers(info, list(names), maps)
