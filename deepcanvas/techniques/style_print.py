"""Prints: style transfer above the working size, coarse to fine.

The picture is made at the working size (512 px) with the normal schedule, the look the user approved;
then, at each larger size (x2 steps up to the target), it is upsampled (bicubic) and refined for a few
iterations with the style image at the matching scale, so the composition survives and the strokes gain
finer detail instead of being blown up. All sizes are stages of one render: one progress bar, Ctrl-C
keeps the best so far. :func:`style_print` also writes the file (with its DPI) and keeps each finished
size beside it (:class:`deepcanvas.prints.PrintState`), so a stopped print resumes from its last one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Iterator

import torch

from .. import prints as P
from ..errors import DeepCanvasError, Notice
from ..options import NetworkOptions, PrintOptions, RunOptions, StillOptions, StyleOptions
from ..param import resize
from ..render import Progress, StageSpec, cosine_decay, drive, render
from ..signature import build_records, flat_options
from .common import fit_size
from .style_plan import STYLE_RECORDS, StylePlan, prepare_style, solver_of
from .style_presets import scale_schedule
from .style_targets import TILE_MARGIN

#: A print's records: a still's, and how it is made larger.
PRINT_RECORDS = {**STYLE_RECORDS, "prints": PrintOptions}


def print_schedule(side: int, working: int, working_iterations: int,
                   iterations: int | None = None) -> list[tuple[int, int]]:
    """[(longest side, iterations)] above the working size: x2 steps up to ``side``, the last one ``side``.

    The first gets ``iterations`` (default a sixth of the working size's), each larger one fewer in
    proportion to its side, since a step costs as many times more as it has pixels.
    """
    sizes, s = [], working
    while s * 2 * 1.25 <= side:  # no step of less than 1.25x before the target
        s *= 2
        sizes.append(s)
    sizes.append(side)
    first = iterations or max(1, round(working_iterations / 6))
    return [(s, max(1, round(first * sizes[0] / s))) for s in sizes]


def print_side(content, still: StillOptions, prints: PrintOptions) -> int:
    """The picture's longest side: ``size``, or what ``print_size`` at ``dpi`` gives for this content."""
    if prints.print_size is None:
        return still.size
    from ..io import load_image

    w, h = load_image(content, what="content image").size
    return prints.side((h, w), still.size)


def is_print(still: StillOptions, prints: PrintOptions) -> bool:
    """Whether a run is made coarse to fine from the working size (``still.size``: the side it resolves to)."""
    return still.size > prints.working_size or prints.print_from_init


def print_stages(plan: StylePlan, prints: PrintOptions, *, resumed: tuple[int, torch.Tensor] | None = None,
                 state: P.PrintState | None = None) -> tuple[list[StageSpec], int, int, list[tuple[int, float]]]:
    """The stages of a print (the working size's schedule, then each larger size), the steps of all of them,
    the steps already done (those a ``resumed`` (side, picture) skips), and each stage's (steps, pixels of a
    step) for the time left."""
    options, still = plan.options, plan.still
    base = min(still.size, prints.working_size)
    working = scale_schedule(base, still.min_size, solver_of(options, plan.setup).iterations,
                             options.setup.multiscale if still.multiscale is None else still.multiscale)
    larger = print_schedule(still.size, base, working[-1][1], prints.print_iterations) if still.size > base else []
    if prints.print_from_init:
        if plan.images.init is None:
            raise DeepCanvasError("print_from_init needs init to be a picture file (the finished result)")
        working = []
        if not larger:
            raise DeepCanvasError(f"print_from_init makes a picture larger: give a size above working_size "
                                  f"({prints.working_size} px)")
    names = [f"scale {k + 1}/{len(working)}" for k in range(len(working))] + \
            [f"print {k + 1}/{len(larger)}" for k in range(len(larger))]
    plan_sizes = working + larger
    first, done = 0, 0
    finished = ([base] if working else []) + [s for s, _ in larger[:-1]]  # the sizes a print keeps
    if resumed is not None and resumed[0] in finished:
        first = finished.index(resumed[0]) + 1 + max(0, len(working) - 1)
        done = sum(n for _, n in plan_sizes[:first])
    else:
        resumed = None
    floor = plan.setup.lr_floor
    last = len(plan_sizes) - 1

    def build_stage(k: int, side: int, n_iter: int, name: str):
        def build(prev: torch.Tensor | None):
            hw = fit_size(*plan.images.content.shape[-2:], side)
            if prev is None and k == first and resumed is not None:
                prev = resumed[1]
            if prev is None and prints.print_from_init and k == 0:
                prev = plan.images.init
            start = plan.start_image(hw, prev if k else None) if k < len(working) else resize(prev, hw)
            keep = state is not None and k < last and (k >= len(working) - 1)
            return plan.stage(plan.images.work_content, start, side, n_iter, name=f"{name} ({max(hw)} px)",
                              lr_schedule=cosine_decay(floor) if floor < 1 else None,
                              after=(lambda img, s=side: state.save(s, img)) if keep else None)
        return build

    stages = [build_stage(k, s, n, names[k]) for k, (s, n) in enumerate(plan_sizes) if k >= first]
    costs = [(n, float(s * s)) for k, (s, n) in enumerate(plan_sizes) if k >= first]
    return stages, sum(n for _, n in plan_sizes), done, costs


def print_run(content, styles, still: StillOptions, options: StyleOptions, run: RunOptions,
              network: NetworkOptions, prints: PrintOptions, state: P.PrintState | None = None,
              on_resume: Callable[[int], None] | None = None) -> Iterator[Progress]:
    """A print's steps (``still.size`` already the target side); the last Progress's output holds the DPI."""
    plan = prepare_style(content, styles, options, network, run, still)
    hw = fit_size(*plan.images.content.shape[-2:], still.size)
    P.check_memory(plan.net, plan.style_layers, plan.content_layers, hw, options.tile,
                   pad=16 if plan.setup.pad_borders else 0)
    resumed = state.resume() if state is not None else None
    if resumed is not None and on_resume is not None:
        on_resume(resumed[0])
    stages, total, done, costs = print_stages(plan, prints, resumed=resumed, state=state)
    dpi = {"dpi": (prints.dpi, prints.dpi)} if prints.dpi else {}
    yield from render(plan.net, stages, total=total, start=done, costs=costs, precision=network.precision, rng=plan.rng,
                      finish=lambda results: plan.finish(results[-1], plan.images.content), output=dpi)


@flat_options(**PRINT_RECORDS)
def style_print(content, styles, output, *, still: StillOptions, options: StyleOptions, run: RunOptions,
                network: NetworkOptions, prints: PrintOptions,
                callback: Callable[[Progress], None] | None = None) -> Path:
    """Make a print into ``output`` (PNG or JPEG, with its DPI); return the path.

    Each finished size is kept in a hidden folder beside ``output`` (``.NAME.print/``); the same call
    after a crash or Ctrl-C resumes from the last one, and the folder is removed once the print is
    written. Ctrl-C raises :class:`deepcanvas.render.Interrupted` with the best picture so far.

    Args:
        content: content image (path or PIL image).
        styles: one or more style images (paths or PIL images).
        output: the file to write.
    """
    from ..io import check_output_path, save_image

    out = check_output_path(output)
    still = dataclasses.replace(still, size=print_side(content, still, prints))
    if isinstance(styles, (str, Path)) or hasattr(styles, "mode"):
        styles = [styles]
    records = {"still": still, "options": options, "run": run, "network": network, "prints": prints}
    inputs = [content, *styles, still.init, options.mask, options.style_masks, options.content_map,
              options.style_map]
    state = P.PrintState(P.state_folder(out), P.fingerprint(inputs, records))

    def said(side):
        import warnings

        warnings.warn(f"resuming the print from its finished {side} px size ({state.folder})", Notice)

    last = drive(print_run(content, styles, still, options, run, network, prints, state, said), callback)
    img = last.image
    if prints.dpi:
        img.info["dpi"] = (prints.dpi, prints.dpi)
    save_image(img, out)
    state.clear()
    return out
