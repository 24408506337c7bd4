"""Feature inversion (Mahendran & Vedaldi, "Understanding Deep Image Representations by Inverting Them", 2015).

Configuration of the one loop: an image from faint noise (optionally rolled at
random each step) and the objective

    ‖φ(x) − φ0‖² / ‖φ0‖²  +  λα · mean|2(x − ½)|^α  +  λTV · mean((∂x x)² + (∂y x)²)^(β/2)

where φ0 are the photo's features at one layer. The α-norm keeps pixels in
range, TV^β keeps the image smooth where the features say nothing. Their
weights are M&V's re-expressed for images in [0, 1]: the α-norm is measured
relative to half the range (M&V's B), and the TV weight grows with the layer's
depth, here as 2·sqrt(stride) (relu1_2: 2, relu3_3: 4, relu5_1: 8). Adam's step
decays along a cosine: big steps find the layout, small ones settle the detail.

The image is pixels by default; Fourier, pyramid and deep-image-prior parameterisations can be asked
for (docs/tuning.md compares them). Several layers are inverted one after the other, each from its own
noise.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import torch
from PIL import Image

from .. import models, sheet
from .. import transforms as T
from ..errors import DeepCanvasError
from ..objectives import AlphaNorm, ColourPrior, FeatureDistance, Sum, TotalVariation
from ..options import InvertOptions, NetworkOptions, RunOptions
from ..param import DIPParam, FourierParam, PixelParam, PyramidParam, resize
from ..render import Progress, Stage, cosine_decay, drive, render
from ..signature import flat_options
from .common import begin, network_of, check_layer_names, fit_size, layer_names, load_tensor, seed_everything
TV_BASE = 2.0  # default TV weight: TV_BASE * sqrt(the layer's stride), chosen by looking
LR_ADAM = 0.05  # 0.15 helped on the tuning photos and hurt on a photo held apart (docs/tuning.md)
LR_DIP = 0.01  # Adam on the deep image prior's weights (0.003 and 0.03 were no better)
ITERATIONS_SHALLOW = 600  # down to relu3_x on pixels: relu2_2's layout r 0.68 at 200 steps, 0.93 at 600
ITERATIONS_DEEP = 300  # relu4_x on, and dip: 600 steps on pixels bought the deep layers nothing
COLOUR_WEIGHT_DIP = 0.01  # dip only: keeps the areas the features leave open near natural colours


def default_iterations(stride: float, kind: str) -> int:
    """Steps per layer when ``iterations`` is not given."""
    return ITERATIONS_SHALLOW if stride < 8 and kind != "dip" else ITERATIONS_DEEP


def default_lr(optimizer: str, kind: str) -> float:
    """The step when ``lr`` is not given."""
    return 1.0 if optimizer == "lbfgs" else LR_DIP if kind == "dip" else LR_ADAM


def layers_of(options: InvertOptions, info) -> list[str]:
    """The layers to invert: ``layers``, or ``layer``, or the model's invert layer."""
    layer, layers = options.layer, options.layers
    if layer not in (None, "") and layers not in (None, ""):
        raise DeepCanvasError("give layer or layers, not both")
    spec = layers if layers not in (None, "") else layer
    if spec in (None, ""):
        spec = info.defaults.get("invert_layer")
        if spec is None:
            raise DeepCanvasError(f"model {info.name} has no default layer to invert; give one with layer")
    return layer_names(spec)


