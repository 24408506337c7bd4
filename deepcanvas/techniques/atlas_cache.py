"""The atlas's tile cache: each channel's picture on disk, so a larger sheet renders only what is new.

A channel's picture depends only on (network, layer, the layer its objective reads, channel, size, seed,
iterations, lr), so those, with :data:`VERSION`, key its file under ``<cache>/atlas/``. Only registered
networks without a local checkpoint are cached: a network object or custom weights have no stable name.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from PIL import Image

from .. import io
from ..errors import DeepCanvasError
from ..models.weights import cache_dir

VERSION = 2  # part of every cache key: bump when the recipe changes


class TileCache:
    """Tiles of one network and recipe (``key``: the net's name, size, seed, iterations, lr); off when
    ``enabled`` is false or the network has no name."""

    def __init__(self, net_name: str | None, key: dict, enabled: bool = True):
        self.net_name, self.key = net_name, key
        self.enabled = enabled and net_name is not None

    def path(self, layer: str, target: str, channel: int) -> Path:
        """The tile's file: the layer's folder, the channel and a digest of everything the picture depends on."""
        key = {**self.key, "layer": layer, "target": target, "channel": channel, "v": VERSION}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
        safe = lambda s: "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in s)  # noqa: E731
        return cache_dir() / "atlas" / safe(self.net_name) / safe(layer) / f"{channel:05d}_{digest[:16]}.png"

    def get(self, layer: str, target: str, channel: int, size: int) -> Image.Image | None:
        """The cached tile, or None when there is none of this size (or it cannot be read)."""
        if not self.enabled:
            return None
        try:
            with Image.open(self.path(layer, target, channel)) as im:
                got = im.convert("RGB")
        except (OSError, ValueError):
            return None
        return got if got.size == (size, size) else None

    def put(self, layer: str, target: str, channel: int, tile: Image.Image) -> None:
        """Store a tile; an unwritable cache only costs the time to render it again next run."""
        if not self.enabled:
            return
        path = self.path(layer, target, channel)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            io.save_image(tile, path)
        except (OSError, DeepCanvasError):
            pass
