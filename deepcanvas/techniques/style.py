"""Style transfer (Gatys, Ecker & Bethge 2015; sliced-Wasserstein style loss, Heitz et al. 2021).

Configuration of the one loop: pixels initialised from the content image,
no random transforms, content + style (sliced-Wasserstein by default, or
Gram matrices) + TV objective, Adam or L-BFGS, and a schedule of sizes
(single scale by default; coarse to fine on request, each size starting from
the previous result upsampled).

The options are declared once, in :class:`deepcanvas.options.StyleOptions` (with
:class:`~deepcanvas.options.NetworkOptions` and :class:`~deepcanvas.options.RunOptions`);
the rooms of the style family: ``style_presets`` (the presets' losses and defaults),
``style_targets`` (the style images' targets and their cache), ``style_objective``
(the objective at one size), ``style_plan`` (:func:`prepare_style`, :class:`StylePlan`)
and :mod:`deepcanvas.regions` (masks and maps).
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch

import dataclasses

from ..options import (Colors, Init, NetworkOptions, Optimizer, PrintOptions, RunOptions,  # noqa: F401
                       StillOptions, StyleOptions)
from ..render import Progress, Stage, StageSpec, cosine_decay, drive, render
from ..signature import flat_options
from .common import fit_size
from .style_objective import BORDER, border_pad, crop_image, pad_image, style_objective  # noqa: F401
from .style_plan import STYLE_RECORDS, StylePlan, prepare_style, solver_of  # noqa: F401
from .style_print import PRINT_RECORDS, is_print, print_run, print_side
from .style_presets import LossSetup, Method, Preset, loss_setup, scale_schedule, strength_weights  # noqa: F401
from .style_targets import TILE_MARGIN, StyleTargets  # noqa: F401


def schedule_of(options: StyleOptions, still: StillOptions) -> list[tuple[int, int]]:
    """[(longest side, iterations)] per scale: known from the options alone, before any image is loaded."""
    setup = options.setup
    multiscale = setup.multiscale if still.multiscale is None else still.multiscale
    return scale_schedule(still.size, still.min_size, solver_of(options, setup).iterations, multiscale)


def scale_stages(plan: StylePlan, *, label: str = "",
                 after: Callable[[torch.Tensor], None] | None = None) -> tuple[list[StageSpec], int]:
    """A style transfer's stages, one per scale, each from the previous one's result upsampled; and their steps.

    ``after`` is given the finished picture (:meth:`StylePlan.finish`) when the last stage ends.
    """
    schedule = schedule_of(plan.options, plan.still)

    def scale_stage(k: int, side: int, n_iter: int):
        def build(prev: torch.Tensor | None) -> Stage:
            hw = fit_size(*plan.images.content.shape[-2:], side)
            floor = plan.setup.lr_floor
            stage = plan.stage(plan.images.work_content, plan.start_image(hw, prev if k else None), side, n_iter,
                               name=f"{label}scale {k + 1}/{len(schedule)} ({max(hw)} px)",
                               lr_schedule=cosine_decay(floor) if floor < 1 else None)
            if k == len(schedule) - 1 and after is not None:
                stage.after = lambda img: after(plan.finish(img, plan.images.content))
            return stage
        return build

    return [scale_stage(k, side, n) for k, (side, n) in enumerate(schedule)], sum(n for _, n in schedule)


@flat_options(**PRINT_RECORDS)
def style_transfer_steps(content, styles, *, still: StillOptions, options: StyleOptions, run: RunOptions,
                         network: NetworkOptions, prints: PrintOptions) -> Iterator[Progress]:
    """Yield a Progress after every iteration; the last one has ``done=True`` and the best image.

    Above ``working_size`` the picture is a print, made coarse to fine (techniques.style_print); the last
    Progress's ``output`` then holds its ``dpi``.

    Args:
        content: content image (path or PIL image).
        styles: one or more style images (paths or PIL images).
    """
    if prints.print_size is not None:
        still = dataclasses.replace(still, size=print_side(content, still, prints))
    if is_print(still, prints):
        yield from print_run(content, styles, still, options, run, network, prints)
        return
    plan = prepare_style(content, styles, options, network, run, still)
    stages, total = scale_stages(plan)
    yield from render(plan.net, stages, total=total, precision=network.precision, rng=plan.rng,
                      finish=lambda results: plan.finish(results[-1], plan.images.content),
                      output={"dpi": (prints.dpi, prints.dpi)} if prints.dpi else None)


def style_transfer(content, styles, *, callback: Callable[[Progress], None] | None = None, **kwargs):
    """Run style transfer and return the result as a PIL image. See :func:`style_transfer_steps`."""
    last = drive(style_transfer_steps(content, styles, **kwargs), callback)
    img = last.image
    if isinstance(last.output, dict) and "dpi" in last.output:
        img.info["dpi"] = last.output["dpi"]  # io.save_image records it in the file
    return img
