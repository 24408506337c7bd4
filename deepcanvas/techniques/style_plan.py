"""A style transfer made ready: options checked, images and network loaded, targets cached.

:func:`prepare_style` builds a :class:`StylePlan` from the option records; a style
transfer makes one stage per scale from it, a batch or a video one stage per image or
frame, each with its own content and start image, sharing the style targets.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch

from .. import models
from .. import regions as R
from ..errors import DeepCanvasError
from ..objectives import Mask, Objective
from ..options import INITS, NetworkOptions, RunOptions, StillOptions, StyleOptions
from ..param import PixelParam, resize
from ..render import Stage
from ..signature import build_records
from . import color
from .common import begin, network_of, check_layer_names, fit_size, load_tensor, parse_floats, parse_layers, seed_everything
from .style_objective import StyleRegion, border_pad, crop_image, pad_image, style_objective
from .style_presets import LossSetup, LossWeights, loss_weights, loudness_step, reaches, strength_reach
from .style_targets import TILE_MARGIN, StyleTargets

#: The records a style transfer is described by, by parameter name (style_transfer_steps flattens them).
#: A still's records, by the parameter names of style_transfer_steps (the CLI's and the studio's field order).
STYLE_RECORDS = {"still": StillOptions, "options": StyleOptions, "run": RunOptions, "network": NetworkOptions}


@dataclass(frozen=True)
class Solver:
    """How the pixels are optimised, the preset's defaults filled in."""

    optimizer: str  # 'adam' or 'lbfgs'
    lr: float
    iterations: int  # at the full size
    settings: dict  # render.Stage's optimizer_options: Adam's betas, eps and eps_rel; L-BFGS's line search
    loudness: float | None = None  # the paintings' loudness against the photo, where it set the step (loudness_step)


@dataclass(frozen=True)
class StyleImages:
    """The pictures of a run, loaded (and recoloured as ``colors`` asks)."""

    content: torch.Tensor
    work_content: torch.Tensor  # what the content loss sees: the content, or its luminance (colors='luminance')
    styles: list[torch.Tensor]
    blend: list[float]  # the style images' weights (sum 1)
    init: torch.Tensor | None  # an init image file's pixels


