"""A step through forward hooks (any nn.Module) against the native LayeredNet stage walk, side by side.

For vgg16 (style layers, as style transfer reads them) and efficientnet-lite0 (logits, as classviz reads
them): forward + backward to the image, the two paths interleaved in one run so that the machine's
load hits both alike; median of the rounds. ``python benchmarks/anymodel.py [--size 256] [--rounds 30]``.
"""
import argparse
import statistics
import time

import torch

from deepcanvas import models
from deepcanvas.models.hooked import HookedNet


def step(net, x, layers):
    x = x.detach().requires_grad_(True)
    acts = net(x, layers)
    sum(a.float().pow(2).mean() for a in acts.values()).backward()
    return x.grad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    dev = models.resolve_device(args.device)
    torch.set_grad_enabled(True)
    cases = [("vgg16", lambda n: n.body.features, ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"],
              lambda n, names: [str(n.layer_names.index(l)) for l in names]),
             ("efficientnet-lite0", lambda n: n.body, ["logits"], lambda n, names: names)]
    for name, plain, layers, paths in cases:
        native = models.load_model(name, device=dev)
        hooked = HookedNet(plain(native), native.preprocess, name="plain").to(dev)
        x = torch.rand(1, 3, args.size, args.size, device=dev)
        hl = paths(native, layers)
        assert torch.allclose(step(native, x, layers), step(hooked, x, hl), atol=1e-5, rtol=1e-4)
        times = {"native": [], "hooks": []}
        for _ in range(args.rounds):
            for label, net, ls in (("native", native, layers), ("hooks", hooked, hl)):
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                step(net, x, ls)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                times[label].append(time.perf_counter() - t)
        a, b = (statistics.median(times[k][2:]) for k in ("native", "hooks"))
        print(f"{name:20s} {dev.type} {args.size}px  native {a * 1e3:7.2f} ms  hooks {b * 1e3:7.2f} ms  "
              f"({(b / a - 1) * 100:+.1f}%)")


if __name__ == "__main__":
    main()
