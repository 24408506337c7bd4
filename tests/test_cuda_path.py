"""The CUDA configuration (channels-last network, bf16 autocast) run on the CPU.

CI has no GPU, so this is the nearest check of the code the GPU runs: every
technique with channels-last weights and activations and bf16 convolutions,
Grams and losses in fp32. A .view() on a channels-last activation, or a loss
computed in half precision, fails here as it would on the card.
"""

import pytest
import torch

import deepcanvas
from deepcanvas import models

from conftest import DATA

CONTENT, STYLE = DATA / "chelsea.jpg", DATA / "swirls.jpg"


@pytest.fixture
def cuda_layout(monkeypatch):
    models._load.cache_clear()  # cached networks were built without channels-last
    monkeypatch.setattr(models, "prefers_channels_last", lambda device: True)
    yield
    models._load.cache_clear()


def _finite(steps):
    return all(torch.isfinite(torch.tensor(float(p.loss))) for p in steps)


def test_the_network_really_is_channels_last(cuda_layout):
    net = models.load_model("vgg16")
    conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        act = net(torch.rand(1, 3, 40, 48), ["relu3_1"])["relu3_1"]
    assert act.dtype == torch.bfloat16
    assert act.is_contiguous(memory_format=torch.channels_last) and not act.is_contiguous()


def test_style_transfer_in_the_cuda_layout_matches_fp32(cuda_layout, monkeypatch):
    kw = dict(size=64, iterations=6, multiscale=False, seed=0, preset="deepcanvas")
    steps = list(deepcanvas.style_transfer_steps(CONTENT, STYLE, precision="bf16", **kw))
    assert _finite(steps)
    models._load.cache_clear()
    monkeypatch.setattr(models, "prefers_channels_last", lambda device: False)
    ref = list(deepcanvas.style_transfer_steps(CONTENT, STYLE, precision="fp32", **kw))
    moved = (ref[-1].tensor - ref[0].tensor).abs().mean()
    assert moved > 0.01
    # bf16 keeps ~3 significant digits: the same picture, not the same bits.
    assert (steps[-1].tensor - ref[-1].tensor).abs().mean() < 0.25 * moved
    assert steps[-2].loss == pytest.approx(ref[-2].loss, rel=0.1)


def test_tiled_style_transfer_in_the_cuda_layout(cuda_layout):
    steps = list(deepcanvas.style_transfer_steps(CONTENT, STYLE, size=448, iterations=1, multiscale=False,
                                                 tile=384, style_scale=0.25, seed=0, precision="bf16"))
    assert _finite(steps)
    assert max(steps[-1].image.size) == 448


def test_dream_classviz_and_inversion_in_the_cuda_layout(cuda_layout):
    assert _finite(deepcanvas.dream_steps(CONTENT, size=64, octaves=2, iterations=2, seed=0, precision="bf16"))
    assert _finite(deepcanvas.dream_steps(CONTENT, model="vgg16", size=64, octaves=1, iterations=2, seed=0,
                                          precision="bf16"))
    assert _finite(deepcanvas.visualize_class_steps("goldfinch", size=64, iterations=3, seed=0, precision="bf16"))
    assert _finite(deepcanvas.invert_steps(CONTENT, size=48, iterations=3, seed=0, precision="bf16"))
