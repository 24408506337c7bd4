"""Prove the CUDA path end to end and print one table (run by benchmarks/gpu_check.sh).

    python benchmarks/gpu_check.py                  # on a CUDA card: about 5 minutes on a recent one
    python benchmarks/gpu_check.py --device cpu --quick   # the same checks, an eighth of the size, on the CPU

Rows: style transfer at 512 and 1024 px in fp32 and bf16 (time, peak memory, losses, and how far the
bf16 picture is from the fp32 one), a 1024 px DeepDream, a class visualization, and a tiled 4096 px
style transfer (tiles of 1024 px, so memory is bounded by the tile). Every row must end with ok;
the script exits 1 otherwise. Images go to --out for a look.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import deepcanvas as dc  # noqa: E402

DATA = ROOT / "deepcanvas" / "data"


def peak_gib(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB, process lifetime peak


def reset(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def timed(where, func, *args, **kw):
    """Run a *_steps generator to its end on ``where``: (last Progress, seconds, peak GiB)."""
    reset(where)
    t = time.perf_counter()
    last = dc.drive(func(*args, **kw))
    if where.startswith("cuda"):
        torch.cuda.synchronize()
    return last, time.perf_counter() - t, peak_gib(where)


def pixels(p) -> np.ndarray:
    return np.asarray(p.image.convert("RGB"), dtype=np.float32) / 255


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="an eighth of every size (a CPU check of the script)")
    ap.add_argument("--out", default="out/gpu_check", help="folder for the pictures")
    ap.add_argument("--iterations", type=int, default=60, help="style iterations at 512/1024 px")
    args = ap.parse_args()
    dev = args.device
    if dev.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible to this torch", torch.__version__, file=sys.stderr)
        return 1
    k = 8 if args.quick else 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name() if dev.startswith("cuda") else f"CPU ({os.cpu_count()} cores)"
    print(f"# deepcanvas gpu_check on {name}, torch {torch.__version__}, "
          f"{'quick (sizes / 8)' if args.quick else 'full sizes'}", flush=True)
    rows = []
    ok = True

    def row(what, size, prec, secs, its, mem, note, good=True):
        nonlocal ok
        ok &= bool(good)
        rows.append((what, size, prec, f"{secs:.1f}", f"{secs / max(its, 1):.3f}", f"{mem:.2f}", note,
                     "ok" if good else "FAIL"))
        print(" | ".join(map(str, rows[-1])), flush=True)

    content, style = DATA / "chelsea.jpg", DATA / "swirls.jpg"
    dc.load_model("vgg16", device=dev)  # the one-off weight conversion is not part of any timing
    dc.load_model("efficientnet-lite0", device=dev)
    for size in (512 // k, 1024 // k):
        res = {}
        for prec in ("fp32", "bf16"):
            last, secs, mem = timed(dev, dc.style_transfer_steps, content, [style], size=size,
                                    iterations=args.iterations, seed=0, device=dev, precision=prec)
            last.image.save(out / f"style_{size}_{prec}.png")
            res[prec] = last
            finite = np.isfinite(last.loss)
            row("style", size, prec, secs, last.total, mem, f"loss {last.loss:.4g}", finite)
        diff = float(np.abs(pixels(res["bf16"]) - pixels(res["fp32"])).mean())
        ratio = res["bf16"].loss / res["fp32"].loss
        rows.append(("  bf16 vs fp32", size, "", "", "", "", f"mean |pixel diff| {diff:.4f}, loss ratio {ratio:.3f}",
                     # Adam's path from the same start diverges with any rounding, so the pictures differ in
                     # detail (CPU check: 0.08-0.09 mean |diff|); the losses must agree.
                     "ok" if 0.9 < ratio < 1.1 and diff < 0.2 else "FAIL"))
        ok &= rows[-1][-1] == "ok"
        print(" | ".join(map(str, rows[-1])), flush=True)

    last, secs, mem = timed(dev, dc.dream_steps, DATA / "coffee.jpg", size=1024 // k, seed=0, device=dev)
    last.image.save(out / "dream.png")
    row("dream", 1024 // k, "auto", secs, last.total, mem, f"loss {last.loss:.4g}", np.isfinite(last.loss))

    last, secs, mem = timed(dev, dc.visualize_class_steps, "goldfinch", size=224 // (2 if args.quick else 1),
                            iterations=512 // (4 if args.quick else 1), seed=0, device=dev)
    last.image.save(out / "classviz.png")
    with torch.no_grad():
        net = dc.load_model("efficientnet-lite0", device=dev)
        prob = float(net(last.tensor.to(dev), ["logits"])["logits"].float().softmax(-1)[0, 11])  # 11: goldfinch
    row("classviz goldfinch", last.tensor.shape[-1], "auto", secs, last.total, mem, f"p(goldfinch) {prob:.3f}",
        np.isfinite(last.loss))

    big, tile = 4096 // k, 1024 // k
    last, secs, mem = timed(dev, dc.style_transfer_steps, content, [style], size=big, tile=max(tile, 384),
                            iterations=3, seed=0, device=dev)
    last.image.save(out / "style_tiled.png")
    row("style tiled", big, "auto", secs, last.total, mem, f"tile {max(tile, 384)} px, loss {last.loss:.4g}",
        np.isfinite(last.loss))

    # A default print (issue 21): 512 px with the defaults, then 1024, 2048, 4096 px refined from it.
    last, secs, mem = timed(dev, dc.style_transfer_steps, content, [style], size=big, seed=0, device=dev,
                            working_size=512 // k)
    last.image.save(out / "print_default.png")
    row("style print (defaults)", big, "auto", secs, last.total, mem, f"loss {last.loss:.4g}",
        np.isfinite(last.loss))

    print("\n| check | px | precision | wall s | s/it | peak GiB | note | |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(map(str, r)) + " |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
