"""The optimizers a stage can step with: Adam (plain or with a relative epsilon), L-BFGS, SGD and DeepDream's
normalised gradient step."""

from __future__ import annotations

import torch

from .errors import DeepCanvasError


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

    Plain Adam moves a pixel with a tiny gradient (a flat sky the deep layers barely see) by about ``lr``
    a step, in directions set by the network's pooling grid: a woven checker in flat areas. An epsilon tied
    to the image's own gradient scale keeps Adam's per-pixel normalisation where gradients are large and
    makes tiny gradients take tiny steps (docs/tuning.md has the figures). Scaling the loss changes nothing.
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
                # In place: one image-sized temporary, not three (a print's pixels are gigabytes).
                denom = st["v"].div(1 - b2 ** t).sqrt_()
                denom.add_(self.eps_rel * denom.mean() + 1e-30)
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
