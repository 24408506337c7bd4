"""The layer atlas's options (with NetworkOptions, whose pooling it leaves out, and its own seeded run)."""

from __future__ import annotations

from dataclasses import dataclass

from ..limits import check_number
from ..signature import check_record
from .common import RunOptions, option

#: Atlas memory: the estimated peak of one layer's batch (activations kept for the backward pass) may not pass this.
MEMORY_LIMIT_GIB = 4.0


@dataclass(frozen=True)
class AtlasOptions:
    """Which layers and channels the sheet shows, and how each channel's picture is drawn."""

    layers: str | None = option(None, "comma-separated layers, one row each (default: the model's style layers).")
    channels: str = option(
        "8", "how many channels per layer (the first N, or with photo the N most active), or a comma-separated list "
             "of channel numbers.")
    photo: str | None = option(
        None, "show, per layer, the channels that fire most on this photo, each beside the photo patch that excites "
              "it most.")
    size: int = option(128, "side of each channel's picture in pixels.", integer=True, positive=True)
    iterations: int = option(128, "optimisation steps per layer (all its channels at once, as one batch).",
                             integer=True, positive=True)
    lr: float = option(0.05, "learning rate of Adam on the Fourier spectrum.", positive=True)
    cache: bool = option(True, "reuse (and store) each channel's picture in the user cache directory.")
    memory_limit_gb: float = option(
        MEMORY_LIMIT_GIB, "refuse a layer whose batch would need more memory than this (estimated before any work).",
        positive=True)

    def __post_init__(self):
        check_record(self)


@dataclass(frozen=True)
class AtlasRunOptions(RunOptions):
    """An atlas's run always has a seed (None is refused): its tiles are cached by it."""

    seed: int = option(0, "random seed; a channel's picture depends only on it, the network, layer, channel, size, "
                          "iterations and lr.", integer=True, minimum=0)

    def __post_init__(self):
        object.__setattr__(self, "seed", check_number("seed", self.seed, integer=True, minimum=0))
