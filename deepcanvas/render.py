"""The one loop every technique runs, and the stages it is run in.

    param --image--> transforms --> network --> named activations --> objective
      ^                                                                   |
      +------------------- optimizer step <------ backward <--------------+

A :class:`Stage` is one stretch of that loop: a parameterisation, an objective,
random transforms, a number of steps, an optimizer with a learning-rate
schedule, and hooks. A run is a list of stages (style transfer's scales,
DeepDream's octaves, a zoom's frames, inversion's layers), each built from the
previous stage's result. :func:`render` runs them: it counts progress over the
whole run, turns Ctrl-C into :class:`Interrupted` carrying the best image so
far, tiles big images (with transforms too) and yields the final result.
A technique only builds its stages.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Iterator, Sequence, Union

import torch

from . import transforms as T
from .errors import DeepCanvasError
from .objectives import Objective
from .param import Param
from .tiling import tiled_backward


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run. ``image`` holds the best image so far (PIL)."""

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


def _evaluate(closure):
    """The loss from an optimizer's closure, which needs gradients inside ``step``'s no_grad."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class NormalizedAscent(torch.optim.Optimizer):
    """DeepDream's step: move by ``lr`` times the gradient divided by its mean magnitude.

    (The objectives are negated for minimising, so this is a descent step here.)
    """

    def __init__(self, params, lr: float = 0.01):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        loss = _evaluate(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    g = p.grad
                    p.sub_(group["lr"] * g / (g.abs().mean() + 1e-8))
        return loss


class RelativeEpsAdam(torch.optim.Adam):
    """Adam whose epsilon is ``eps_rel`` times the mean of sqrt(v_hat) over each parameter tensor.

    Plain Adam divides every pixel's gradient by its own RMS, so a pixel whose gradient is a thousand times
    smaller than the image's typical one (a flat sky that the deep layers barely see) still moves by about
    ``lr`` each step, in directions set by the network's 2-pixel pooling grid: a woven checker in flat areas,
    even with the content loss alone (tubingen at 256 px, 30 steps: mean |Laplacian| 10.9 in the flattest
    15% of the photo, against the photo's 1.55). An epsilon tied to the image's own gradient scale keeps
    Adam's per-pixel normalisation where the gradients are large and makes tiny gradients take tiny steps
    (1.0 as above with ``eps_rel`` 1; 5.1 with 0.1). Any scaling of the loss leaves it unchanged.
    """

    def __init__(self, params, lr: float = 0.02, betas=(0.9, 0.999), eps_rel: float = 0.1):
        super().__init__(params, lr=lr, betas=betas)
        self.eps_rel = eps_rel

    @torch.no_grad()
    def step(self, closure=None):
        loss = _evaluate(closure)
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["step"], st["m"], st["v"] = 0, torch.zeros_like(p), torch.zeros_like(p)
                st["step"] += 1
                t = st["step"]
                st["m"].mul_(b1).add_(p.grad, alpha=1 - b1)
                st["v"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                root = (st["v"] / (1 - b2 ** t)).sqrt()
                denom = root + (self.eps_rel * root.mean() + 1e-30)
                p.addcdiv_(st["m"], denom, value=-group["lr"] / (1 - b1 ** t))
        return loss


OPTIMIZERS = ("adam", "lbfgs", "sgd", "normalized")


def make_optimizer(name: str, params, lr: float, *, betas=(0.9, 0.999), eps: float = 1e-8,
                   history: int = 100, line_search: bool = True, eps_rel: float = 0.0) -> torch.optim.Optimizer:
    if name == "adam":
        if eps_rel > 0:  # RelativeEpsAdam: tiny gradients take tiny steps (style transfer's default)
            return RelativeEpsAdam(params, lr=lr, betas=betas, eps_rel=eps_rel)
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps)
    if name == "lbfgs":
        # One iteration per step(); tolerances off so it never quits early. Without a line search (as in
        # neural-style-pt) its steps can overshoot by orders of magnitude from a smooth start (a content
        # image) and then stall; the Renderer answers the search's repeated evaluations from memory.
        return torch.optim.LBFGS(params, lr=lr, max_iter=1, max_eval=25 if line_search else 1,
                                 history_size=history, line_search_fn="strong_wolfe" if line_search else None,
                                 tolerance_grad=-1, tolerance_change=-1)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "normalized":
        return NormalizedAscent(params, lr=lr)
    raise DeepCanvasError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")


def resolve_precision(device: torch.device, precision: str) -> str:
    """'auto': bf16 on CUDA cards that have it, fp16 on older ones (Turing, e.g. a T4), fp32 elsewhere."""
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"
    if precision not in ("fp32", "bf16", "fp16"):
        raise DeepCanvasError(f"unknown precision {precision!r}; valid: auto, fp32, bf16, fp16")
    return precision


def autocast_for(device: torch.device, precision: str):
    """Mixed precision for the network's convolutions; objectives cast to fp32 themselves."""
    precision = resolve_precision(device, precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


class LossScale:
    """Dynamic loss scaling for fp16, whose small gradients underflow to zero.

    With the default losses at 256 px, 15% of the pixel gradients came out exactly 0 in fp16 (none
    with the loss scaled by 4096). The backward pass runs on loss x scale and the gradients are
    divided by it after; on an overflow the scale halves and the evaluation is redone, after
    ``growth_interval`` clean ones it doubles. torch.amp.GradScaler does this for optimizers it
    steps itself, which L-BFGS's closure rules out. bf16 has fp32's range and needs none of it.
    """

    def __init__(self, enabled: bool, init: float = 2.0 ** 16, growth_interval: int = 200):
        self.enabled, self.value, self.growth_interval = enabled, (init if enabled else 1.0), growth_interval
        self._clean = 0

    def unscale(self, params: list[torch.Tensor]) -> bool:
        """Divide the gradients by the scale; False (gradients cleared, scale halved) if they overflowed."""
        if not self.enabled:
            return True
        for p in params:
            if p.grad is not None:
                p.grad.div_(self.value)
        if all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in params):
            self._clean += 1
            if self._clean >= self.growth_interval:
                self.value, self._clean = min(self.value * 2, 2.0 ** 24), 0
            return True
        if self.value <= 1:
            raise DeepCanvasError("the gradients overflowed in fp16; use --precision bf16 or fp32")
        self.value, self._clean = self.value / 2, 0
        for p in params:
            p.grad = None
        return False


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
    it is what Ctrl-C keeps and what the next stage starts from. ``after`` is called with that result when the stage ends (e.g. to
    write a finished frame).
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


#: A stage, or a function that builds one from the previous stage's result (None for the first).
StageSpec = Union[Stage, Callable[[Union[torch.Tensor, None]], Stage]]


def render(net, stages: Sequence[StageSpec], *, total: int | None = None, precision: str = "auto",
           rng: random.Random | None = None, finish: Callable[[list[torch.Tensor]], torch.Tensor] | None = None,
           output: Any = None) -> Generator[Progress, None, torch.Tensor]:
    """Run ``stages`` one after the other; yield a Progress per step, then one with ``done=True``.

    total: the steps of the whole run, for progress and time left (default: counted from the stages,
    which must then be Stage objects, not builders).
    finish: the run's final image from the stages' results (default: the last one); also applied to
    the image Ctrl-C keeps.
    output: attached to the final Progress (``Progress.output``), e.g. what the run wrote.
    Returns the final image. Ctrl-C, in a step or thrown in at a yield by :func:`drive`, becomes
    :class:`Interrupted` carrying the current stage's best image (its ``result``).
    """
    from .imaging import tensor_to_image

    if total is None:
        if not all(isinstance(s, Stage) for s in stages):
            raise ValueError("render: give total= when stages are built on the way")
        total = sum(s.steps for s in stages)
    rng = rng or random.Random()
    finish = finish or (lambda rs: rs[-1])
    t0 = time.perf_counter()
    done, results, prev = 0, [], None
    renderer: Renderer | None = None  # the running stage's, None between stages

    try:
        for spec in stages:
            renderer = None
            stage = spec if isinstance(spec, Stage) else spec(prev)
            shaped = stage.result or (lambda img: img)
            renderer = Renderer(net, stage.objective, stage.param, optimizer=stage.optimizer, lr=stage.lr,
                                lr_schedule=stage.lr_schedule, transform=stage.transforms, keep_best=stage.keep_best,
                                tile=stage.tile, tile_margin=stage.tile_margin, hooks=stage.hooks,
                                precision=precision, rng=rng, **stage.optimizer_options)
            for p in renderer.run(stage.steps, start=done, total=total, stage=stage.name, t0=t0):
                if stage.view is not None:
                    p.tensor = stage.view(p.tensor)
                yield p
            done += stage.steps
            prev = shaped(renderer.current().detach())
            results.append(prev)
            if stage.after is not None:
                stage.after(prev)
    except KeyboardInterrupt as e:
        if isinstance(e, Interrupted):
            raise
        if renderer is not None:
            best = shaped(renderer.current().detach())
        elif prev is not None:  # between stages: the last finished one
            best = prev
        else:
            raise
        best = finish([best]).clamp(0, 1)
        if best.shape[0] > 1:  # a batch: side by side in one picture
            best = torch.cat(list(best), dim=-1)[None]
        raise Interrupted(tensor_to_image(best)) from None
    if not results:
        raise DeepCanvasError("nothing to do: the run had no stages")
    final = finish(results)
    # Losses at different sizes do not compare: the last stage's is the run's.
    loss = renderer.best_loss if renderer.best is not None else renderer.last_loss
    yield Progress(total, total, loss, dict(renderer.last_parts), "done", final, time.perf_counter() - t0,
                   done=True, output=output)
    return final
