"""The objective algebra: :class:`Objective`, weighted :class:`Sum` s of them, and the scaled MSE they share.

An objective maps ``(activations, image)`` to a scalar **to minimise**; things to maximise (a class score,
a layer's energy) are negated, once, in their own class. ``a + b`` and ``3 * a`` build sums, and
``parts()`` reports each named term so progress bars can show "content 0.41 style 1.2 tv 0.03".
"""

from __future__ import annotations

from collections import defaultdict

import torch

from ..errors import DeepCanvasError
from ..tiling import Tile


class Objective:
    """A loss term. Most are sums over positions: ``partial`` gives the sums over one tile's core and
    ``from_totals`` turns the totals into the loss, which lets tiling.py compute exact tiled gradients."""

    name = "objective"
    layers: frozenset[str] = frozenset()

    def loss(self, acts: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        """The whole image's loss: the tiled form over one tile that is the whole image."""
        return self.from_totals(self.partial(acts, image, Tile()))

    def terms(self) -> list[tuple[float, "Objective"]]:
        return [(1.0, self)]

    #: True: ``partial`` gives pieces (positions along the last dimension) that the tiles' pieces are concatenated
    #: with, not added to: a loss of the multiset of positions' values (sliced Wasserstein's sorted projections).
    gathers = False

    def start_step(self, image: torch.Tensor) -> None:
        """A tiled evaluation of the whole ``image`` begins (an objective that draws at random draws once here)."""

    def partial(self, acts, image, tile) -> list[torch.Tensor]:
        """Sums over the positions of ``tile``'s core (a :class:`~deepcanvas.tiling.Tile`) that
        ``from_totals`` turns into the loss."""
        raise DeepCanvasError(f"the {self.name} objective cannot be computed in tiles; use a smaller image")

    def from_totals(self, totals: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def parts(self, acts, image) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = defaultdict(lambda: 0)
        for w, o in self.terms():
            out[o.name] = out[o.name] + w * o.loss(acts, image)
        return dict(out)

    def __call__(self, acts, image) -> torch.Tensor:
        return sum(w * o.loss(acts, image) for w, o in self.terms())

    def __add__(self, other: "Objective") -> "Objective":
        return Sum(self.terms() + other.terms())

    def __mul__(self, k: float) -> "Objective":
        return Sum([(k * w, o) for w, o in self.terms()])

    __rmul__ = __mul__

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-other)


class Sum(Objective):
    def __init__(self, terms: list[tuple[float, Objective]]):
        self._terms = terms
        self.layers = frozenset().union(*(o.layers for _, o in terms)) if terms else frozenset()

    def terms(self):
        return list(self._terms)


def scaled_mse(x: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """MSE scaled so that its gradient has an L1 norm of about one.

    sum(d^2) / sum(|d|) is the typical size of the difference; its gradient is
    well-conditioned whatever the layer's scale, so per-layer weights mean what
    they say and one learning rate suits every layer (after Crowson's
    style-transfer-pytorch).
    """
    d = x - target
    return d.pow(2).sum() / (d.abs().sum() + eps)
