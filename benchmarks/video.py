"""Video benchmark: temporal consistency, style strength and per-frame cost, on clips with known motion.

    python benchmarks/video.py [--size 256] [--frames 10] [--clips pan,zoom,object] [--out bench-video/]

Makes synthetic clips from the bundled pictures and ../shared/images (so the true motion, and which
pixels stay visible, are known exactly):

- pan: a window sliding across a photo by a few pixels a frame;
- zoom: a steady zoom into a photo's centre;
- object: a picture (a disc cut from another photo) moving over a still background photo.

Each clip is styled twice with the same settings: every frame on its own (``consistent=False``),
and with the temporal consistency (``consistent=True``). It prints, per clip:

- warping error: mean |out_t - warp(out_{t-1})| over the pixels that stay visible, with the *true*
  motion (not the optical flow the method itself used), 0..255 scale, and the ratio consistent /
  independent (target: at most 0.35);
- style strength: ../shared/judge/judge_style.py's style_ratio on a few frames of both runs
  (target: consistent within 10% of the independent frames, i.e. of a single picture's);
- cost: seconds of every frame after the first over the first frame's (target: at most 0.4).

The judge is a yardstick run on the written frames; it never takes part in the optimisation.

``--ray``: the pan styled in overlapping chunks on a local Ray cluster (``--chunk``, ``--overlap``):
the warping error of the pairs at the seams (the cross-faded frames and the first frame of the
later chunk alone) against every other pair, and the same chunks joined with shorter fades.

``--dream``: dream-video on the same clips, each frame on its own and with the flow-guided feedback:
warping error, how far the frames moved from their inputs, and the time.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
DATA = ROOT / "deepcanvas" / "data"


def _load(path, side: int) -> torch.Tensor:
    im = Image.open(path).convert("RGB")
    s = side / max(im.size)
    im = im.resize((round(im.width * s), round(im.height * s)), Image.BICUBIC)
    return torch.from_numpy(np.asarray(im, np.float32) / 255).permute(2, 0, 1)[None]


def _sample(src: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """``src`` at pixel coordinates (xs, ys) (bilinear), as a (1, 3, H, W) tensor."""
    h, w = src.shape[-2:]
    grid = torch.stack([xs / (w - 1) * 2 - 1, ys / (h - 1) * 2 - 1], -1)[None]
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _to_u8(t: torch.Tensor) -> np.ndarray:
    return (t[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def make_clip(kind: str, n: int, hw: tuple[int, int], photo, other=None):
    """(frames as uint8 arrays, true backward flows t -> t-1, true visibility masks), both for t = 1..n-1."""
    h, w = hw
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    frames, flows, masks = [], [], []
    if kind == "pan":  # window moving right by v px a frame, down by v/3
        v, u = 4.0, 4.0 / 3
        src = _load(photo, int(max(h, w) * 1.6))
        for t in range(n):
            frames.append(_to_u8(_sample(src, xs + 8 + t * v, ys + 8 + t * u)))
        fl = np.stack([np.full((h, w), v, np.float32), np.full((h, w), u, np.float32)], -1)
        vis = ((xs + v <= w - 1) & (ys + u <= h - 1)).numpy().astype(np.float32)
        flows, masks = [fl] * (n - 1), [vis] * (n - 1)
    elif kind == "zoom":  # zoom in by z a frame about the centre
        z = 1.03
        src = _load(photo, int(max(h, w) * 1.0))
        src = F.interpolate(src, size=(h, w), mode="bilinear", align_corners=True) if src.shape[-2:] != (h, w) else src
        cy, cx = (h - 1) / 2, (w - 1) / 2
        for t in range(n):
            s = z ** t
            frames.append(_to_u8(_sample(src, cx + (xs - cx) / s, cy + (ys - cy) / s)))
        fl = np.stack([((xs - cx) * (1 / z - 1)).numpy(), ((ys - cy) * (1 / z - 1)).numpy()], -1).astype(np.float32)
        flows, masks = [fl] * (n - 1), [np.ones((h, w), np.float32)] * (n - 1)
    elif kind == "object":  # a disc cut from ``other`` moving right over a still background
        bg = F.interpolate(_load(photo, max(h, w)), size=(h, w), mode="bilinear", align_corners=True)
        fg = F.interpolate(_load(other, max(h, w)), size=(h, w), mode="bilinear", align_corners=True)
        r, v = 0.28 * min(h, w), 5.0
        x0, y0 = 0.25 * w, 0.5 * h
        inside = []
        for t in range(n):
            cx = x0 + t * v
            m = (((xs - cx) ** 2 + (ys - y0) ** 2) <= r * r).float()
            # the disc's texture moves with it: sample the foreground at the position relative to the disc
            tex = _sample(fg, xs - t * v, ys)
            frames.append(_to_u8(m * tex + (1 - m) * bg))
            inside.append(m)
        for t in range(1, n):
            m, mp = inside[t], inside[t - 1]
            fl = np.stack([(-v * m).numpy(), np.zeros((h, w), np.float32)], -1).astype(np.float32)
            # visible in t-1 too: object pixels (the disc was there, shifted), background not covered at t-1
            vis = torch.where(m > 0, torch.ones_like(m), 1 - mp)
            # stay clear of the disc's anti-aliased rim
            rim = ((((xs - (x0 + t * v)) ** 2 + (ys - y0) ** 2).sqrt() - r).abs() < 2) | \
                  ((((xs - (x0 + (t - 1) * v)) ** 2 + (ys - y0) ** 2).sqrt() - r).abs() < 2)
            vis = vis * (~rim).float()
            flows.append(fl)
            masks.append(vis.numpy().astype(np.float32))
    else:
        raise ValueError(kind)
    return frames, flows, masks


def warping_errors(outs, flows, masks) -> list[float]:
    """Per pair, mean |out_t - warp(out_{t-1})| over the truly visible pixels, 0..255 scale."""
    from deepcanvas.flow import warping_error

    ts = [torch.from_numpy(np.asarray(o, np.float32) / 255).permute(2, 0, 1)[None] for o in outs]
    return [255 * e for e in warping_error(ts, flows, masks)]


def judge(content: pathlib.Path, style, output: pathlib.Path) -> dict:
    script = SHARED / "judge" / "judge_style.py"
    if not script.is_file():
        return {}
    r = subprocess.run([sys.executable, str(script), str(content), str(style), str(output)], capture_output=True,
                       text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_clip(kind, frames, style, out: pathlib.Path, args, consistent: bool):
    from deepcanvas.techniques.style_video import style_video

    src = out / f"{kind}_input"
    src.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        p = src / f"f{i:03d}.png"
        if not p.exists():
            Image.fromarray(f).save(p)
    dst = out / f"{kind}_{'consistent' if consistent else 'independent'}/"
    t0 = time.perf_counter()
    res = style_video(str(src), [style], str(dst), size=max(frames[0].shape[:2]), fps=10, consistent=consistent,
                      seed=args.seed, restart=consistent or args.restart, iterations=args.iterations,
                      temporal_weight=args.temporal_weight, later_iterations=args.later_iterations)
    wall = time.perf_counter() - t0
    outs = [np.asarray(Image.open(p).convert("RGB")) for p in res.frames]
    return src, res, outs, wall


def ray_seams(args, out: pathlib.Path, photos) -> dict:
    """The pan clip styled in overlapping chunks on a local Ray cluster: warping error at the seams vs elsewhere."""
    from deepcanvas.techniques.style_video import style_video

    hw = (round(args.size * 3 / 4), args.size)
    frames, flows, masks = make_clip("pan", args.frames, hw, photos["pan"])
    src = out / "pan_input_ray"
    src.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(src / f"f{i:03d}.png")
    import ray

    from deepcanvas import temporal

    real_join, raw = temporal.join_chunks, {}

    def keep(ranges, outputs, n):  # the chunks as styled, before the join (for looking at the seams)
        raw.update(ranges=np.array(ranges), **{f"chunk{i}": np.stack(o) for i, o in enumerate(outputs)})
        return real_join(ranges, outputs, n)

    temporal.join_chunks = keep
    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(num_cpus=args.ray_workers, include_dashboard=False, log_to_driver=False)
    try:
        res = style_video(str(src), [args.style], str(out / "pan_ray/"), size=args.size, fps=10, seed=args.seed,
                          restart=True, iterations=args.iterations, temporal_weight=args.temporal_weight,
                          ray="local", chunk=args.chunk, overlap=args.overlap)
    finally:
        ray.shutdown()
        temporal.join_chunks = real_join
    if raw:
        np.savez_compressed(out / "ray_chunks.npz", **raw)
    outs = [np.asarray(Image.open(p).convert("RGB")) for p in res.frames]
    errs = warping_errors(outs, flows, masks)

    def split(errs, seams, overlap):
        # pairs whose later frame lies in a cross-fade or is a seam: (t-1, t) for t in [seam - overlap, seam]
        joined = {t for s in seams for t in range(s - overlap, s + 1)}
        return ([e for t, e in enumerate(errs, start=1) if t in joined],
                [e for t, e in enumerate(errs, start=1) if t not in joined])

    seam_errs, other = split(errs, res.seams, args.overlap)
    row = {"seams": res.seams, "per_pair": [round(e, 2) for e in errs], "seam_pairs_max": max(seam_errs),
           "seam_pairs_mean": float(np.mean(seam_errs)), "other_pairs_max": max(other) if other else None,
           "other_pairs_mean": float(np.mean(other)) if other else None,
           "other_pairs_median": float(np.median(other)) if other else None}
    print(f"ray chunks {args.chunk} overlap {args.overlap}: seams at {res.seams}; warping error at the joins "
          f"mean {row['seam_pairs_mean']:.2f} max {row['seam_pairs_max']:.2f}; other pairs mean "
          f"{row['other_pairs_mean'] or float('nan'):.2f} median {row['other_pairs_median'] or float('nan'):.2f} "
          f"max {row['other_pairs_max'] or float('nan'):.2f}", flush=True)
    # The same chunks joined with a shorter fade: over the last k frames of the overlap only (the earlier chunk
    # alone before them), k = 0 being a hard cut at the seam. (A run with overlap k would start the later chunk
    # later; its texture differs from the earlier chunk's by as much either way.)
    if raw and len(res.seams) == 1:
        (a0, b), (p, c) = [tuple(int(x) for x in r) for r in raw["ranges"]]
        sweep = {}
        for k in range(0, b - p + 1):
            later = list(raw["chunk1"][b - k - p:])
            e = warping_errors(temporal.join_chunks([(a0, b), (b - k, c)], [list(raw["chunk0"]), later], c),
                               flows, masks)
            s_, o_ = split(e, res.seams, k)
            sweep[k] = {"seam_mean": float(np.mean(s_)), "seam_max": max(s_), "other_mean": float(np.mean(o_)),
                        "other_median": float(np.median(o_)), "other_max": max(o_)}
            print(f"  fade over {k} frames: joins mean {np.mean(s_):.2f} max {max(s_):.2f}; other pairs mean "
                  f"{np.mean(o_):.2f} median {np.median(o_):.2f} max {max(o_):.2f}; joins mean / other mean "
                  f"{np.mean(s_) / np.mean(o_):.3f}, joins max / other max {max(s_) / max(o_):.3f}", flush=True)
        row["fade_sweep"] = sweep
    return row


def dream_clips(args, out: pathlib.Path, photos) -> dict:
    """dream-video on the same clips, each frame on its own and with the flow-guided feedback.

    DeepDream has no loss to compare with a single picture, so the figures are the warping error (along the
    true motion), how far each frame moved from its input frame (mean |dream - input|: the feedback must
    not make the dream fade or run away), and the cost: later frames' time over the first's, and the
    consistent run's wall time over the independent one's (the flows are the overhead).
    """
    from deepcanvas.techniques.dream_video import dream_video

    hw = (round(args.size * 3 / 4), args.size)
    summary = {}
    for n, kind in enumerate(args.clips.split(",")):
        frames, flows, masks = make_clip(kind, args.frames, hw, photos[kind], DATA / "astronaut.jpg")
        src = out / f"{kind}_input"
        src.mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(frames):
            Image.fromarray(f).save(src / f"f{i:03d}.png")
        if n == 0:  # warm up (imports, the first convolutions' set-up) so that no run's first frame pays for it
            dream_video(str(src), str(out / "warmup/"), size=args.size, fps=10, duration=0.2, restart=True,
                        iterations=1)
        row = {}
        for consistent in (False, True):
            dst = out / f"{kind}_dream_{'consistent' if consistent else 'independent'}/"
            t0 = time.perf_counter()
            res = dream_video(str(src), str(dst), size=args.size, fps=10, consistent=consistent, seed=args.seed,
                              restart=True, iterations=args.dream_iterations, blend=args.blend,
                              later_iterations=args.dream_later)
            wall = time.perf_counter() - t0
            outs = [np.asarray(Image.open(p).convert("RGB")) for p in res.frames]
            errs = warping_errors(outs, flows, masks)
            spf = res.seconds_per_frame
            change = [float(np.abs(o.astype(np.float32) - f.astype(np.float32)).mean()) for o, f in zip(outs, frames)]
            row["consistent" if consistent else "independent"] = {
                "warp_err": float(np.mean(errs)), "warp_err_per_pair": [round(e, 2) for e in errs],
                "change_from_input": [round(c, 2) for c in change], "first_s": spf[0],
                "later_over_first": float(np.mean(spf[1:]) / spf[0]) if len(spf) > 1 else None,
                "frames_s": float(np.sum(spf)), "wall_s": wall}
        c, i = row["consistent"], row["independent"]
        row["warp_ratio"] = c["warp_err"] / i["warp_err"]
        row["time_ratio"] = c["frames_s"] / i["frames_s"]
        summary[kind] = row
        print(f"dream {kind:7s} warping error {i['warp_err']:.2f} -> {c['warp_err']:.2f} (x{row['warp_ratio']:.3f}); "
              f"|dream - input| indep {np.mean(i['change_from_input']):.1f} consistent "
              f"{np.mean(c['change_from_input']):.1f} (first {c['change_from_input'][0]:.1f}, last "
              f"{c['change_from_input'][-1]:.1f}); later/first frame time indep {i['later_over_first']:.2f} "
              f"consistent {c['later_over_first']:.2f}; time consistent/indep {row['time_ratio']:.2f} "
              f"({c['frames_s']:.0f} s / {i['frames_s']:.0f} s)", flush=True)
    return summary


def side_by_side_gif(out: pathlib.Path, kind: str, path: pathlib.Path, fps: float = 6) -> None:
    """input | each frame on its own | consistent, as one looping GIF (for the README)."""
    from deepcanvas.clip import write_gif

    ins = sorted((out / f"{kind}_input").glob("f*.png"))
    ind = sorted((out / f"{kind}_independent").glob("frame_*.png"))
    con = sorted((out / f"{kind}_consistent").glob("frame_*.png"))
    rows = []
    for a, b, c in zip(ins, ind, con):
        ims = [np.asarray(Image.open(p).convert("RGB")) for p in (a, b, c)]
        gap = np.full((ims[0].shape[0], 4, 3), 255, np.uint8)
        rows.append(np.concatenate([ims[0], gap, ims[1], gap, ims[2]], 1))
    write_gif(rows + rows[::-1][1:-1], path, fps)  # there and back: the loop has no jump


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--clips", default="pan,zoom,object")
    ap.add_argument("--style", default=str(SHARED / "images" / "starry_night.jpg"))
    ap.add_argument("--out", default="bench-video")
    ap.add_argument("--iterations", type=int, default=None)
    ap.add_argument("--later-iterations", type=int, default=None)
    ap.add_argument("--temporal-weight", type=float, default=5.0)
    ap.add_argument("--judge-frames", type=int, default=3, help="frames per run given to the judge")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--restart", action="store_true",
                    help="redo the independent runs too (by default finished ones are reused: they do not change)")
    ap.add_argument("--gif", default=None, help="write input | independent | consistent of the pan clip here")
    ap.add_argument("--ray", action="store_true", help="only the seams of chunks joined on a local Ray cluster")
    ap.add_argument("--chunk", type=int, default=10)
    ap.add_argument("--overlap", type=int, default=8)
    ap.add_argument("--ray-workers", type=int, default=2)
    ap.add_argument("--dream", action="store_true", help="only dream-video (flow-guided feedback) on the clips")
    ap.add_argument("--dream-iterations", type=int, default=10)
    ap.add_argument("--blend", type=float, default=0.6)
    ap.add_argument("--dream-later", type=int, default=None, help="dream-video's later_iterations")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    photos = {"pan": SHARED / "images" / "tubingen.jpg", "zoom": DATA / "chelsea.jpg", "object": DATA / "coffee.jpg"}
    if not photos["pan"].is_file():
        photos["pan"] = DATA / "astronaut.jpg"
    if args.ray:
        row = ray_seams(args, out, photos)
        (out / "ray_seams.json").write_text(json.dumps({"size": args.size, "frames": args.frames,
                                                        "args": vars(args), "ray": row}, indent=1))
        return
    if args.dream:
        rows = dream_clips(args, out, photos)
        (out / "dream_summary.json").write_text(json.dumps({"size": args.size, "frames": args.frames,
                                                           "args": vars(args), "clips": rows}, indent=1))
        return
    hw = (round(args.size * 3 / 4), args.size)
    summary = {}
    for kind in args.clips.split(","):
        frames, flows, masks = make_clip(kind, args.frames, hw, photos[kind], DATA / "astronaut.jpg")
        row = {}
        for consistent in (False, True):
            src, res, outs, wall = run_clip(kind, frames, args.style, out, args, consistent)
            errs = warping_errors(outs, flows, masks)
            spf = res.seconds_per_frame
            pick = sorted({0, len(outs) // 2, len(outs) - 1})[: args.judge_frames]
            ratios = [judge(src / f"f{i:03d}.png", args.style, res.frames[i]).get("style_ratio") for i in pick]
            key = "consistent" if consistent else "independent"
            row[key] = {"warp_err": float(np.mean(errs)), "warp_err_per_pair": [round(e, 2) for e in errs],
                        "later_over_first": float(np.mean(spf[1:]) / spf[0]) if len(spf) > 1 else None,
                        "first_s": spf[0], "wall_s": wall, "style_ratio": ratios, "judged_frames": pick}
        row["warp_ratio"] = row["consistent"]["warp_err"] / row["independent"]["warp_err"]
        sr_c = [x for x in row["consistent"]["style_ratio"] if x is not None]
        sr_i = [x for x in row["independent"]["style_ratio"] if x is not None]
        if sr_c and sr_i:
            row["style_ratio_change"] = float(np.mean(sr_c) / np.mean(sr_i) - 1)
        summary[kind] = row
        c, i = row["consistent"], row["independent"]
        print(f"{kind:7s} warping error {i['warp_err']:.2f} -> {c['warp_err']:.2f} (x{row['warp_ratio']:.3f}); "
              f"style_ratio indep {np.mean(sr_i) if sr_i else float('nan'):.3f} consistent "
              f"{np.mean(sr_c) if sr_c else float('nan'):.3f}; later/first frame time {c['later_over_first']:.3f} "
              f"(first {c['first_s']:.1f} s)", flush=True)
    (out / "summary.json").write_text(json.dumps({"size": hw, "frames": args.frames, "args": vars(args),
                                                  "clips": summary}, indent=1))
    print(f"wrote {out / 'summary.json'}")
    if args.gif:
        side_by_side_gif(out, args.clips.split(",")[0], pathlib.Path(args.gif))
        print(f"wrote {args.gif}")


if __name__ == "__main__":
    main()
