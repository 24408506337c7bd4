"""One style step at 512 px on the CPU, fp32 against bf16 autocast: seconds and the image gradients' cosine.

The step is what a style transfer's step costs: HED-VGG16 (the default network) forward to relu5_1 and
back to the image, with fp32 losses on the activations. Prints one line per precision, then the cosine.

    python benchmarks/bf16_step.py [--size 512] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import deepcanvas as dc
from deepcanvas.techniques.common import load_tensor
from deepcanvas.param import resize
from deepcanvas.precision import autocast_for, cpu_has_native_bf16

LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]
PHOTO = Path(__file__).resolve().parent.parent / ".." / "shared" / "tubingen.jpg"


def step(net, img: torch.Tensor, prec: str) -> tuple[float, torch.Tensor]:
    x = img.clone().requires_grad_(True)
    t0 = time.perf_counter()
    with autocast_for(torch.device("cpu"), prec):
        acts = net(x, LAYERS)
    loss = sum(a.float().pow(2).mean() for a in acts.values())  # fp32 loss sums, as the objectives do
    loss.backward()
    return time.perf_counter() - t0, x.grad.detach().clone()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    torch.manual_seed(0)
    net = dc.load_model("vgg16")
    img = load_tensor(PHOTO, "photo") if PHOTO.is_file() else None
    img = resize(img, (a.size * 3 // 4, a.size)) if img is not None else torch.rand(1, 3, a.size * 3 // 4, a.size)
    print(f"threads {torch.get_num_threads()}, native bf16: {cpu_has_native_bf16()}, image {tuple(img.shape[-2:])}")
    grads = {}
    for prec in ("fp32", "bf16"):
        step(net, img, prec)  # warm-up: kernels chosen, memory allocated
        times = []
        for _ in range(a.repeats):
            t, grads[prec] = step(net, img, prec)
            times.append(t)
        print(f"{prec}: median {sorted(times)[len(times) // 2]:.2f} s per step ({', '.join(f'{t:.2f}' for t in times)})")
    g32, g16 = grads["fp32"].flatten(), grads["bf16"].flatten()
    print(f"cosine(bf16 gradient, fp32 gradient) = {float(torch.nn.functional.cosine_similarity(g32, g16, dim=0)):.5f}")


if __name__ == "__main__":
    main()