@dataclass
class StylePlan:
    """A style transfer with every option checked and the network and images loaded (build it with keywords)."""

    options: StyleOptions
    still: StillOptions  # a video's frames: the clip's size, and starts the video gives
    network: NetworkOptions
    setup: LossSetup  # the preset's losses
    weights: LossWeights
    solver: Solver
    net: torch.nn.Module
    device: torch.device
    content_layers: dict[str, float]
    style_layers: dict[str, float]
    images: StyleImages
    regions: R.RegionPlan | None  # masks, style masks or semantic maps (None: every style everywhere)
    targets: StyleTargets
    rng: Any  # the run's random.Random
    generator: torch.Generator | None  # the sliced-Wasserstein loss's random projections

    def work(self, content: torch.Tensor) -> torch.Tensor:
        """What the content loss sees of a content image (its luminance with colors='luminance')."""
        return color.luminance(content) if self.options.colors == "luminance" else content

    def start_image(self, hw, prev) -> torch.Tensor:
        """The first pixels at ``hw``: the previous scale's result, else what ``init`` asks for."""
        img, o = self.images, self.still
        if prev is not None:
            return resize(prev, hw)
        if img.init is not None:
            return resize(img.init, hw)
        if o.init == "noise":  # neural-style-pt's random init: the mean colour with faint noise
            mean = torch.tensor(models.vgg.CAFFE_MEAN_BGR[::-1]).view(1, 3, 1, 1) / 255
            return (mean + torch.randn(1, 3, *hw) * 0.001).clamp(0, 1)
        if o.init == "palette":
            return resize(color.match_palette(img.work_content, img.styles, img.blend), hw)
        if o.init == "blend":
            return (1 - o.init_noise) * resize(img.work_content, hw) + o.init_noise * torch.rand(1, 3, *hw)
        return resize(img.work_content, hw)

    def stage(self, content: torch.Tensor, start: torch.Tensor, side: int, steps: int, *, name: str = "",
              extra: Callable[[tuple[int, int, int, int]], Objective] | None = None,
              after: Callable[[torch.Tensor], None] | None = None, lr: float | None = None,
              lr_schedule: Callable[[float], float] | None = None) -> Stage:
        """One stage styling ``content`` (resized to ``start``'s size) from ``start``.

        ``extra(box)`` adds a term to the objective (the image it sees is padded by ``box``:
        top, bottom, left, right); ``after`` gets the stage's (cropped) result.
        """
        hw = tuple(start.shape[-2:])
        box = border_pad(hw) if self.setup.pad_borders else (0, 0, 0, 0)
        regions = None
        if self.regions is not None:  # each region's mask at this size, on the padded picture the network sees
            _, masks = self.regions.masks(hw, self.options.feather)
            regions = [StyleRegion(None if m is None else Mask(pad_image(m, box).to(self.device)),
                                   1.0 if m is None else float(m.mean()), r.styles, r.blend, r.style_masks)
                       for m, r in zip(masks, self.regions.regions)]
        objective = style_objective(self.net, self.setup, pad_image(resize(content, hw).to(self.device), box),
                                    self.content_layers, self.style_layers, self.images.styles, self.images.blend,
                                    round(side * self.options.style_scale), weights=self.weights,
                                    tile=work_tile(self.options.tile, box), generator=self.generator, regions=regions,
                                    targets=self.targets, content_scale=self.options.content_scale)
        if extra is not None:
            objective = objective + extra(box)
        solver = self.solver
        param = PixelParam(pad_image(start.to(self.device), box), clip=solver.optimizer != "lbfgs")
        return Stage(param, objective, steps, name=name, optimizer=solver.optimizer,
                     lr=solver.lr if lr is None else lr, lr_schedule=lr_schedule,
                     tile=work_tile(self.options.tile, box), tile_margin=TILE_MARGIN,
                     # A noisy loss (new random projections each step) would keep a lucky sample: keep the last.
                     keep_best=self.setup.method != "swd", optimizer_options=solver.settings,
                     view=lambda img: crop_image(img, box), result=lambda img: crop_image(img, box).cpu(),
                     after=after, rng=self.rng)

    def finish(self, img: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        """The final picture from a stage's result: at the output size, the content's colours if asked, and the
        photo itself outside the mask (blended across its feathered edge)."""
        final_hw = fit_size(*content.shape[-2:], self.still.size)
        img = resize(img, final_hw)
        if self.options.colors == "luminance":
            img = color.luma_swap(color.luminance(img), resize(content, final_hw))
        elif self.options.colors == "luma":
            img = color.luma_swap(img, resize(content, final_hw))
        if self.regions is not None:
            effect_mask, _ = self.regions.masks(final_hw, self.options.feather)
            if effect_mask is not None:
                img = R.composite(img, resize(content, final_hw), effect_mask)
        return img


def work_tile(tile: int, box: tuple[int, int, int, int]) -> int:
    """The tile for a picture padded by ``box``: ``tile`` counts the picture's pixels, not its mirrored margins,
    so a picture of ``tile`` px is still one piece (and larger ones are cut into tiles as large)."""
    return tile + max(box[0] + box[1], box[2] + box[3])


#: The size the paintings' loudness against the photo is measured at: two forward passes, cheap at any output size.
LOUDNESS_SIDE = 256


def loudness(net, content: torch.Tensor, styles, blend, layer: str, device) -> float:
    """How loud the paintings are against the photo: the RMS of ``layer``'s features, blend-weighted over the
    paintings, over the photo's, each image at LOUDNESS_SIDE px."""
    def rms(img):
        small = resize(img, fit_size(*img.shape[-2:], LOUDNESS_SIDE)).to(device)
        with torch.no_grad():
            return float(net(small, [layer])[layer].float().pow(2).mean().sqrt())
    return sum(b * rms(s) for s, b in zip(styles, blend)) / max(rms(content), 1e-12)


def solver_of(options: StyleOptions, setup: LossSetup) -> Solver:
    """The optimiser settings for ``options``, the preset's defaults filled in."""
    optimizer = options.optimizer or setup.optimizer
    lr = options.lr if options.lr is not None else (1.0 if optimizer == "lbfgs" else setup.lr or 0.02)
    eps_rel = setup.adam_eps_rel if options.adam_eps_rel is None else options.adam_eps_rel
    iterations = setup.iterations if options.iterations is None else options.iterations
    if reaches(optimizer):
        step, more = strength_reach(options.style_strength)
        lr, iterations = lr * step, max(1, round(iterations * more))
    return Solver(optimizer, lr, iterations,
                  {"betas": (options.adam_beta1, options.adam_beta2), "eps": options.adam_eps, "eps_rel": eps_rel,
                   "line_search": options.line_search})


def prepare_style(content, styles, options: StyleOptions | None = None, network: NetworkOptions | None = None,
                  run: RunOptions | None = None, still: StillOptions | None = None, *,
                  targets: StyleTargets | None = None, **keywords) -> StylePlan:
    """Load the images and the network for a style transfer described by the records; a batch or a video
    passes one ``targets`` cache for all its pictures (None: a new one, for this run alone).

    ``keywords``: style_transfer_steps's keywords instead of the records, which are then built from them.
    """
    if keywords:
        if options is not None or network is not None or run is not None or still is not None:
            raise TypeError("prepare_style takes the option records or their keywords, not both")
        built = build_records(STYLE_RECORDS, keywords, "prepare_style")
        options, network, run, still = built["options"], built["network"], built["run"], built["still"]
    options, network, run = options or StyleOptions(), network or NetworkOptions(), run or RunOptions()
    still = still or StillOptions()
    setup = options.setup
    solver = solver_of(options, setup)
    if isinstance(styles, (str, Path)) or hasattr(styles, "mode"):
        styles = [styles]
    styles = list(styles)
    if not styles:
        raise DeepCanvasError("no style image given")
    blend = parse_floats(options.style_blend_weights, len(styles), "style_blend_weights")
    blend = [b / sum(blend) for b in blend]

    info, dev = begin(network.model, device=network.device, precision=network.precision, pooling=network.pooling,
                     weights=network.weights, mean=network.mean, std=network.std)
    content_layers = parse_layers(options.content_layers or info.defaults.get("content_layers"), "content layers")
    style_layers = parse_layers(options.style_layers or info.defaults.get("style_layers"), "style layers")
    if not options.style_layers and setup.style_layer_weights and len(setup.style_layer_weights) == len(style_layers):
        style_layers = {l: w * k for (l, w), k in zip(style_layers.items(), setup.style_layer_weights)}
    check_layer_names(info, list(content_layers) + list(style_layers))
    content_img = load_tensor(content, "content image")
    style_imgs = [load_tensor(s, "style image") for s in styles]
    init_img = load_tensor(still.init, "init image") if still.init not in INITS else None
    regions = R.plan_regions(options.mask, options.style_masks, options.content_map, options.style_map, len(styles),
                             blend, options.style_blend_weights is not None)
    rng = seed_everything(run.seed)
    net = network_of(network, dev)

    if setup.divide_style_weight:
        total_w = sum(style_layers.values()) or 1.0
        style_layers = {k: v / total_w for k, v in style_layers.items()}

    if options.colors == "histogram":
        style_imgs = [color.match_histogram(s, content_img) for s in style_imgs]
    work_content = content_img
    if options.colors == "luminance":
        style_imgs = [color.match_luminance(s, content_img) for s in style_imgs]
        work_content = color.luminance(content_img)

    if options.adaptive_step and options.lr is None and reaches(solver.optimizer) and style_layers:
        mid = list(style_layers)[len(style_layers) // 2]  # relu3_1 of VGG's five
        loud = loudness(net, work_content, style_imgs, blend, mid, dev)
        solver = replace(solver, lr=solver.lr * loudness_step(loud), loudness=loud)

    # The random projections of the sliced-Wasserstein loss: seeded from the run's seed.
    generator = torch.Generator().manual_seed(rng.randrange(2 ** 31)) if setup.method == "swd" else None

    return StylePlan(options=options, still=still, network=network, setup=setup, weights=loss_weights(options, setup, solver.optimizer),
                     solver=solver, net=net, device=dev, content_layers=content_layers, style_layers=style_layers,
                     images=StyleImages(content=content_img, work_content=work_content, styles=style_imgs, blend=blend,
                                        init=init_img),
                     regions=regions, targets=StyleTargets() if targets is None else targets, rng=rng, generator=generator)
