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
from typing import Callable, Iterator, Literal

import torch
from PIL import Image

from .. import models, sheet
from .. import transforms as T
from ..errors import DeepCanvasError
from ..limits import check_number
from ..objectives import AlphaNorm, ColourPrior, FeatureDistance, Sum, TotalVariation
from ..param import DIPParam, FourierParam, PixelParam, PyramidParam, resize
from ..render import Progress, Stage, cosine_decay, drive, render
from ..signature import check_choice
from .common import (Pooling, Precision, begin, check_layer_names, fit_size, layer_names, load_tensor, longest_side,
                     seed_everything)

Loss = Literal["normalized", "l2"]
ParamKind = Literal["auto", "pixel", "fourier", "pyramid", "dip"]
Optimizer = Literal["adam", "lbfgs"]
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


def _layer_list(layer, layers, info) -> list[str]:
    if layer not in (None, "") and layers not in (None, ""):
        raise DeepCanvasError("give layer or layers, not both")
    spec = layers if layers not in (None, "") else layer
    if spec in (None, ""):
        spec = info.defaults.get("invert_layer")
        if spec is None:
            raise DeepCanvasError(f"model {info.name} has no default layer to invert; give one with layer")
    return layer_names(spec)


def invert_steps(
    image,
    *,
    layer: str | None = None,
    layers: str | None = None,
    size: int = 224,
    iterations: int | None = None,
    lr: float | None = None,
    optimizer: Optimizer = "adam",
    loss: Loss = "normalized",
    alpha: float = 6.0,
    alpha_weight: float = 1e-3,
    beta: float = 2.0,
    tv_weight: float | None = None,
    colour_weight: float | None = None,
    jitter: int | None = None,
    param: ParamKind = "auto",
    decay_power: float = 1.5,
    model: str | models.LayeredNet = "vgg16",
    weights: str | None = None,
    pooling: Pooling = "max",
    seed: int | None = None,
    device: str = "auto",
    precision: Precision = "auto",
) -> Iterator[Progress]:
    """Yield a Progress after every iteration; the last one has ``done=True`` and the image(s).

    Args:
        image: the photo whose features are inverted (path or PIL image).
        layer: the layer to invert (default: the model's invert layer).
        layers: several layers, each inverted on its own, e.g. "relu1_2,relu3_3,relu5_3".
        size: longest side of the output in pixels.
        iterations: optimisation steps per layer (default: 600 down to relu3_x, 300 from relu4_x on and on dip).
        lr: learning rate (default 0.05 for adam on pixels, fourier or pyramid, 0.01 for adam on dip, 1 for lbfgs).
        optimizer: adam or lbfgs.
        loss: normalized (Mahendran & Vedaldi's distance over the target's energy) or l2 (mean squared error).
        alpha: exponent of the alpha-norm prior.
        alpha_weight: weight of the alpha-norm prior (a guard against pixels running off; Adam also clips).
        beta: exponent of the total-variation prior.
        tv_weight: weight of the TV^beta prior (default: 2 times the square root of the layer's stride, so
            deeper layers get more, as in M&V).
        colour_weight: weight of a natural-colour prior (a Gaussian over ImageNet's colours, never the photo's;
            default: 0.01 on dip, 0 on the others).
        jitter: largest random shift in pixels before each step (default 0: none; a roll hurt deep inversions).
        param: the image's parameterisation: pixel, fourier (a 1/f^decay_power spectrum in decorrelated colour),
            pyramid (a Laplacian-like sum of levels at 1/1 .. 1/16 of the size, in decorrelated colour), dip
            (a deep image prior: the weights of a small random encoder-decoder fed fixed noise), or auto
            (pixels at every depth: none of the others did better on photos held apart).
        decay_power: fourier and pyramid only: how much the coarse scales are favoured (higher: smoother).
        model: network from `deepcanvas models`, or a network object (models.LayeredNet).
        weights: local checkpoint for the model's architecture.
        pooling: max or avg.
        seed: random seed for reproducible results.
        device: auto, cpu, cuda or mps.
        precision: auto (bf16 on CUDA, fp32 elsewhere), fp32, bf16 or fp16.
    """
    # -- check everything before any slow work -------------------------------------
    size = longest_side(size)
    if iterations is not None:
        iterations = int(check_number("iterations", iterations, integer=True, positive=True))
    check_choice("optimizer", optimizer, Optimizer)
    if lr is not None:
        lr = check_number("lr", lr, positive=True)
    check_choice("loss", loss, Loss)
    alpha = check_number("alpha", alpha, positive=True)
    alpha_weight = check_number("alpha_weight", alpha_weight, minimum=0)
    beta = check_number("beta", beta, positive=True)
    if tv_weight is not None:
        tv_weight = check_number("tv_weight", tv_weight, minimum=0)
    if colour_weight is not None:
        colour_weight = check_number("colour_weight", colour_weight, minimum=0)
    if jitter is not None:
        jitter = int(check_number("jitter", jitter, integer=True, minimum=0))
    check_choice("param", param, ParamKind)
    kind = "pixel" if param == "auto" else param  # auto: measured best at every depth (docs/tuning.md)
    decay_power = check_number("decay_power", decay_power, minimum=0)
    info, dev = begin(model, device=device, precision=precision, pooling=pooling)
    layer_list = _layer_list(layer, layers, info)
    check_layer_names(info, layer_list)
    photo = load_tensor(image, "image")
    rng = seed_everything(seed)
    net = models.load_model(model, weights=weights, pooling=pooling, device=dev)
    hw = fit_size(*photo.shape[-2:], size)
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
        tv_w = tv_weight if tv_weight is not None else TV_BASE * math.sqrt(stride)
        objective = Sum([]) + FeatureDistance(name, target, mode=loss)
        colour_w = colour_weight if colour_weight is not None else COLOUR_WEIGHT_DIP if kind == "dip" else 0.0
        if colour_w > 0:
            objective = objective + colour_w * ColourPrior()
        if alpha_weight > 0:
            objective = objective + alpha_weight * AlphaNorm(alpha)
        if tv_w > 0:
            objective = objective + tv_w * TotalVariation("beta", beta=beta)
        if kind == "fourier":
            prm = FourierParam(1, *hw, sd=0.01, decay_power=decay_power, device=dev, generator=gen)
        elif kind == "pyramid":
            prm = PyramidParam(1, *hw, decay=decay_power, device=dev, generator=gen)
        elif kind == "dip":
            prm = DIPParam(1, *hw, device=dev, generator=gen, reg_noise=0 if optimizer == "lbfgs" else 1 / 30)
        else:
            init = (0.5 + 0.05 * torch.randn(1, 3, *hw, generator=gen)).clamp(0, 1)
            prm = PixelParam(init.to(dev), clip=optimizer != "lbfgs")
        j = jitter or 0
        steps = iterations or default_iterations(stride, kind)
        return Stage(prm, objective, steps,
                     name=f"{name} ({k + 1}/{len(layer_list)})" if len(layer_list) > 1 else name,
                     optimizer=optimizer,
                     lr=lr if lr is not None else default_lr(optimizer, kind),
                     # Adam: big steps find the layout, small ones settle the detail.
                     lr_schedule=cosine_decay(0.1) if optimizer == "adam" else None,
                     transforms=T.random_roll(j, rng) if j else None,
                     result=lambda img: img.clamp(0, 1).cpu())

    # Each layer from its own noise; the result is one image per layer.
    yield from render(net, [layer_stage(k, n) for k, n in enumerate(layer_list)], precision=precision, rng=rng,
                      finish=torch.cat)


def invert(image, *, callback: Callable[[Progress], None] | None = None, **kwargs):
    """Run feature inversion; return a PIL image (one layer) or a dict layer -> image (several).

    See :func:`invert_steps` for the arguments.
    """
    names = _layer_list(kwargs.get("layer"), kwargs.get("layers"), models.get_info(kwargs.get("model", "vgg16")))
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
