"""Class visualization: an image the classifier scores as a class (Simonyan et al. 2013; Olah et al. 2017).

Two configurations of the one loop:

* ``param='fourier'`` (default), lucid's recipe: the image lives in a scaled Fourier basis with
  decorrelated colour, random pad / jitter / scale / rotate / zooming-crop transforms come before every
  step, and Adam ascends the class logit. The spectrum falls off more steeply than lucid's (larger, whole
  objects) and its top is tapered (``cutoff``, :func:`spectral_taper`) while the step decays to
  ``lr_floor`` of itself: together they keep out the dotted 2-3 px texture a classifier's gradient
  favours (docs/tuning.md). ``tv_weight`` adds an optional TV penalty.
* ``param='pixel'``, the seed article's recipe: raw pixels from faint noise, plain gradient ascent of the
  class score with L2 decay, a random roll every step, a Gaussian blur every ``blur_every`` steps, clipping.

Several classes make a batch, item ``i`` ascending class ``i``; an ``objective`` string adds channel and
neuron terms on any layer to every item, or stands alone (:mod:`.classviz_targets` reads both).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterator

import torch

from .. import models
from .. import transforms as T
from ..errors import DeepCanvasError
from ..objectives import L2, TotalVariation
from ..options import ClassvizOptions, NetworkOptions, RunOptions
from ..param import FourierParam, PixelParam
from ..render import Progress, Stage, cosine_decay, drive, render
from ..signature import flat_options
from .common import begin, network_of, check_layer_names, seed_everything
from .classviz_targets import (check_objective_terms, parse_objective, require_classifier, resolve_classes,
                               target_objective)

# Defaults chosen on EfficientNet-Lite0 (module docstring; docs/tuning.md).
DEFAULTS = {
    "fourier": {"lr": 0.1, "l2_weight": 0.0, "lr_floor": 0.3},
    "pixel": {"lr": 0.01, "l2_weight": 0.01, "lr_floor": 1.0},
}


def spectral_taper(height: int, width: int, cutoff: float, order: float = 4.0) -> torch.Tensor:
    """Butterworth gain ``1 / (1 + (f / cutoff)^order)`` on the rfft grid (f in cycles per pixel; 0: all ones).

    Multiplied into a Fourier image's spectrum scale it takes the near-Nyquist
    frequencies (period 2-3 px, the dotted texture a classifier's gradient loves)
    out of reach of the optimiser while leaving the frequencies below ``cutoff``
    nearly as they were: ``cutoff`` 0.4 (the default) keeps 87% of the amplitude
    at 0.25 cycles/px and 29% at Nyquist.
    """
    fy = torch.fft.fftfreq(height)[:, None]
    fx = torch.fft.rfftfreq(width)[None, :]
    if cutoff <= 0:
        return torch.ones(fy.shape[0], fx.shape[1])
    f = (fx * fx + fy * fy).sqrt()
    return 1.0 / (1.0 + (f / cutoff) ** order)


def _fourier(batch: int, size: int, decay_power: float, decorrelate: bool, dev, gen,
             cutoff: float = 0.0) -> FourierParam:
    """FourierParam whose spectrum scale has the RMS of lucid's 1/f one whatever ``decay_power`` and ``cutoff``.

    A steeper falloff (or a taper, :func:`spectral_taper`) then reshapes the
    spectrum without changing how far one Adam step moves the image, so one
    learning rate suits every falloff.
    """
    p = FourierParam(batch, size, size, decay_power=decay_power, decorrelate=decorrelate, device=dev,
                     generator=gen)
    if cutoff > 0:
        p.scale = p.scale * spectral_taper(size, size, cutoff).to(p.scale)[None, None, :, :, None]
    if decay_power != 1.0 or cutoff > 0:
        fy = torch.fft.fftfreq(size)[:, None]
        fx = torch.fft.rfftfreq(size)[None, :]
        ref = 1.0 / torch.clamp((fx * fx + fy * fy).sqrt(), min=1.0 / size)
        p.scale = p.scale * float(ref.pow(2).mean().sqrt() / p.scale.pow(2).mean().sqrt())
    return p


# -- the technique --------------------------------------------------------------------------------
@flat_options(defaults={"model": "efficientnet-lite0"}, omit=("pooling",),
              helps={"model": "classifier from `deepcanvas models`, your own (path/to/file.py:function, timm:NAME, "
                               "torchvision:NAME), or any torch.nn.Module object."},
              options=ClassvizOptions, run=RunOptions, network=NetworkOptions)
def visualize_class_steps(classes=None, *, options: ClassvizOptions, run: RunOptions,
                          network: NetworkOptions) -> Iterator[Progress]:
    """Yield a Progress after every iteration; the last one has ``done=True`` and the image(s).

    Args:
        classes: ImageNet class index or name, or several (a list or "goldfinch,volcano"): one image each.
    """
    # The param's own defaults for what was not given.
    options = dataclasses.replace(options, **{k: v for k, v in DEFAULTS[options.param].items()
                                              if getattr(options, k) is None})
    size = options.size
    jitter = min(options.jitter, size // 4)  # tiny images: keep most of the image in view
    info, dev = begin(network.model, device=network.device, precision=network.precision,
                     weights=network.weights, mean=network.mean, std=network.std)
    class_layer = info.defaults.get("class_layer")
    if classes not in (None, "", []):
        require_classifier(info)
    names = info.classes() if info.classes else None
    indices = resolve_classes(classes, names)
    terms = parse_objective(options.objective) if options.objective not in (None, "") else []
    if not indices and not terms:
        raise DeepCanvasError("nothing to visualise: give a class (index or name) or an objective")
    check_layer_names(info, ([class_layer] if indices else []) + [t[1] for t in terms], maps=False)

    rng = seed_everything(run.seed)
    net = network_of(network, dev, pooling=False)
    if terms:
        check_objective_terms(net, terms, size)
    batch = max(1, len(indices))

    objective = target_objective(indices, terms, class_layer)
    if options.l2_weight > 0:
        # The seed's decay, summed over pixels: its gradient is 2 * l2_weight * (x - 1/2) at every pixel.
        objective = objective + options.l2_weight * batch * 3 * size * size * L2()

    gen = torch.Generator().manual_seed(rng.randrange(2**31))
    hooks = []
    if options.param == "fourier":
        p = _fourier(batch, size, options.decay_power, options.decorrelate, dev, gen, options.cutoff)
        transform = T.robust(jitter, options.scale, options.rotate, options.crop, rng)
        optimizer = "adam"
    else:
        # The seed's start: faint noise around grey.
        init = 0.5 + 0.1 * torch.randn(batch, 3, size, size, generator=gen)
        p = PixelParam(init.to(dev))
        transform = T.random_roll(jitter, rng)
        # Gradient steps of a fixed mean size (the gradient over its mean magnitude): the
        # seed's X += lr * dX, made independent of the network's and the image's scale.
        optimizer = "normalized"
        every, sigma = options.blur_every, options.blur_sigma
        if every > 0 and sigma > 0:
            def blur(i: int, prm) -> None:
                if (i + 1) % every == 0:
                    with torch.no_grad():
                        prm.set_image(T.gaussian_blur(prm.pixels, sigma))

            hooks.append(blur)

    if options.tv_weight > 0:
        objective = objective + options.tv_weight * batch * TotalVariation("l2")
    stage = Stage(p, objective, options.iterations, name=f"{options.param} {size} px", optimizer=optimizer,
                  lr=options.lr, lr_schedule=cosine_decay(options.lr_floor) if options.lr_floor < 1 else None,
                  transforms=transform, hooks=hooks, keep_best=False)
    yield from render(net, [stage], precision=network.precision, rng=rng)


def visualize_class(classes=None, *, callback: Callable[[Progress], None] | None = None, **kwargs):
    """Run class visualization; return a PIL image, or a list of images for several classes.

    See :func:`visualize_class_steps` for the arguments.
    """
    last = drive(visualize_class_steps(classes, **kwargs), callback)
    images = last.images
    return images[0] if len(images) == 1 else images
