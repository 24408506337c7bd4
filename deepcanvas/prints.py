"""What a print needs around its run: the memory check before any slow work, and the state that lets a
stopped print resume from its last finished size.

Memory: a tiled step holds one tile's activations and gradients (bounded by the tile) plus about nine
image-sized tensors (the pixels, Adam's two moments, the gradient, the shown copy, the
content) and the content layers' targets at the full size; :func:`estimate_bytes` adds these up with the
constants measured in docs/benchmarks.md ("Prints"), and :func:`check_memory` refuses, in one line that
names the largest size that fits, a print that would not fit in the memory available now.

Resume: :class:`PrintState` keeps each finished size's picture and a small JSON record (the inputs'
hashes and the options) in a hidden folder beside the output, each written atomically. The same
command finds them and starts after the last finished size; a different one starts afresh.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import torch

from .atomic import atomic_path, save_bytes_atomic
from .errors import DeepCanvasError

#: fp32 image-sized tensors a tiled step holds at its peak (pixels, Adam's moments and its one temporary, the
#: gradient, the shown copy, the content, the sampled positions' draws...): measured, docs/benchmarks.md.
IMAGE_COPIES = 9
#: A tile's activations are kept for the backward pass and meet their gradients there, with the
#: allocator's slack: bytes per activation element (measured, docs/benchmarks.md).
TILE_BYTES_PER_ELEMENT = 4.0
#: The process itself: torch, the network's weights, the style images' targets.
BASE_BYTES = 0.5 * 2**30


def available_bytes() -> int | None:
    """Memory the system can give now (Linux's MemAvailable), or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def estimate_bytes(hw: tuple[int, int], tile: int, per_pixel: float, content_per_pixel: float,
                   weights_bytes: int = 0) -> float:
    """Peak memory of a (tiled) step at ``hw``: the process, one tile's activations (``per_pixel`` elements
    per input pixel up to the deepest layer), and the full-size tensors (``content_per_pixel``: the
    content targets' elements per pixel)."""
    h, w = hw
    tile_px = min(h, tile) * min(w, tile)
    full = h * w * (IMAGE_COPIES * 3 * 4 + content_per_pixel * 4)
    return BASE_BYTES + weights_bytes + tile_px * per_pixel * TILE_BYTES_PER_ELEMENT + full


def check_memory(net, layers, content_layers, hw: tuple[int, int], tile: int, pad: int = 0) -> float:
    """Refuse (one line, naming the largest side that fits) a run at ``hw`` (worked on with ``pad`` pixels more
    on each axis: the mirrored border) that needs more memory than is available now; return the estimate in
    bytes."""
    from .models.layered import probe_layers

    shapes, per_pixel = probe_layers(net, list(layers) + list(content_layers))
    probe_px = 64 * 64
    content_pp = sum(c * h * w for l, (c, h, w) in shapes.items() if l in content_layers) / probe_px
    weights = sum(p.numel() * p.element_size() for p in net.parameters())

    def need(side_hw):
        return estimate_bytes(tuple(x + pad for x in side_hw), tile, per_pixel, content_pp, weights)

    total = need(hw)
    free = available_bytes()
    if free is None or total <= free:
        return total
    side = max(hw)
    while side > 64 and need(tuple(max(1, x * side // max(hw)) for x in hw)) > free:
        side = side * 7 // 8
    raise DeepCanvasError(f"{max(hw)} px needs about {total / 2**30:.1f} GiB, {free / 2**30:.1f} GiB is free: "
                          f"at most about {side} px fits (or a smaller tile)")


def fingerprint(inputs, records: dict) -> str:
    """A hash of the input images (file bytes, or a PIL image's pixels) and the option records."""
    h = hashlib.sha256()
    for item in inputs:
        if item is None:
            continue
        if hasattr(item, "tobytes"):
            h.update(item.tobytes())
        elif Path(str(item)).is_file():
            h.update(hashlib.sha256(Path(str(item)).read_bytes()).digest())
        else:
            h.update(str(item).encode())
    opts = {k: {f.name: repr(getattr(r, f.name)) for f in dataclasses.fields(r)} for k, r in records.items()}
    h.update(json.dumps(opts, sort_keys=True).encode())
    return h.hexdigest()


def state_folder(output: Path) -> Path:
    """The hidden folder beside ``output`` where a print keeps its finished sizes."""
    return output.parent / f".{output.name}.print"


class PrintState:
    """A print's finished sizes, kept in ``folder`` under one ``key`` (see :func:`fingerprint`)."""

    def __init__(self, folder: Path, key: str):
        self.folder, self.key = Path(folder), key
        self.record = self.folder / "state.json"

    def resume(self) -> tuple[int, torch.Tensor] | None:
        """(side, picture) of the last finished size of the same print, or None (a different or no print:
        its folder is cleared)."""
        from .io import load_image
        from .imaging import image_to_tensor

        try:
            state = json.loads(self.record.read_text())
            if state.get("key") == self.key:
                side = int(state["side"])
                return side, image_to_tensor(load_image(self.folder / state["image"]))
        except (OSError, ValueError, KeyError, TypeError, DeepCanvasError):
            pass
        self.clear()
        return None

    def save(self, side: int, img: torch.Tensor) -> None:
        """Keep ``img`` as the finished ``side`` (the picture first, then the record that points at it)."""
        from .imaging import tensor_to_image

        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"size_{side}.png"
        with atomic_path(self.folder / name) as tmp:
            tensor_to_image(img).save(tmp, format="PNG")
        save_bytes_atomic(json.dumps({"key": self.key, "side": side, "image": name}).encode(), self.record)
        for old in self.folder.glob("size_*.png"):  # only the latest is needed to resume
            if old.name != name:
                old.unlink(missing_ok=True)

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
