"""Losses, as small pieces that add with weights.

An objective maps ``(activations, image)`` to a scalar **to minimise**; ``a + b`` and ``3 * a`` build sums
(:mod:`.base`). The terms, by family:

- :mod:`.features`: Content, Style and FeatureDistance pull features (or their Gram matrices, :mod:`.gram`)
  toward a target's; :mod:`.swd`: the sliced-Wasserstein style loss;
- :mod:`.activations`: LayerEnergy, GuideMatch, ClassScore, Channel, Neuron excite the network;
- :mod:`.priors`: TotalVariation, L2, AlphaNorm, ColourPrior, OutOfRange act on the pixels;
- :mod:`.temporal`: video's Temporal term; :mod:`.masks`: the Mask that limits a term to a region.
"""

from .activations import Channel, ClassScore, GuideMatch, LayerEnergy, Neuron
from .base import Objective, Sum, scaled_mse
from .features import CoarseContent, Content, FeatureDistance, Style
from .gram import gram, masked_gram, tiled_grams
from .masks import Mask, layer_stride
from .priors import L2, AlphaNorm, ColourPrior, OutOfRange, TotalVariation
from .swd import SlicedWasserstein, interpolate_table, random_directions, table_at, weighted_quantiles
from .temporal import Temporal

__all__ = [
    "AlphaNorm", "Channel", "ClassScore", "CoarseContent", "ColourPrior", "Content", "FeatureDistance", "GuideMatch",
    "L2", "LayerEnergy", "Mask", "Neuron", "Objective", "OutOfRange", "SlicedWasserstein", "Style", "Sum", "Temporal",
    "TotalVariation", "gram", "interpolate_table", "layer_stride", "masked_gram", "random_directions", "scaled_mse",
    "table_at", "tiled_grams", "weighted_quantiles",
]
