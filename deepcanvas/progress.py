"""What a run reports: a Progress per step, the clock behind its time left, and Ctrl-C as Interrupted."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run. ``image`` holds the best image so far (PIL), None if there was none yet."""

    def __init__(self, image):
        super().__init__("interrupted")
        self.image = image


@dataclass
class Progress:
    """One step of a run. Unpacks as ``(iteration, image)``, like the article's generator.

    The last one of a run has ``done=True``; its ``output`` holds whatever else the
    technique produced (e.g. the files a zoom sequence wrote).
    """

    iteration: int
    total: int
    loss: float
    parts: dict[str, float]
    stage: str
    tensor: torch.Tensor = field(repr=False)
    elapsed: float = 0.0
    done: bool = False
    output: Any = field(default=None, repr=False)
    eta: float | None = None  # seconds left (render's estimate; None until it has one)

    @property
    def image(self):
        from .imaging import tensor_to_image

        return tensor_to_image(self.tensor)

    @property
    def images(self):
        from .imaging import tensor_to_image

        return [tensor_to_image(t[None]) for t in self.tensor]

    def __iter__(self):
        yield self.iteration
        yield self.image


class Clock:
    """Elapsed time and time left over a whole run: the mean time per step since the first step (which
    also pays for warming up) times the steps left; at the first step, that step's own time."""

    def __init__(self, total: int, start: int = 0):
        self.t0 = time.perf_counter()
        self.total, self.start = total, start
        self.first: tuple[int, float] | None = None  # (iteration, elapsed) at the first step

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def stamp(self, p: Progress) -> Progress:
        left = max(0, self.total - p.iteration)
        if self.first is None:
            self.first = (p.iteration, p.elapsed)
            p.eta = p.elapsed / max(1, p.iteration - self.start) * left
        elif p.iteration > self.first[0]:
            p.eta = (p.elapsed - self.first[1]) / (p.iteration - self.first[0]) * left
        return p
