"""The one loop every technique runs, and the stages it is run in.

    param --image--> transforms --> network --> named activations --> objective
      ^                                                                   |
      +------------------- optimizer step <------ backward <--------------+

A :class:`Stage` is one stretch of that loop: a parameterisation, an objective,
random transforms, a number of steps, an optimizer with a learning-rate
schedule, and hooks. A run is a list of stages (style transfer's scales,
DeepDream's octaves, a zoom's frames, inversion's layers, an atlas's layers, a
batch's images, a video's frames), each built from the previous stage's
result, or stretches run elsewhere (:class:`Elsewhere`: a Ray pool) that report
their steps back. :func:`render` runs them: it counts progress and time over
the whole run, turns Ctrl-C into :class:`Interrupted` carrying the best image
so far, tiles big images (with transforms too) and yields the one final
Progress. A technique only builds its stages.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Iterable, Iterator, Union

import torch

from . import transforms as T
from .errors import DeepCanvasError
from .objectives import Objective
from .optimizers import make_optimizer
from .param import Param
from .precision import LossScale, autocast_for, resolve_precision
from .progress import Clock, Interrupted, Progress
from .tiling import tiled_backward


class Renderer:
    """Optimise ``param`` so that ``objective`` on ``net``'s activations falls (one stage's loop).

    tile: if set and the image is larger, gradients are computed tile by tile
    (memory bounded by the tile; see tiling.py), each tile seeing
    ``tile_margin`` pixels of context around its core. Random transforms apply
    to the whole image first; the tiles are cut from the transformed image and
    its gradient flows back through the transform.
    lr_schedule: the learning rate's factor as a function of the fraction of
    the steps done (0 at the first step).
    keep_best: keep the lowest-loss image seen (never the start), else the latest.
    """

    def __init__(self, net, objective: Objective, param: Param, *, optimizer: str = "adam", lr: float = 0.02,
                 betas=(0.9, 0.999), eps: float = 1e-8, transform: T.Transform | None = None,
                 keep_best: bool = True, tile: int | None = None, tile_margin: int = 64,
                 hooks: list[Callable[[int, Param], None]] | None = None, precision: str = "auto",
                 rng: random.Random | None = None, line_search: bool = True, eps_rel: float = 0.0,
                 lr_schedule: Callable[[float], float] | None = None):
        self.net, self.objective, self.param = net, objective, param
        self.layers = sorted(objective.layers)
        net.check_layers(self.layers)
        self.opt = make_optimizer(optimizer, param.parameters(), lr, betas=betas, eps=eps, line_search=line_search,
                                  eps_rel=eps_rel)
        self.lr, self.lr_schedule = lr, lr_schedule
        self.transform = transform
        self.keep_best = keep_best
        self.tile, self.tile_margin = tile, tile_margin
        self.hooks = hooks or []
        device = next(net.parameters()).device
        precision = resolve_precision(device, precision)  # once, not per forward; rejects unknown names
        self.loss_scale = LossScale(precision == "fp16")
        self.autocast = lambda: autocast_for(device, precision)
        self.rng = rng or random.Random()
        self.best_loss = math.inf
        self.best: torch.Tensor | None = None
        self.last_loss = math.nan
        # keep_best never keeps the starting image: the first evaluation is the init itself, whose loss can be the
        # lowest (style weight 0, or a loss that rises before it falls), and returning it would mean nothing ran.
        self._evaluated_start = False
        self.last_parts: dict[str, float] = {}
        # L-BFGS re-evaluates, at the start of each step, the point its line search ended on: remember
        # the last few evaluations and answer those from memory (only for a deterministic loss).
        self._remember = isinstance(self.opt, torch.optim.LBFGS) and transform is None
        self._evals: list[tuple[list[torch.Tensor], float, list[torch.Tensor], dict[str, float]]] = []

    # -- one evaluation --------------------------------------------------------
    def _forward_loss(self, img: torch.Tensor):
        x = self.transform(img) if self.transform else img
        with self.autocast():
            acts = self.net(x, self.layers)
        parts = self.objective.parts(acts, img)
        return sum(parts.values()), parts

    def _tiled_backward(self, img: torch.Tensor):
        def forward(pixels):
            with self.autocast():
                return self.net(pixels, self.layers)

        # The tiles see the transformed image (and so do pixel-space terms such as TV): the transform is
        # differentiable, so tiled_backward's gradient flows back through it to the parameters.
        x = self.transform(img) if self.transform else img
        return tiled_backward(x, self.objective.terms(), forward, tile=self.tile, margin=self.tile_margin,
                              rng=self.rng, grad_scale=self.loss_scale.value)

    def _recall(self) -> bool:
        params = self.param.parameters()
        for saved, total, grads, parts in self._evals:
            if all(torch.equal(a, b) for a, b in zip(saved, params)):
                for p, g in zip(params, grads):
                    p.grad = g.clone()
                self.last_loss, self.last_parts = total, parts
                return True
        return False

    def closure(self):
        if self._remember and self._recall():
            return torch.tensor(self.last_loss)
        self.opt.zero_grad(set_to_none=True)
        while True:  # once, unless fp16's gradients overflow (LossScale)
            img = self.param.image()
            if self.tile and max(img.shape[-2:]) > self.tile:
                total, parts = self._tiled_backward(img)
            else:
                loss, parts_t = self._forward_loss(img)
                (loss * self.loss_scale.value).backward()
                total, parts = float(loss.detach()), {k: float(v.detach()) for k, v in parts_t.items()}
            if not math.isfinite(total):
                raise DeepCanvasError("the loss became NaN or infinite; lower the learning rate or the loss weights")
            if self.loss_scale.unscale(self.param.parameters()):
                break
        self.last_parts = parts
        self.last_loss = total
        if self.keep_best and self._evaluated_start and total < self.best_loss:
            self.best_loss = total
            self.best = img.detach().clone()
        if self._remember:
            params = self.param.parameters()
            self._evals = self._evals[-2:] + [([p.detach().clone() for p in params], total,
                                               [p.grad.clone() for p in params], parts)]
        self._evaluated_start = True
        return torch.tensor(total)

    # -- the loop --------------------------------------------------------------
    def current(self) -> torch.Tensor:
        if self.keep_best and self.best is not None:
            return self.best
        with torch.no_grad():
            return self.param.image().detach().clone()

    def run(self, steps: int, *, start: int = 0, total: int | None = None, stage: str = "",
            t0: float | None = None) -> Iterator[Progress]:
        """Take ``steps`` optimizer steps, yielding a Progress after each (Ctrl-C propagates as is)."""
        total = total or steps
        t0 = t0 or time.perf_counter()
        for i in range(steps):
            if self.lr_schedule is not None:
                for group in self.opt.param_groups:
                    group["lr"] = self.lr * self.lr_schedule(i / steps)
            self.opt.step(self.closure)
            if self._remember:
                self._recall()  # report the point the line search accepted, not the last one it tried
            self.param.post_step()
            for hook in self.hooks:
                hook(i, self.param)
            with torch.no_grad():
                img = self.param.image().detach().clone()  # the param changes in place later
            yield Progress(start + i + 1, total, self.last_loss, dict(self.last_parts), stage, img,
                           time.perf_counter() - t0)


def cosine_decay(floor: float) -> Callable[[float], float]:
    """A learning-rate schedule from 1 down to ``floor`` along half a cosine."""
    return lambda frac: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * frac))


@dataclass
class Stage:
    """One stretch of the loop: ``steps`` optimizer steps on ``param`` against ``objective``.

    ``result`` maps the stage's image to what the run's image is at that point (a
    crop back to the output size, the dream's detail added to the full-size photo);
    it is what Ctrl-C keeps and what the next stage starts from. ``after`` is called
    with that result when the stage ends (e.g. to write a finished frame).
    """

    param: Param
    objective: Objective
    steps: int
    name: str = ""
    optimizer: str = "adam"
    lr: float = 0.02
    lr_schedule: Callable[[float], float] | None = None
    transforms: T.Transform | None = None
    hooks: list[Callable[[int, Param], None]] = field(default_factory=list)
    keep_best: bool = True
    tile: int | None = None
    tile_margin: int = 64
    optimizer_options: dict = field(default_factory=dict)  # betas, eps, eps_rel, line_search
    result: Callable[[torch.Tensor], torch.Tensor] | None = None
    after: Callable[[torch.Tensor], None] | None = None
    view: Callable[[torch.Tensor], torch.Tensor] | None = None  # what each step's Progress shows (e.g. a crop)
    rng: random.Random | None = None  # the tile grid's draws (default: the run's), e.g. per image of a batch


@dataclass
class Report:
    """Steps finished somewhere else (see :class:`Elsewhere`) since the previous report."""

    steps: int
    tensor: torch.Tensor | None = None  # what to show now (None: the last image shown)
    loss: float = math.nan
    stage: str = ""


@dataclass
class Elsewhere:
    """A stretch of the run done elsewhere, e.g. stages on a Ray pool, which reports its steps back.

    ``reports()`` is started when the run reaches it; it yields a :class:`Report` as steps finish and
    returns (StopIteration's value) the stretch's result image, or None to keep the last one shown.
    ``steps`` is what its reports add up to. Ctrl-C closes the generator (its ``finally`` stops the work).
    """

    steps: int
    reports: Callable[[], Iterator[Report]]
    name: str = ""


#: A stage, or a function that builds one from the previous stage's result (None for the first).
StageSpec = Union[Stage, Callable[[Union[torch.Tensor, None]], Stage], Elsewhere]


def drive(steps: Iterator[Progress], callback: Callable[[Progress], None] | None = None) -> Progress:
    """Run a ``*_steps`` generator to the end, calling ``callback`` on each step; return the last.

    Ctrl-C while the callback runs (not inside the generator) is thrown into the
    generator, so it too ends as :class:`Interrupted` carrying the best image.
    """
    last = None
    try:
        for last in steps:
            if callback is not None:
                callback(last)
    except KeyboardInterrupt as e:
        if isinstance(e, Interrupted):
            raise
        steps.throw(KeyboardInterrupt())
        raise
    if last is None:
        raise DeepCanvasError("nothing to do: the run had no steps")
    return last


def render(net, stages: Iterable[StageSpec], *, total: int | None = None, precision: str = "auto",
           rng: random.Random | None = None, finish: Callable[[list[torch.Tensor]], torch.Tensor] | None = None,
           output: Any = None, start: int = 0,
           costs: list[tuple[int, float]] | None = None) -> Generator[Progress, None, torch.Tensor]:
    """Run ``stages`` one after the other; yield a Progress per step, then one with ``done=True``.

    stages: Stage objects, builders of them, or :class:`Elsewhere` stretches; any iterable (read lazily).
    total: the steps of the whole run, for progress and time left (default: counted from the stages,
    which must then be a list of Stage or Elsewhere objects).
    finish: the run's final image from the stages' results (default: the last one). On Ctrl-C it is
    given the finished stages' results and the running one's best image. With ``finish``, a run
    without stages (everything cached) is allowed.
    output: attached to the final Progress (``Progress.output``), e.g. what the run wrote; a callable is
    called with the final image after the last stage.
    start: steps done before this run (a resumed batch counts on from its finished items); ``total``
    includes them.
    costs: each stage's (steps, relative cost of a step), e.g. its pixels, so the time left counts work
    rather than steps (default: every step costs the same).
    Returns the final image. Ctrl-C, in a step or thrown in at a yield by :func:`drive`, becomes
    :class:`Interrupted` carrying the best image so far.
    """
    if total is None:
        stages = list(stages)
        if not all(isinstance(s, (Stage, Elsewhere)) for s in stages):
            raise ValueError("render: give total= when stages are built on the way")
        total = start + sum(s.steps for s in stages)
    count = len(stages) if isinstance(stages, (list, tuple)) else None  # for the time left
    run = _Run(net, total, start, precision, rng or random.Random(), Clock(total, start, count, costs))
    final_image = finish or (lambda results: results[-1])
    try:
        for spec in stages:
            yield from run.elsewhere(spec) if isinstance(spec, Elsewhere) else run.stage(spec)
    except KeyboardInterrupt as e:
        if isinstance(e, Interrupted):
            raise
        raise run.interrupted(final_image) from None
    if not run.results and finish is None:
        raise DeepCanvasError("nothing to do: the run had no stages")
    final = final_image(run.results)
    if callable(output):
        output = output(final)
    end = max(total, run.done)
    yield Progress(end, end, run.loss, run.parts, "done", final, run.clock.elapsed(), done=True, output=output, eta=0.0)
    return final


class _Run:
    """The state of one :func:`render` call: steps done, the stages' results, the best image so far."""

    def __init__(self, net, total: int, start: int, precision: str, rng: random.Random, clock: Clock):
        self.net, self.total, self.precision, self.rng, self.clock = net, total, precision, rng, clock
        self.done, self.results = start, []
        self.prev: torch.Tensor | None = None  # the last finished stage's result
        self.running: Callable[[], torch.Tensor | None] | None = None  # the running stretch's best so far
        self.loss, self.parts = math.nan, {}  # the last stage's (losses at different sizes do not compare)

    def stage(self, spec) -> Iterator[Progress]:
        self.clock.begin_stage()
        stage = spec if isinstance(spec, Stage) else spec(self.prev)
        shaped = stage.result or (lambda img: img)
        renderer = Renderer(self.net, stage.objective, stage.param, optimizer=stage.optimizer, lr=stage.lr,
                            lr_schedule=stage.lr_schedule, transform=stage.transforms, keep_best=stage.keep_best,
                            tile=stage.tile, tile_margin=stage.tile_margin, hooks=stage.hooks,
                            precision=self.precision, rng=stage.rng or self.rng, **stage.optimizer_options)
        self.running = lambda: shaped(renderer.current().detach())
        for p in renderer.run(stage.steps, start=self.done, total=self.total, stage=stage.name, t0=self.clock.t0):
            if stage.view is not None:
                p.tensor = stage.view(p.tensor)
            yield self.clock.stamp(p)
        self.done += stage.steps
        self.running = None
        self.loss = renderer.best_loss if renderer.best is not None else renderer.last_loss
        self.parts = dict(renderer.last_parts)
        self._finished(shaped(renderer.current().detach()))
        if stage.after is not None:
            stage.after(self.prev)

    def elsewhere(self, spec: Elsewhere) -> Iterator[Progress]:
        self.clock.begin_stage()
        shown = self.prev
        self.running = lambda: shown
        reports = spec.reports()
        try:
            while True:
                try:
                    r = next(reports)
                except StopIteration as stop:
                    result = stop.value if stop.value is not None else shown
                    break
                self.done += r.steps
                shown = r.tensor if r.tensor is not None else shown
                self.loss = r.loss
                if shown is not None:  # nothing to show yet: the steps count at the next report
                    yield self.clock.stamp(Progress(self.done, self.total, r.loss, {}, r.stage or spec.name, shown,
                                                    self.clock.elapsed()))
        finally:
            reports.close()  # on Ctrl-C too: it stops the work elsewhere
        if result is None:
            raise DeepCanvasError(f"{spec.name or 'a stretch run elsewhere'} gave no image")
        self.running, self.parts = None, {}
        self._finished(result)

    def _finished(self, result: torch.Tensor) -> None:
        self.prev = result
        self.results.append(result)

    def interrupted(self, finish) -> Interrupted:
        """Ctrl-C: the best image so far, from the finished stages and the running one's best."""
        from .imaging import tensor_to_image

        current = self.running() if self.running is not None else None
        if current is None and not self.results:
            return Interrupted(None)  # before the first image: nothing to keep
        best = finish(self.results + ([current] if current is not None else [])).clamp(0, 1)
        if best.shape[0] > 1:  # a batch: side by side in one picture
            best = torch.cat(list(best), dim=-1)[None]
        return Interrupted(tensor_to_image(best))
