"""Test doubles and helpers shared by the test modules: ``from doubles import ...``.

(pytest puts tests/ on sys.path through ``pythonpath`` in pyproject.toml; fixtures stay in conftest.py.)
"""
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from deepcanvas.models.layered import LayeredNet, Preprocess
from deepcanvas.objectives import Objective

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "images"
DATA = ROOT / "deepcanvas" / "data"


def check_gradient(f, x: torch.Tensor, directions: int = 6, eps: float = 1e-2) -> None:
    """Autograd's gradient against central finite differences along random directions.

    (The objectives compute their losses in float32 whatever the input, so a
    float64 gradcheck's tolerances are out of reach; directional derivatives
    with a step of 1e-2 on a float64 network agree to ~1e-5 here.)
    """
    x = x.detach().clone().requires_grad_(True)
    f(x).backward()
    g = x.grad.detach()
    gen = torch.Generator().manual_seed(1)
    for _ in range(directions):
        v = torch.randn(x.shape, generator=gen, dtype=x.dtype)
        v /= v.norm()
        with torch.no_grad():
            fd = (float(f(x + eps * v)) - float(f(x - eps * v))) / (2 * eps)
        an = float((g * v).sum())
        assert an == pytest.approx(fd, rel=2e-3, abs=2e-5), (an, fd)
    # and one coordinate where the gradient is largest
    i = int(g.abs().argmax())
    e = torch.zeros_like(x).view(-1)
    e[i] = 1
    e = e.view_as(x)
    with torch.no_grad():
        fd = (float(f(x + eps * e)) - float(f(x - eps * e))) / (2 * eps)
    assert float(g.view(-1)[i]) == pytest.approx(fd, rel=2e-3, abs=2e-5)


# -- test doubles: tiny layered networks, defined once ---------------------------------------------
def whole_and_tiled(net, objective: Objective, img: torch.Tensor, tile: int = 64, margin: int = 16):
    """[(gradient, loss) of the whole image, (gradient, loss) in tiles of ``tile`` px]: one SGD closure each."""
    import random

    from deepcanvas.param import PixelParam
    from deepcanvas.render import Renderer

    out = []
    for t in (None, tile):
        p = PixelParam(img)
        r = Renderer(net, objective, p, tile=t, tile_margin=margin, rng=random.Random(3), optimizer="sgd")
        r.closure()
        out.append((p.pixels.grad.clone(), r.last_loss))
    return out


def tiny_classifier() -> LayeredNet:
    """conv-tanh-conv-tanh-pool-linear in float64 (finite differences are exact enough there)."""
    torch.manual_seed(0)
    body = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(),
        nn.Conv2d(4, 5, 3, stride=2, padding=1), nn.Tanh(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(1),
        nn.Linear(5, 6),
    )
    stages = [("conv1", body[0]), ("act1", body[1]), ("conv2", body[2]), ("act2", body[3]),
              ("pool", nn.Sequential(body[4], body[5])), ("logits", body[6])]
    net = LayeredNet(body, stages, Preprocess(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3)), name="tiny")
    return net.double()


def tiny_relu_net() -> LayeredNet:
    """A VGG in miniature (3x3 convolutions, ReLU, 2x2 pooling), float32: for tiling and the losses."""
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
                         nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())
    names = ["c1", "r1", "p1", "c2", "r2", "p2", "c3", "r3"]
    return LayeredNet(body, list(zip(names, body)), Preprocess(mean=(0.5, 0.5, 0.5)), name="tiny")


def one_conv_net(c_in=3, c_out=5, seed=0) -> tuple[LayeredNet, nn.Conv2d]:
    """One linear 1x1 convolution, named 'conv', with an identity preprocessing (gradients known by hand)."""
    torch.manual_seed(seed)
    conv = nn.Conv2d(c_in, c_out, 1)
    body = nn.Sequential(conv)
    return LayeredNet(body, [("conv", conv)], Preprocess(mean=(0.0, 0.0, 0.0)), name="tiny"), conv


# -- the studio: the bundled images its forms default to ---------------------------------------------
BUNDLED = {"content": "bundled:chelsea.jpg", "styles": ["bundled:swirls.jpg"]}


class PullTo(Objective):
    """Pixels toward a constant: a loss with a known minimum and no network."""

    name = "pull"

    def __init__(self, value: float):
        self.value = value

    def loss(self, acts, image):
        return (image - self.value).pow(2).mean()


def pan_frames(d, n: int, photo_size: tuple[int, int]):
    """``n`` 48x36 frames of a pan across a photo, 4 px a frame, as PNGs in a new folder ``d``."""
    d.mkdir()
    from PIL import Image

    big = Image.open(DATA / "chelsea.jpg").convert("RGB").resize(photo_size)
    for i in range(n):
        big.crop((4 * i, 0, 4 * i + 48, 36)).save(d / f"f{i:02d}.png")
    return d


def wait_for(client, job_id, pred, timeout=180):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        job = client.get(f"/api/jobs/{job_id}").json()
        if pred(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never got there: {job}")