@flat_options(options=InvertOptions, run=RunOptions, network=NetworkOptions)
def invert_steps(image, *, options: InvertOptions, run: RunOptions, network: NetworkOptions) -> Iterator[Progress]:
    """Yield a Progress after every iteration; the last one has ``done=True`` and the image(s).

    Args:
        image: the photo whose features are inverted (path or PIL image).
    """
    kind = "pixel" if options.param == "auto" else options.param  # auto: measured best at every depth (docs/tuning.md)
    info, dev = begin(network.model, device=network.device, precision=network.precision, pooling=network.pooling,
                     weights=network.weights, mean=network.mean, std=network.std)
    layer_list = layers_of(options, info)
    check_layer_names(info, layer_list)
    photo = load_tensor(image, "image")
    rng = seed_everything(run.seed)
    net = network_of(network, dev)
    hw = fit_size(*photo.shape[-2:], options.size)
    target_img = resize(photo, hw).to(dev)
    with torch.no_grad():
        targets = net(target_img, layer_list)
    for name, t in targets.items():
        if t.dim() != 4:
            raise DeepCanvasError(f"layer {name!r} has no positions to invert; pick a convolutional layer")
        if t.pow(2).sum() <= 0:
            raise DeepCanvasError(f"layer {name!r} is all zeros for this image at {max(hw)} px; "
                                  f"pick a shallower layer or a larger size")

    gen = torch.Generator().manual_seed(rng.randrange(2**31))

    def layer_stage(k: int, name: str) -> Stage:
        target = targets[name]
        stride = max(hw) / max(target.shape[-2:])
        tv_weight = options.tv_weight if options.tv_weight is not None else TV_BASE * math.sqrt(stride)
        objective = Sum([]) + FeatureDistance(name, target, mode=options.loss)
        colour_weight = options.colour_weight
        if colour_weight is None:
            colour_weight = COLOUR_WEIGHT_DIP if kind == "dip" else 0.0
        if colour_weight > 0:
            objective = objective + colour_weight * ColourPrior()
        if options.alpha_weight > 0:
            objective = objective + options.alpha_weight * AlphaNorm(options.alpha)
        if tv_weight > 0:
            objective = objective + tv_weight * TotalVariation("beta", beta=options.beta)
        optimizer = options.optimizer
        if kind == "fourier":
            prm = FourierParam(1, *hw, sd=0.01, decay_power=options.decay_power, device=dev, generator=gen)
        elif kind == "pyramid":
            prm = PyramidParam(1, *hw, decay=options.decay_power, device=dev, generator=gen)
        elif kind == "dip":
            prm = DIPParam(1, *hw, device=dev, generator=gen, reg_noise=0 if optimizer == "lbfgs" else 1 / 30)
        else:
            init = (0.5 + 0.05 * torch.randn(1, 3, *hw, generator=gen)).clamp(0, 1)
            prm = PixelParam(init.to(dev), clip=optimizer != "lbfgs")
        jitter = options.jitter or 0
        return Stage(prm, objective, options.iterations or default_iterations(stride, kind),
                     name=f"{name} ({k + 1}/{len(layer_list)})" if len(layer_list) > 1 else name,
                     optimizer=optimizer,
                     lr=options.lr if options.lr is not None else default_lr(optimizer, kind),
                     # Adam: big steps find the layout, small ones settle the detail.
                     lr_schedule=cosine_decay(0.1) if optimizer == "adam" else None,
                     transforms=T.random_roll(jitter, rng) if jitter else None,
                     result=lambda img: img.clamp(0, 1).cpu())

    # Each layer from its own noise; the result is one image per layer.
    yield from render(net, [layer_stage(k, n) for k, n in enumerate(layer_list)], precision=network.precision,
                      rng=rng, finish=torch.cat)


def invert(image, *, callback: Callable[[Progress], None] | None = None, **kwargs):
    """Run feature inversion; return a PIL image (one layer) or a dict layer -> image (several).

    See :func:`invert_steps` for the arguments.
    """
    names = layers_of(InvertOptions(layer=kwargs.get("layer"), layers=kwargs.get("layers")),
                      models.get_info(kwargs.get("model", "vgg16")))
    last = drive(invert_steps(image, **kwargs), callback)
    images = last.images
    if len(names) == 1:
        return images[0]
    return dict(zip(names, images))


def contact_sheet(images: dict[str, Image.Image], original: Image.Image, *, label_height: int = 16,
                  gap: int = 4) -> Image.Image:
    """One row: the original, then each layer's inversion, each labelled underneath (:func:`sheet.contact_sheet`).

    Every tile is the size of the first inversion (the original is resized to it).
    """
    if not images:
        raise DeepCanvasError("contact sheet: no images")
    size = next(iter(images.values())).size
    original = original.convert("RGB")
    if original.size != size:
        original = original.resize(size, Image.Resampling.LANCZOS)
    cells = [("original", original, None)] + [(label, img, None) for label, img in images.items()]
    return sheet.contact_sheet([("", cells)], gap=gap, label_h=label_height)
