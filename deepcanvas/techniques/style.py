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

from ..options import Colors, Init, NetworkOptions, Optimizer, RunOptions, StyleOptions  # noqa: F401 (re-exported)
from ..render import Progress, Stage, cosine_decay, drive, render
from ..signature import flat_options
from .common import fit_size
from .style_objective import BORDER, border_pad, crop_image, pad_image, style_objective  # noqa: F401
from .style_plan import STYLE_RECORDS, StylePlan, prepare_style  # noqa: F401
from .style_presets import LossSetup, Method, Preset, loss_setup, scale_schedule, strength_weights  # noqa: F401
from .style_targets import TILE_MARGIN, StyleTargets  # noqa: F401


@flat_options(**STYLE_RECORDS)
def style_transfer_steps(content, styles, *, options: StyleOptions, run: RunOptions,
                         network: NetworkOptions) -> Iterator[Progress]:
    """Yield a Progress after every iteration; the last one has ``done=True`` and the best image.

    Args:
        content: content image (path or PIL image).
        styles: one or more style images (paths or PIL images).
    """
    plan = prepare_style(content, styles, options, network, run)
    multiscale = plan.setup.multiscale if options.multiscale is None else options.multiscale
    schedule = scale_schedule(options.size, options.min_size, plan.solver.iterations, multiscale)

    def scale_stage(k: int, side: int, n_iter: int):
        def build(prev: torch.Tensor | None) -> Stage:
            hw = fit_size(*plan.images.content.shape[-2:], side)
            floor = plan.setup.lr_floor
            return plan.stage(plan.images.work_content, plan.start_image(hw, prev), side, n_iter,
                              name=f"scale {k + 1}/{len(schedule)} ({max(hw)} px)",
                              lr_schedule=cosine_decay(floor) if floor < 1 else None)
        return build

    stages = [scale_stage(k, side, n) for k, (side, n) in enumerate(schedule)]
    yield from render(plan.net, stages, total=sum(n for _, n in schedule), precision=network.precision, rng=plan.rng,
                      finish=lambda results: plan.finish(results[-1], plan.images.content))


def style_transfer(content, styles, *, callback: Callable[[Progress], None] | None = None, **kwargs):
    """Run style transfer and return the result as a PIL image. See :func:`style_transfer_steps`."""
    return drive(style_transfer_steps(content, styles, **kwargs), callback).image
