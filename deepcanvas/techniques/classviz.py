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

from typing import Callable, Iterator, Literal

import torch

from .. import models
from .. import transforms as T
from ..errors import DeepCanvasError
from ..limits import check_number
from ..objectives import L2, TotalVariation
from ..param import FourierParam, PixelParam
from ..render import Progress, Stage, cosine_decay, drive, render
from ..signature import check_choice
from .common import Precision, begin, check_layer_names, longest_side, seed_everything
from .classviz_targets import (check_objective_terms, parse_objective, require_classifier, resolve_classes,
                               target_objective)

ParamKind = Literal["fourier", "pixel"]

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
def visualize_class_steps(
    classes=None,
    *,
    param: ParamKind = "fourier",
    size: int = 224,
    iterations: int = 512,
    lr: float | None = None,
    model: str | models.LayeredNet = "efficientnet-lite0",
    weights: str | None = None,
    objective: str | None = None,
    l2_weight: float | None = None,
    blur_every: int = 10,
    blur_sigma: float = 0.5,
    jitter: int = 16,
    scale: float = 0.25,
    rotate: float = 20.0,
    crop: float = 0.5,
    decay_power: float = 1.35,
    decorrelate: bool = True,
    lr_floor: float | None = None,
    tv_weight: float = 0.0,
    cutoff: float = 0.4,
    seed: int | None = None,
    device: str = "auto",
    precision: Precision = "auto",
) -> Iterator[Progress]:
    """Yield a Progress after every iteration; the last one has ``done=True`` and the image(s).

    Args:
        classes: ImageNet class index or name, or several (a list or "goldfinch,volcano"): one image each.
        param: fourier (lucid's decorrelated Fourier image and random transforms) or pixel (the seed's
            pixel ascent with jitter, periodic blur and clipping).
        size: width and height of the image in pixels.
        iterations: optimisation steps.
        lr: learning rate (default 0.1 for fourier's Adam; 0.01, the mean pixel change per step, for pixel).
        model: classifier from `deepcanvas models`, or a network object (models.LayeredNet).
        weights: local checkpoint for the model's architecture.
        objective: channel/neuron terms on any layer added to each image's class term (or alone when no
            class is given), e.g. "block10:37", "neuron:block10:37", "block10:37*2+logits:1".
        l2_weight: the seed's L2 decay: each step's gradient pulls every pixel toward grey by
            2 * l2_weight * (x - 0.5) (default 0 for fourier, 0.01 for pixel).
        blur_every: pixel only: blur the image every this many steps (0: never).
        blur_sigma: pixel only: standard deviation of that Gaussian blur in pixels.
        jitter: largest random shift in pixels before each step.
        scale: fourier only: random rescaling of up to this fraction each step.
        rotate: fourier only: random rotation of up to this many degrees each step.
        crop: fourier only: each step the network sees a random crop of at least this share of the area,
            zoomed back to full size (1: no cropping).
        decay_power: fourier only: the spectrum's falloff 1/f^p (lucid's 1; higher: smoother, larger shapes).
        decorrelate: fourier only: optimise in ImageNet's decorrelated colour space.
        lr_floor: the learning rate falls along half a cosine to this share of lr by the last step (1: constant;
            default 0.3 for fourier, 1 for pixel).
        tv_weight: weight of a total-variation penalty on the image (0: none).
        cutoff: fourier only: taper the spectrum above this frequency in cycles per pixel (Butterworth, order 4;
            0: none, 0.5: Nyquist), which keeps the dotted near-Nyquist texture out of the image.
        seed: random seed for reproducible results.
        device: auto, cpu, cuda or mps.
        precision: auto (bf16 on CUDA, fp32 elsewhere), fp32, bf16 or fp16.
    """
    # -- check everything before any slow work -------------------------------------
    check_choice("param", param, ParamKind)
    size = longest_side(size)
    iterations = int(check_number("iterations", iterations, integer=True, positive=True))
    d = DEFAULTS[param]
    lr = check_number("lr", d["lr"] if lr is None else lr, positive=True)
    l2_weight = check_number("l2_weight", d["l2_weight"] if l2_weight is None else l2_weight, minimum=0)
    blur_every = int(check_number("blur_every", blur_every, integer=True, minimum=0))
    blur_sigma = check_number("blur_sigma", blur_sigma, minimum=0)
    jitter = int(check_number("jitter", jitter, integer=True, minimum=0))
    scale = check_number("scale", scale, minimum=0)
    if scale >= 1:
        raise DeepCanvasError(f"scale must be below 1, got {scale!r}")
    rotate = check_number("rotate", rotate, minimum=0)
    crop = check_number("crop", crop, positive=True)
    if crop > 1:
        raise DeepCanvasError(f"crop must be at most 1, got {crop!r}")
    decay_power = check_number("decay_power", decay_power, minimum=0)
    lr_floor = check_number("lr_floor", d["lr_floor"] if lr_floor is None else lr_floor, minimum=0, maximum=1)
    tv_weight = check_number("tv_weight", tv_weight, minimum=0)
    cutoff = check_number("cutoff", cutoff, minimum=0, maximum=1)
    jitter = min(jitter, size // 4)  # tiny images: keep most of the image in view
    info, dev = begin(model, device=device, precision=precision)
    class_layer = info.defaults.get("class_layer")
    if classes not in (None, "", []):
        require_classifier(info)
    names = info.classes() if info.classes else None
    indices = resolve_classes(classes, names)
    terms = parse_objective(objective) if objective not in (None, "") else []
    if not indices and not terms:
        raise DeepCanvasError("nothing to visualise: give a class (index or name) or an objective")
    check_layer_names(info, ([class_layer] if indices else []) + [t[1] for t in terms])

    rng = seed_everything(seed)
    net = models.load_model(model, weights=weights, device=dev)
    if terms:
        check_objective_terms(net, terms, size)
    batch = max(1, len(indices))

    objective_ = target_objective(indices, terms, class_layer)
    if l2_weight > 0:
        # The seed's decay, summed over pixels: its gradient is 2 * l2_weight * (x - 1/2) at every pixel.
        objective_ = objective_ + l2_weight * batch * 3 * size * size * L2()

    gen = torch.Generator().manual_seed(rng.randrange(2**31))
    hooks = []
    if param == "fourier":
        p = _fourier(batch, size, decay_power, decorrelate, dev, gen, cutoff)
        transform = T.robust(jitter, scale, rotate, crop, rng)
        optimizer = "adam"
    else:
        # The seed's start: faint noise around grey.
        init = 0.5 + 0.1 * torch.randn(batch, 3, size, size, generator=gen)
        p = PixelParam(init.to(dev))
        transform = T.random_roll(jitter, rng)
        # Gradient steps of a fixed mean size (the gradient over its mean magnitude): the
        # seed's X += lr * dX, made independent of the network's and the image's scale.
        optimizer = "normalized"
        if blur_every > 0 and blur_sigma > 0:
            def blur(i: int, prm) -> None:
                if (i + 1) % blur_every == 0:
                    with torch.no_grad():
                        prm.set_image(T.gaussian_blur(prm.pixels, blur_sigma))

            hooks.append(blur)

    if tv_weight > 0:
        objective_ = objective_ + tv_weight * batch * TotalVariation("l2")
    stage = Stage(p, objective_, iterations, name=f"{param} {size} px", optimizer=optimizer, lr=lr,
                  lr_schedule=cosine_decay(lr_floor) if lr_floor < 1 else None,
                  transforms=transform, hooks=hooks, keep_best=False)
    yield from render(net, [stage], precision=precision, rng=rng)


def visualize_class(classes=None, *, callback: Callable[[Progress], None] | None = None, **kwargs):
    """Run class visualization; return a PIL image, or a list of images for several classes.

    See :func:`visualize_class_steps` for the arguments.
    """
    last = drive(visualize_class_steps(classes, **kwargs), callback)
    images = last.images
    return images[0] if len(images) == 1 else images
