"""Style transfer speed and quality on ../shared/images (tubingen.jpg x starry_night.jpg), CPU by default.

    .venv/bin/python benchmarks/style_speed.py                       # 256 and 512 px, deepcanvas defaults
    .venv/bin/python benchmarks/style_speed.py --reference 1000      # + neural-style-pt's way, 1000 iterations
    .venv/bin/python benchmarks/style_speed.py --reference 60        # fewer: only its seconds per iteration
    .venv/bin/python benchmarks/style_speed.py --reference 30 --reference-result out/bench/reference_512_1000.json
                                          # compare with an earlier 1000-iteration run's losses, at today's speed
    .venv/bin/python benchmarks/style_speed.py --levers 256          # what each speed lever buys
    .venv/bin/python benchmarks/style_speed.py --memory 512,1024,2048,4096   # peak memory

Each run is a child process so its peak memory (RSS) is its own. Final content and style losses are
measured the same way for every run: neural-style-pt's definitions and weights (content relu4_2 x 5,
style relu1_1..relu5_1 x 100, Gram / (C*H*W), MSE) at the output size, on the written image.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "images"
CONTENT, STYLE = SHARED / "tubingen.jpg", SHARED / "starry_night.jpg"


def nspt_losses(image, size: int, device="cpu") -> dict:
    """neural-style-pt's content, style and TV losses of ``image`` (weights included), and their sum:
    the objective both neural-style-pt and the preset minimise."""
    import torch

    from deepcanvas import imaging, io, models
    from deepcanvas.objectives import Content, Style, gram
    from deepcanvas.param import resize
    from deepcanvas.techniques.common import fit_size
    from deepcanvas.techniques.style import loss_setup

    nspt = loss_setup("neural-style-pt")  # its weights and TV, as the preset uses them
    net = models.load_model("vgg16", device=device)
    x = imaging.image_to_tensor(image)
    c = imaging.image_to_tensor(io.load_image(CONTENT))
    s = imaging.image_to_tensor(io.load_image(STYLE))
    hw = x.shape[-2:]
    c = resize(c, tuple(hw))
    s = resize(s, fit_size(*s.shape[-2:], size))
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    with torch.no_grad():
        ca, sa, xa = net(c, ["relu4_2"]), net(s, layers), net(x, layers + ["relu4_2"])
        content = nspt.content_weight * Content("relu4_2", ca["relu4_2"], "mse").loss(xa, x).item()
        style = sum(nspt.style_weight * Style(l, gram(sa[l], "chw"), "mse").loss(xa, x).item() for l in layers)
        tv = nspt.tv_weight * nspt.tv.loss(xa, x).item()
    return {"content_loss": content, "style_loss": style, "tv_loss": tv, "objective": content + style + tv}


def io_image(path, size: int):
    """``path`` at ``size`` px on its longest side, as the runs' outputs are."""
    from deepcanvas import imaging, io
    from deepcanvas.param import resize
    from deepcanvas.techniques.common import fit_size

    t = imaging.image_to_tensor(io.load_image(path))
    return imaging.tensor_to_image(resize(t, fit_size(*t.shape[-2:], size)))


