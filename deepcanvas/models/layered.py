"""A network seen as an ordered list of named stages.

Every technique asks for activations by name ("relu4_2", "block12", "logits").
Keeping the upstream module (``body``) untouched means upstream checkpoints load
as they are, while ``stages`` gives the order in which to run it and lets a
forward pass stop at the deepest layer anybody asked for.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from ..errors import DeepCanvasError


def check_layer_names(model: str, names: Iterable[str], valid: list[str]) -> list[str]:
    """Return ``names`` as a list, or fail naming the unknown ones and listing the valid ones."""
    names = list(names)
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise DeepCanvasError(
            f"model {model} has no layer {', '.join(map(repr, unknown))}; valid layers: {', '.join(valid)}"
        )
    return names


class Preprocess(nn.Module):
    """Map an RGB image in [0, 1] to what the network was trained on.

    ``y = (x[:, order] * scale - mean) / std`` per channel.
    """

    def __init__(self, mean, std=(1.0, 1.0, 1.0), scale: float = 1.0, bgr: bool = False):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.scale = float(scale)
        self.bgr = bool(bgr)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bgr:
            x = x.flip(1)
        return (x * self.scale - self.mean.to(x.dtype)) / self.std.to(x.dtype)


class LayeredNet(nn.Module):
    def __init__(self, body: nn.Module, stages: list[tuple[str, nn.Module]], preprocess: Preprocess, name: str = ""):
        super().__init__()
        self.body = body
        self.preprocess = preprocess
        # A plain list, not a ModuleList: the stage modules already live in ``body``.
        self.stages = list(stages)
        self.layer_names = [n for n, _ in stages]
        self.name = name
        self.requires_grad_(False)
        self.eval()

    def check_layers(self, names: Iterable[str]) -> list[str]:
        return check_layer_names(self.name or "network", names, self.layer_names)

    def forward(self, x: torch.Tensor, layers: Iterable[str], preprocess: bool = True) -> dict[str, torch.Tensor]:
        """Return ``{name: activation}`` for ``layers``, running no further than the deepest."""
        wanted = set(self.check_layers(layers))
        out: dict[str, torch.Tensor] = {}
        if preprocess:
            x = self.preprocess(x)
        for name, stage in self.stages:
            if not wanted:
                break
            x = stage(x)
            if name in wanted:
                out[name] = x
                wanted.discard(name)
        return out

    def load_body_state_dict(self, state_dict: dict, source: str) -> None:
        """Load an upstream-format state dict, with a clear message on any mismatch."""
        own = self.body.state_dict()
        missing = [k for k in own if k not in state_dict]
        if missing:
            raise DeepCanvasError(
                f"{source}: not a checkpoint for {self.name}: missing {len(missing)} tensors (e.g. {missing[0]!r})"
            )
        for k, v in own.items():
            got = state_dict[k]
            if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(v.shape):
                shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
                raise DeepCanvasError(
                    f"{source}: tensor {k!r} has shape {shape}, {self.name} needs {tuple(v.shape)}"
                )
        self.body.load_state_dict({k: state_dict[k] for k in own}, strict=True)


def probe_layers(net, layers: Iterable[str], size: int = 64) -> tuple[dict[str, tuple[int, ...]], float]:
    """Each layer's activation shape (without the batch) on a grey ``size`` x ``size`` image, and the
    activation elements per input pixel that a forward pass up to the deepest of them keeps (for memory
    estimates). Works on any network with ``forward(x, layers)``; a LayeredNet is walked stage by stage."""
    layers = list(layers)
    try:
        dev = next(net.parameters()).device
    except (StopIteration, AttributeError):
        dev = torch.device("cpu")
    grey = torch.full((1, 3, size, size), 0.5, device=dev)
    shapes: dict[str, tuple[int, ...]] = {}
    kept = 0
    with torch.no_grad():
        if isinstance(net, LayeredNet):
            net.check_layers(layers)
            x, wanted = net.preprocess(grey), set(layers)
            for name, stage in net.stages:
                if not wanted:
                    break
                x = stage(x)
                kept += x.numel()
                if name in wanted:
                    wanted.discard(name)
                    shapes[name] = tuple(x.shape[1:])
        else:  # only the asked-for activations are seen: count them generously
            for name, a in net(grey, layers).items():
                shapes[name] = tuple(a.shape[1:])
                kept += a.numel() * 8
    return shapes, kept / (size * size)
