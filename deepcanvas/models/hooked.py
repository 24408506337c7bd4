"""Any ``nn.Module`` as a network the techniques can use: layers are its ``named_modules()`` paths.

A forward pass registers forward hooks on the asked-for modules only, keeps their outputs, and raises
a private exception from the hook of the last one needed, so a deep network costs no more than its
used part (as :class:`LayeredNet`'s stage walk does). A dry run on a small grey image, once, tells
which modules run, in what order, how often (a module called twice, such as a ResNet block's shared
ReLU, is read at its last call) and with which output shapes; the default layers come from it.
Token outputs ``(B, N, C)`` of a transformer are read as a ``(B, C, h, w)`` grid where ``N`` or
``N - 1`` (a class token, dropped) is a square.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn

from ..errors import DeepCanvasError
from .layered import Preprocess

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
PROBE_SIZES = (64, 224)  # a fixed-size network (a ViT without dynamic sizes) gets the second


class _Stop(BaseException):
    """Raised from the last needed layer's hook: the rest of the forward pass is not needed.

    A BaseException, so that a network's own ``except Exception`` does not swallow it."""


def first_tensor(output):
    """A module's output as one tensor: a tuple's first (attention modules return (values, weights))."""
    if isinstance(output, (tuple, list)):
        return next((o for o in output if isinstance(o, torch.Tensor)), None)
    return output


def square_tokens(output, side: int) -> tuple[int, float] | None:
    """For tokens ``(B, N, C)`` of a ``side`` x ``side`` image: (class tokens to drop, patch stride), where
    ``N`` or ``N - 1`` is a square; else None."""
    if not (isinstance(output, torch.Tensor) and output.dim() == 3):
        return None
    n = output.shape[1]
    for drop in (0, 1):
        g = math.isqrt(max(n - drop, 0))
        if g and g * g == n - drop:
            return drop, side / g
    return None


def as_map(output, grid: tuple[int, float] | None = None, hw: tuple[int, int] = (0, 0)):
    """Tokens ``(B, N, C)`` as a ``(B, C, h, w)`` grid for an ``hw`` image, by the layer's ``grid`` (class
    tokens, patch stride: :func:`square_tokens` on the dry run); anything else as it is."""
    output = first_tensor(output)
    if grid is None or not isinstance(output, torch.Tensor) or output.dim() != 3:
        return output
    (drop, stride), (b, n, c) = grid, output.shape
    for rnd in (math.floor, math.ceil):  # a patch embedding drops a partial patch; a padded one keeps it
        h, w = max(1, rnd(hw[0] / stride)), max(1, rnd(hw[1] / stride))
        if h * w == n - drop:
            return output[:, drop:].transpose(1, 2).reshape(b, c, h, w)
    return output


@dataclass(frozen=True)
class Probe:
    """What one dry run saw: the modules that ran (in the order they started), their calls, their shapes."""

    order: tuple[str, ...]
    done: tuple[str, ...]  # the same modules in the order of their last call's end
    calls: dict
    shapes: dict  # path -> output shape without the batch (after as_map); () for a non-tensor
    grids: dict  # path -> square_tokens() for a layer of tokens
    size: int  # the probe image's side
    output: tuple


def dry_run(module: nn.Module, preprocess: Preprocess) -> Probe:
    """Run ``module`` once on a grey image with hooks on every submodule (cheap sizes first)."""
    named = [(p, m) for p, m in module.named_modules() if p]
    err = None
    for size in PROBE_SIZES:
        order, calls, shapes, handles, ended, grids = [], {}, {}, [], {}, {}

        def pre(path):
            def hook(mod, args):
                if path not in calls:
                    order.append(path)
                    calls[path] = 0
            return hook

        def post(path):
            def hook(mod, args, output):
                calls[path] += 1
                ended[path] = sum(calls.values())  # grows with every call: the last end ranks last
                grid = square_tokens(first_tensor(output), size)
                if grid:
                    grids[path] = grid
                out = as_map(output, grid, (size, size))
                shapes[path] = tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else ()
            return hook

        for p, m in named:
            handles += [m.register_forward_pre_hook(pre(p)), m.register_forward_hook(post(p))]
        try:
            dev = next(module.parameters(), torch.empty(0)).device
            with torch.no_grad():
                y = module(preprocess(torch.full((1, 3, size, size), 0.5, device=dev)))
            y = as_map(y, square_tokens(y, size), (size, size))
            done = tuple(sorted(ended, key=ended.__getitem__))
            out = tuple(y.shape[1:]) if isinstance(y, torch.Tensor) else ()
            return Probe(tuple(order), done, calls, shapes, grids, size, out)
        except Exception as e:  # any error of the user's network: try the next size, then report it
            err = e
        finally:
            for h in handles:
                h.remove()
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    raise DeepCanvasError(f"the network does not run on a {PROBE_SIZES[-1]}x{PROBE_SIZES[-1]} RGB image: {first}")


