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
    """Elapsed time and time left over a whole run.

    Time left = the work left times the mean time of a unit of work within a stage, plus the stages left
    times the mean time a change of stage took beyond a step (building the next stage: loading an image, an
    optical flow; writing the last one's result). A step is one unit of work unless ``costs`` gives each
    stage's (steps, cost of a step), e.g. its pixels: a print's larger sizes cost as many times more a step
    as they have pixels, and counting steps alone would promise them the smaller sizes' pace. Both means are
    measured from the first step on: the time before it pays for loading and warming up. At the first
    step, that step's own time.
    """

    def __init__(self, total: int, start: int = 0, stages: int | None = None,
                 costs: list[tuple[int, float]] | None = None):
        self.t0 = time.perf_counter()
        self.total, self.start, self.stages, self.costs = total, start, stages, costs
        if costs is not None and stages is None:
            self.stages = len(costs)
        self.begun = 0  # stages begun
        self.last: tuple[int, float] | None = None  # (iteration, elapsed) at the latest step
        self.step_time, self.units_timed = 0.0, 0.0  # within stages
        self.change_time, self.changes_timed = 0.0, 0  # beyond a step, at a change of stage
        self.new_stage = False

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def begin_stage(self) -> None:
        self.begun += 1
        self.new_stage = self.last is not None

    def _cost(self) -> float:
        """The cost of a step of the running stage."""
        if not self.costs:
            return 1.0
        return float(self.costs[min(max(self.begun, 1), len(self.costs)) - 1][1])

    def _units_left(self, iteration: int) -> float:
        """The work left after ``iteration``: steps, each at its stage's cost."""
        if not self.costs:
            return float(max(0, self.total - iteration))
        left, first = 0.0, self.start
        for steps, cost in self.costs:
            left += max(0, min(steps, first + steps - iteration)) * cost
            first += steps
        return left

    def stamp(self, p: Progress) -> Progress:
        cost = self._cost()
        if self.last is None:
            p.eta = p.elapsed / (max(1, p.iteration - self.start) * cost) * self._units_left(p.iteration)
        elif p.iteration > self.last[0]:
            n, dt = p.iteration - self.last[0], p.elapsed - self.last[1]
            if self.new_stage:  # one step, plus the change of stage
                self.changes_timed += 1
                self.change_time += dt - n * cost * self._per_unit(dt / (n * cost))
            else:
                self.step_time += dt
                self.units_timed += n * cost
            per_change = self.change_time / self.changes_timed if self.changes_timed else 0.0
            changes_left = max(0, self.stages - self.begun) if self.stages is not None else 0
            p.eta = (self._per_unit(dt / (n * cost)) * self._units_left(p.iteration)
                     + max(0.0, per_change) * changes_left)
        self.new_stage = False
        self.last = (p.iteration, p.elapsed)
        return p

    def _per_unit(self, fallback: float) -> float:
        return self.step_time / self.units_timed if self.units_timed else fallback