def run_one(cfg: dict) -> dict:
    import torch

    import deepcanvas

    if cfg.get("threads"):
        torch.set_num_threads(cfg["threads"])
    kw = dict(cfg["kwargs"])
    t0 = time.perf_counter()
    last, first = None, None
    for last in deepcanvas.style_transfer_steps(CONTENT, STYLE, size=cfg["size"], seed=0, **kw):
        if first is None:
            first = (last.iteration, time.perf_counter())
        if not last.done:
            end = (last.iteration, time.perf_counter())
    wall = time.perf_counter() - t0
    out = Path(cfg["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    last.image.save(out)
    res = {"name": cfg["name"], "size": cfg["size"], "wall_s": wall, "iterations": last.total,
           "s_per_it_loop": (end[1] - first[1]) / max(1, end[0] - first[0]), "image": str(out)}
    if not cfg.get("no_losses"):
        res.update(nspt_losses(last.image, cfg["size"]))
    res["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return res


def child(cfg: dict) -> dict:
    r = subprocess.run([sys.executable, __file__, "--one", json.dumps(cfg)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"run {cfg['name']} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def per_iteration_cost(size: int) -> dict:
    """FLOPs of one forward+backward of the default style objective, and its time."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from deepcanvas import models
    from deepcanvas.techniques.common import fit_size

    net = models.load_model("vgg16")
    h, w = fit_size(768, 1024, size)
    x = torch.rand(1, 3, h, w, requires_grad=True)
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]

    def step():
        acts = net(x, layers)
        sum(a.pow(2).mean() for a in acts.values()).backward()

    with FlopCounterMode(display=False) as fc:
        step()
    flops = fc.get_total_flops()
    step()
    n, t0 = 3, time.perf_counter()
    for _ in range(n):
        step()
    dt = (time.perf_counter() - t0) / n
    return {"size": size, "gflop": flops / 1e9, "s": dt, "gflops_per_s": flops / dt / 1e9}


def levers(size: int, out: str, threads: int) -> None:
    """What each speed lever buys: per-iteration micro-measurements, then schedules at equal settings."""
    import copy

    import torch

    from deepcanvas import models
    from deepcanvas.techniques.common import fit_size
    from deepcanvas.techniques.style_targets import StyleTargets
    from deepcanvas import imaging, io

    net = models.load_model("vgg16")
    h, w = fit_size(768, 1024, size)
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]

    def timed(fn):
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    def step_fn(model, x, extra=()):
        def step():
            x.grad = None
            acts = model(x, layers + list(extra))
            sum(acts[l].pow(2).mean() for l in layers).backward()
        return step

    x = torch.rand(1, 3, h, w, requires_grad=True)
    xc = torch.rand(1, 3, h, w).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    net_cl = copy.deepcopy(net).to(memory_format=torch.channels_last)
    n_threads = torch.get_num_threads()

    def one_thread(fn):
        def run():
            torch.set_num_threads(1)
            try:
                fn()
            finally:
                torch.set_num_threads(n_threads)
        return run

    configs = [("baseline: forward to relu5_1, backward", step_fn(net, x)),
               ("no early stop: forward through pool5", step_fn(net, x, [net.layer_names[-1]])),
               ("channels-last", step_fn(net_cl, xc)),
               (f"1 thread instead of {n_threads}", one_thread(step_fn(net, x)))]
    try:
        compiled = torch.compile(net)
        t0 = time.perf_counter()
        step_fn(compiled, x)()
        configs.append((f"torch.compile (first call {time.perf_counter() - t0:.0f} s)", step_fn(compiled, x)))
    except Exception as e:  # no compiler toolchain: say so
        print(f"torch.compile unavailable: {type(e).__name__}: {e}")
    # Round-robin, best of 4 each: a noisy machine slows every config alike, not just one.
    best = {name: float("inf") for name, _ in configs}
    for name, fn in configs:
        fn()
    for _ in range(4):
        for name, fn in configs:
            best[name] = min(best[name], timed(fn))
    base = best[configs[0][0]]
    rows = list(best.items())
    s_img = imaging.image_to_tensor(io.load_image(STYLE))
    targets = StyleTargets()
    t0 = time.perf_counter()
    targets.grams(net, [s_img], [1.0], tuple(layers), size, "chw")
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    targets.grams(net, [s_img], [1.0], tuple(layers), size, "chw")
    warm = time.perf_counter() - t0
    print(f"\nper iteration at {size} px (forward + backward, style layers + relu4_2):")
    for name, t in rows:
        print(f"  {name:48} {t:7.3f} s   {t / base:5.2f}x")
    print(f"  style targets, computed {cold:.3f} s, memoised {warm * 1000:.2f} ms (saved per image of a batch)")

    def run(name, kw):
        return child({"name": name, "size": size, "kwargs": kw, "threads": threads,
                      "out": f"{out}/lever_{size}_{name.replace(' ', '_').replace(',', '')}.png"})

    ref = {"preset": "neural-style-pt", "multiscale": False, "optimizer": "lbfgs", "range_weight": 0,
           "line_search": False}
    runs = [
        run("reference way, 100 its", {**ref, "init": "noise", "iterations": 100}),
        run("+ content init", {**ref, "iterations": 100}),
        run("+ line search", {**ref, "iterations": 100, "line_search": True}),
        run("+ range penalty", {**ref, "iterations": 100, "line_search": True, "range_weight": None}),
        run("+ multi-scale, 30 its at full size", {"preset": "neural-style-pt", "multiscale": True,
                                                   "iterations": 30}),
    ]
    print(f"\nneural-style-pt's losses at {size} px, one lever added per row:")
    print(f"  {'run':40} {'iters':>6} {'wall s':>7} {'content':>9} {'style':>9}")
    for r in runs:
        print(f"  {r['name']:40} {r['iterations']:>6} {r['wall_s']:>7.1f} {r['content_loss']:>9.4g} {r['style_loss']:>9.4g}")


def peak_conv_flops() -> float:
    import torch
    import torch.nn.functional as F

    x, wt = torch.rand(1, 256, 128, 128), torch.rand(256, 256, 3, 3)
    F.conv2d(x, wt, padding=1)
    n, t0 = 5, time.perf_counter()
    for _ in range(n):
        F.conv2d(x, wt, padding=1)
    dt = (time.perf_counter() - t0) / n
    return 2 * 256 * 256 * 9 * 128 * 128 / dt / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--reference", type=int, default=0, metavar="N",
                    help="also run neural-style-pt's way (single scale, random init, L-BFGS) for N iterations")
    ap.add_argument("--reference-sizes", default="512")
    ap.add_argument("--like-for-like", action="store_true",
                    help="also run deepcanvas with --preset neural-style-pt (content init, L-BFGS, single scale)")
    ap.add_argument("--extra", default="", help="extra style_transfer kwargs as JSON for the deepcanvas runs")
    ap.add_argument("--also", default="", metavar="JSON",
                    help="one more deepcanvas run per size with these kwargs, e.g. '{\"iterations\": 30}'")
    ap.add_argument("--like-for-like-extra", default="", metavar="JSON",
                    help="extra kwargs for the --like-for-like run only, e.g. '{\"iterations\": 30}'")
    ap.add_argument("--out", default=str(ROOT / "out" / "bench"))
    ap.add_argument("--no-flops", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch threads in every run (default: torch's choice)")
    ap.add_argument("--reference-result", metavar="JSON",
                    help="final losses of an earlier, longer reference run (the JSON line it printed, in a file): "
                         "compare against those, and against its time per iteration scaled to its iterations")
    ap.add_argument("--memory", default="", metavar="SIZES",
                    help="only measure peak memory: 2 full-size iterations at each size, e.g. 512,1024,2048,4096")
    ap.add_argument("--levers", type=int, default=0, metavar="SIZE",
                    help="only measure what each speed lever buys, at this size")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(json.loads(args.one))))
        return
    if not CONTENT.is_file():
        raise SystemExit(f"missing {CONTENT}")
    import torch

    from deepcanvas.models.vgg import CAFFE_MEAN_BGR

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores")
    extra = json.loads(args.extra) if args.extra else {}
    lfl_extra = json.loads(args.like_for_like_extra) if args.like_for_like_extra else {}
    if args.levers:
        if args.threads:
            torch.set_num_threads(args.threads)
        levers(args.levers, args.out, args.threads)
        return
    if args.memory:
        print(f"\n{'size':>6} {'tiled':>6} {'s/it':>8} {'peak RSS MiB':>13}")
        for size in [int(s) for s in args.memory.split(",")]:
            r = child({"name": "memory", "size": size, "kwargs": {"multiscale": False, "iterations": 2, **extra},
                       "out": f"{args.out}/memory_{size}.png", "no_losses": True, "threads": args.threads})
            tiled = "yes" if size > extra.get("tile", 1024) else "no"
            print(f"{size:>6} {tiled:>6} {r['wall_s'] / 2:>8.1f} {r['peak_rss_mib']:>13.0f}", flush=True)
        return
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        results.append(child({"name": "deepcanvas", "size": size, "kwargs": extra, "threads": args.threads,
                              "out": f"{args.out}/deepcanvas_{size}.png"}))
        if args.also:
            also = json.loads(args.also)
            tag = ",".join(f"{k}={v}" for k, v in also.items())
            results.append(child({"name": f"deepcanvas {tag}", "size": size, "kwargs": {**extra, **also},
                                  "threads": args.threads, "out": f"{args.out}/deepcanvas_{size}_also.png"}))
        if args.like_for_like:
            tag = ",".join(f"{k}={v}" for k, v in lfl_extra.items())
            results.append(child({"name": f"deepcanvas+nspt-preset {tag}".strip(), "size": size,
                                  "kwargs": {"preset": "neural-style-pt", **extra, **lfl_extra},
                                  "threads": args.threads,
                                  "out": f"{args.out}/deepcanvas_nsptpreset_{size}.png"}))
    if args.reference:
        for size in [int(s) for s in args.reference_sizes.split(",")]:
            results.append(child({"name": f"neural-style-pt way x{args.reference}", "size": size,
                                  "kwargs": {"preset": "neural-style-pt", "multiscale": False, "init": "noise",
                                             "optimizer": "lbfgs", "iterations": args.reference,
                                             "range_weight": 0, "line_search": False},
                                  "threads": args.threads,
                                  "out": f"{args.out}/reference_{size}_{args.reference}.png"}))
    print(f"\n{'run':40} {'size':>5} {'iters':>6} {'wall s':>8} {'s/it':>7} {'content':>10} {'style':>10} "
          f"{'TV':>10} {'total':>10} {'peak MiB':>9}")
    for r in results:
        print(f"{r['name']:40} {r['size']:>5} {r['iterations']:>6} {r['wall_s']:>8.1f} {r['wall_s'] / r['iterations']:>7.3f} "
              f"{r['content_loss']:>10.4g} {r['style_loss']:>10.4g} {r['tv_loss']:>10.4g} {r['objective']:>10.4g} "
              f"{r['peak_rss_mib']:>9.0f}")
    for size in sorted({r["size"] for r in results}):
        # Yardsticks: what an untouched photo and a flat image score on the same losses.
        c = io_image(CONTENT, size)
        flat = Image.new("RGB", c.size, tuple(round(v) for v in reversed(CAFFE_MEAN_BGR)))
        for name, img in (("the content photo, unchanged", c), ("a flat mean-colour image", flat)):
            m = nspt_losses(img, size)
            print(f"{name:40} {size:>5} {'':>6} {'':>8} {'':>7} {m['content_loss']:>10.4g} {m['style_loss']:>10.4g} "
                  f"{m['tv_loss']:>10.4g} {m['objective']:>10.4g}")
    ref = [r for r in results if r["name"].startswith("neural-style-pt")]
    if args.reference_result:
        # Its losses, with the time its iterations would take at the speed measured in this run.
        earlier = json.loads(Path(args.reference_result).read_text().strip().splitlines()[-1])
        if "objective" not in earlier:  # written before TV was measured: measure its image
            earlier.update(nspt_losses(Image.open(earlier["image"]).convert("RGB"), earlier["size"]))
        now = [r for r in ref if r["size"] == earlier["size"]]
        if not now:
            raise SystemExit(f"--reference-result needs --reference N --reference-sizes {earlier['size']} for its speed")
        # Setup as measured now, and every further iteration at this run's pace (iterations cost the same).
        wall = now[0]["wall_s"] + (earlier["iterations"] - now[0]["iterations"]) * now[0]["s_per_it_loop"]
        ref = [{**earlier, "name": f"{earlier['name']} (losses from {args.reference_result})", "wall_s": wall}]
        print(f"{ref[0]['name']}: {earlier['iterations']} iterations at {now[0]['s_per_it_loop']:.3f} s/it "
              f"(measured above) = {wall:.0f} s; content {earlier['content_loss']:.4g}, style {earlier['style_loss']:.4g}, "
              f"TV {earlier['tv_loss']:.4g}, total {earlier['objective']:.4g}")
    for r in ref:
        ours = [o for o in results if o["size"] == r["size"] and not o["name"].startswith("neural")]
        for o in ours:
            print(f"{o['name']} vs reference at {r['size']} px: time ratio {o['wall_s'] / r['wall_s']:.3f}, "
                  f"content ratio {o['content_loss'] / r['content_loss']:.3g}, "
                  f"style ratio {o['style_loss'] / r['style_loss']:.3g}, "
                  f"total ratio {o['objective'] / r['objective']:.3g}")
    if not args.no_flops:
        peak = peak_conv_flops()
        print(f"\npeak: one large 3x3 convolution (256->256 ch, 128x128): {peak:.1f} GFLOP/s")
        for size in (256, 512):
            c = per_iteration_cost(size)
            print(f"forward+backward to relu5_1 at {size} px: {c['gflop']:.1f} GFLOP, {c['s']:.3f} s, "
                  f"{c['gflops_per_s']:.1f} GFLOP/s ({100 * c['gflops_per_s'] / peak:.0f}% of peak)")
    print(f"\nimages in {args.out}/")


if __name__ == "__main__":
    main()