def default_layers(probe: Probe, out_name: str) -> dict[str, str]:
    """Style, content, dream, invert and atlas layers from the dry run: the last module of each spatial
    resolution (each stage of a convolutional backbone), or evenly spaced blocks when the resolution never
    drops (a transformer)."""
    maps = [p for p in probe.order if len(probe.shapes.get(p, ())) == 3 and min(probe.shapes[p][1:]) > 1]
    if not maps:
        return {"class_layer": out_name} if len(probe.output) == 1 else {}
    last_at: dict[tuple, str] = {}
    done = [p for p in probe.done if p in set(maps)]
    for p in done:
        last_at[probe.shapes[p][1:]] = p
    stages = [p for p in done if last_at[probe.shapes[p][1:]] == p]
    if len(stages) < 3:  # one resolution: blocks of a list (blocks.0, blocks.1 ...) evenly spaced
        blocks = [p for p in done if p.rsplit(".", 1)[-1].isdigit() and "." not in p.rsplit(".", 1)[0]] or done
        stages = [blocks[round(i * (len(blocks) - 1) / 3)] for i in range(4)]
        stages = list(dict.fromkeys(stages))
    deep = stages[-2] if len(stages) > 1 else stages[-1]
    out = {"style_layers": ",".join(stages), "content_layers": deep, "dream_layers": deep,
           "invert_layer": stages[len(stages) // 2], "atlas_layers": ",".join(stages)}
    if len(probe.output) == 1:
        out["class_layer"] = out_name
    return out


class HookedNet(nn.Module):
    """A plain ``nn.Module`` seen the way the techniques see a network (``layer_names``, ``forward(x, layers)``).

    The layer names are the paths of the submodules that ran in the dry run, and ``out_name`` ("logits" for a
    classifier's ``(B, K)`` output, else "output") for the whole network's output.
    """

    def __init__(self, module: nn.Module, preprocess: Preprocess | None = None, name: str = "",
                 class_names: list[str] | None = None):
        super().__init__()
        self.body = module
        self.preprocess = preprocess if preprocess is not None else Preprocess(IMAGENET_MEAN, IMAGENET_STD)
        self.name = name or type(module).__name__
        self.requires_grad_(False)
        self.eval()
        self.probe = dry_run(module, self.preprocess)
        self._modules_by_path = dict(module.named_modules())
        self.out_name = "logits" if len(self.probe.output) == 1 else "output"
        self.layer_names = [p for p in self.probe.order] + ([self.out_name] if self.out_name not in self.probe.calls
                                                            else [])
        self.defaults = default_layers(self.probe, self.out_name)
        classes = self.probe.output[0] if len(self.probe.output) == 1 else 0
        if class_names is None and classes:
            from .efficientnet import NUM_CLASSES, imagenet_classes

            class_names = imagenet_classes() if classes == NUM_CLASSES else [str(i) for i in range(classes)]
        self.class_names = class_names

    def layer_shapes(self) -> dict[str, tuple]:
        """Each layer's output shape without the batch, on the dry run's image."""
        return {**{p: self.probe.shapes[p] for p in self.probe.order}, self.out_name: self.probe.output}

    def check_layers(self, names: Iterable[str]) -> list[str]:
        names = list(names)
        for n in names:
            if n not in self.layer_names:
                close = difflib.get_close_matches(n, self.layer_names, n=4, cutoff=0.5) or self.layer_names[:4]
                raise DeepCanvasError(f"{self.name} has no layer {n!r}; closest: {', '.join(close)} "
                                      f"(`deepcanvas models --layers` lists them all)")
        return names

    def forward(self, x: torch.Tensor, layers: Iterable[str], preprocess: bool = True) -> dict[str, torch.Tensor]:
        """Return ``{name: activation}`` for ``layers``, stopping after the last of them has run."""
        wanted = self.check_layers(layers)
        whole = self.out_name in wanted and self.out_name not in self.probe.calls
        left = {n: self.probe.calls[n] for n in wanted if n != self.out_name or not whole}
        out: dict[str, torch.Tensor] = {}

        def hook_for(name):
            def hook(mod, args, output):
                out[name] = output  # a module called again overwrites: its last call counts
                left[name] -= 1
                if left[name] == 0:
                    del left[name]
                    if not left and not whole:
                        raise _Stop
            return hook

        handles = [self._modules_by_path[n].register_forward_hook(hook_for(n)) for n in left]
        if preprocess:
            x = self.preprocess(x)
        try:
            y = self.body(x)
            if whole:
                out[self.out_name] = y
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        hw = tuple(x.shape[-2:])
        return {n: as_map(out[n], self.probe.grids.get(n), hw) if n in self.probe.grids else first_tensor(out[n])
                for n in wanted if n in out}


def check_feature_maps(net, names: Iterable[str]) -> None:
    """A one-line error for a layer whose output is not a (C, H, W) feature map (``net``: a HookedNet)."""
    shapes = net.layer_shapes()
    for n in names:
        s = shapes.get(n, ())
        if len(s) != 3:
            what = f"tokens {s} that are not a square grid" if len(s) == 2 else f"shape {s or 'none'}"
            raise DeepCanvasError(f"layer {n!r} of {net.name} gives {what}, not a feature map (C, H, W); "
                                  f"pick a convolutional or token layer")
