"""The frames of a style video, each one stage of the one loop (render.py), built from the previous one.

Frame t starts from the previous *output* warped along the optical flow (the new frame's own content
where the warp cannot be trusted), so most of the picture is already styled and a few steps finish
it; the objective adds a temporal loss (objectives.Temporal): the masked squared difference to the
warped previous output, optionally to several earlier outputs too (``long_term``), each pixel tied
to the nearest earlier frame in which it was visible (temporal.py).

With Ray (:func:`style_on_ray`), the clip is cut into overlapping chunks styled in parallel by the
one actor pool (distributed.py), joined with a cross-fade.
"""

from __future__ import annotations

import os
from typing import Callable, Iterator

import numpy as np
import torch

from .. import distributed, imaging, io, temporal
from ..framestore import FrameStore, VideoResult
from ..objectives import Temporal
from ..render import Elsewhere, Report, Stage, StageSpec, cosine_decay, drive, render
from .style import pad_image, prepare_style

#: A warm-started frame's learning rate decays to this share of the first frame's.
LR_FLOOR = 0.1


def frame_steps(n: int, iterations: int, later: int, consistent: bool) -> int:
    """The steps of ``n`` consecutive frames styled from scratch at the first: it takes ``iterations``, the
    others ``later`` when consistent."""
    return iterations + (n - 1) * (later if consistent else iterations) if n else 0


def style_frames(plan, frames: list[np.ndarray], todo, outputs: dict[int, torch.Tensor],
                 write: Callable[[int, torch.Tensor], None], *, consistent: bool, temporal_weight: float,
                 offsets: list[int], later: int, preset: str, result: VideoResult | None = None,
                 label: str = "") -> tuple[list[StageSpec], int]:
    """The stages styling ``frames[i]`` for i in ``todo`` (consecutive), one each, and their steps in all.

    ``outputs`` holds earlier finished outputs (for the warm start and the temporal loss) and gets each new
    one; ``write(i, img)`` stores a finished frame. The first frame of ``todo`` without a previous output
    gets the full ``plan.solver.iterations``; the others ``later`` when consistent.
    """
    todo = list(todo)
    flows = temporal.Flows(frames, preset)
    n = len(frames)
    side = max(frames[0].shape[:2])
    steps = {i: plan.solver.iterations if (not consistent or (i - 1) not in outputs and i == todo[0]) else later
             for i in todo}

    def frame_stage(i: int):
        def build(prev: torch.Tensor | None) -> Stage:
            content = plan.work(imaging.array_to_tensor(frames[i]))
            extra = None
            start_img = content
            if consistent and (i - 1) in outputs:
                targets = temporal.temporal_targets(i, offsets, flows, outputs)
                warped, mask = targets[0]
                start_img = mask * warped + (1 - mask) * content  # the new frame where the warp is not trusted
                if temporal_weight > 0:
                    mode = plan.setup.mode

                    def extra(box, targets=targets):
                        obj = None
                        for tgt, m in targets:
                            term = Temporal(pad_image(tgt, box).to(plan.device),
                                            torch.nn.functional.pad(m, (box[2], box[3], box[0], box[1])).to(plan.device),
                                            mode)
                            obj = term if obj is None else obj + term
                        return temporal_weight * obj

            def after(img: torch.Tensor, i=i):
                outputs[i] = img
                for k in [k for k in outputs if k < i - max(offsets)]:
                    del outputs[k]
                write(i, plan.finish(img, imaging.array_to_tensor(frames[i])))
                if result is not None:
                    result.frame_done()

            # A warm-started frame: the step size decays along half a cosine, so that the last steps settle
            # on the optimum instead of jittering around it by Adam's full step (which is flicker).
            warm = consistent and (i - 1) in outputs
            return plan.stage(content, start_img, side, steps[i], name=f"{label}frame {i + 1}/{n}", extra=extra,
                              after=after, lr_schedule=cosine_decay(LR_FLOOR) if warm and LR_FLOOR < 1 else None)
        return build

    return [frame_stage(i) for i in todo], sum(steps.values())


# --------------------------------------------------------------------------- Ray: overlapping chunks


class ChunkWorker:
    """A Ray actor: styles the chunks it is sent, reporting each step; returns PNG bytes per frame."""

    def __init__(self, style_bytes: list[bytes], records: dict, opts: dict):
        self.styles = [imaging.image_from_bytes(b).convert("RGB") for b in style_bytes]
        self.records, self.opts = records, opts

    def run(self, first: int, frames: list[np.ndarray], steps) -> tuple[int, list[bytes]]:
        from PIL import Image

        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
        plan = prepare_style(Image.fromarray(frames[0]), self.styles, **self.records)
        out: dict[int, bytes] = {}
        stages, total = style_frames(plan, frames, range(len(frames)), {},
                                     lambda i, img: out.__setitem__(i, imaging.tensor_png(img)), **self.opts)
        drive(render(plan.net, stages, total=total, precision=plan.network.precision, rng=plan.rng),
              distributed.report(steps))
        return first, [out[i] for i in range(len(frames))]


def on_ray(cpus: float, frames, styles, records: dict, done, store: FrameStore, chunk, overlap, opts, iterations: int,
           result: VideoResult) -> Elsewhere:
    """The frames from ``done`` on, styled in overlapping chunks on Ray (inside distributed.connect, which
    gave ``cpus``), as one stretch of the run that reports every step; the joined frames go into ``store``."""
    style_bytes = [imaging.image_png(io.load_image(s, what="style image")) for s in styles]
    n = len(frames)
    workers = max(1, int(cpus))
    # Resume: chunks wholly finished are skipped; the rest restart from their first frame.
    chunk = chunk or max(overlap + 2, -(-(n - done) // workers))
    ranges = [(a, b) for a, b in temporal.chunk_ranges(n, chunk, overlap) if b > done]

    def reports() -> Iterator[Report]:
        results: dict[int, list[np.ndarray]] = {}
        yield Report(0, imaging.array_to_tensor(frames[done]), stage="starting [ray]")  # until a chunk is styled
        for steps, got in distributed.run_pool(ChunkWorker, (style_bytes, records, opts), ranges,
                                               lambda a, r, q: a.run.remote(r[0], frames[r[0]:r[1]], q),
                                               workers=workers, cpus_per_worker=1):
            if got is None:
                yield Report(steps, stage=f"{len(results)}/{len(ranges)} chunks done [ray]")
                continue
            first, pngs = got
            results[first] = [np.asarray(imaging.image_from_bytes(b).convert("RGB")) for b in pngs]
            yield Report(0, imaging.array_to_tensor(results[first][-1]),
                         stage=f"{len(results)}/{len(ranges)} chunks done [ray]")
        # A chunk's first frame is already written when the run resumed inside it: keep the written ones.
        joined = temporal.join_chunks(ranges, [results[a] for a, _ in ranges], n)
        for i in range(min(a for a, _ in ranges), n):
            if i >= done:
                store.write(i, imaging.array_to_tensor(joined[i]))
        result.seams = [b for _, b in ranges[:-1]]  # where each later chunk takes over alone
        return imaging.array_to_tensor(joined[-1])

    steps = sum(frame_steps(b - a, iterations, opts["later"], opts["consistent"]) for a, b in ranges)
    return Elsewhere(steps, reports, "ray")
