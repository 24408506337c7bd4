"""Networks named by the user: ``file.py:function``, ``timm:NAME``, ``torchvision:NAME``, a local state dict,
and the names registered with ``deepcanvas models add`` (kept in the user config folder).

A spec's network is built once per process; its layers, shapes and default layers come from
:class:`~deepcanvas.models.hooked.HookedNet`'s dry run. Checkpoints are read without unpickling code.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..atomic import save_bytes_atomic
from ..errors import DeepCanvasError
from . import weights as weight_files
from .hooked import IMAGENET_MEAN, IMAGENET_STD, HookedNet
from .layered import Preprocess

PACKAGES = {"timm": "timm", "torchvision": "torchvision"}


def config_dir() -> Path:
    """``$DEEPCANVAS_CONFIG`` or the user config folder (e.g. ~/.config/deepcanvas)."""
    env = os.environ.get("DEEPCANVAS_CONFIG")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_config_dir("deepcanvas"))


def _registry_file() -> Path:
    return config_dir() / "models.json"


def user_models() -> dict[str, dict]:
    """The models registered with ``deepcanvas models add``: name -> {"model", "weights", "mean", "std"}."""
    path = _registry_file()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DeepCanvasError(f"cannot read the model registry {path}: {e}") from None
    return data if isinstance(data, dict) else {}


def is_spec(name: str) -> bool:
    """Whether ``name`` names a network by code rather than by registered name."""
    prefix, sep, rest = name.partition(":")
    return bool(sep) and (prefix in PACKAGES or prefix.endswith(".py"))


def parse_floats3(spec, what: str) -> tuple[float, float, float] | None:
    """'0.5,0.5,0.5' (or a sequence of 3 numbers) -> a triple; None stays None."""
    if spec is None or spec == "":
        return None
    parts = spec.replace(" ", "").split(",") if isinstance(spec, str) else list(spec)
    try:
        vals = tuple(float(v) for v in parts)
    except (TypeError, ValueError):
        vals = ()
    if len(vals) != 3 or (what == "std" and min(vals) <= 0):
        raise DeepCanvasError(f"{what} must be three numbers (one per RGB channel){', all > 0' if what == 'std' else ''}"
                              f", got {spec!r}")
    return vals


def _from_file(spec: str) -> nn.Module:
    path, _, func = spec.rpartition(":")
    file = Path(path).expanduser()
    if not file.is_file():
        raise DeepCanvasError(f"model file '{file}' does not exist")
    mod_name = f"deepcanvas_user_{abs(hash(str(file.resolve())))}"
    loader = importlib.util.spec_from_file_location(mod_name, file)
    module = importlib.util.module_from_spec(loader)
    try:
        loader.loader.exec_module(module)
    except Exception as e:  # the user's code: report its error in one line
        raise DeepCanvasError(f"cannot import model file '{file}': {type(e).__name__}: {e}") from None
    fn = getattr(module, func, None)
    if not callable(fn):
        raise DeepCanvasError(f"model file '{file}' has no function {func!r}")
    try:
        net = fn()
    except Exception as e:
        raise DeepCanvasError(f"{path}:{func}() failed: {type(e).__name__}: {e}") from None
    if not isinstance(net, nn.Module):
        raise DeepCanvasError(f"{path}:{func}() returned {type(net).__name__}, not a torch.nn.Module")
    return net


def _from_package(prefix: str, name: str) -> tuple[nn.Module, tuple | None, tuple | None]:
    """A timm or torchvision network with its pretrained weights, and the normalisation its metadata gives."""
    try:
        package = importlib.import_module(PACKAGES[prefix])
    except Exception as e:  # ImportError, or a torchvision build that does not fit this torch
        raise DeepCanvasError(f"--model {prefix}:{name} needs the {prefix} package, which does not import here "
                              f"({type(e).__name__}); pip install 'deepcanvas[models]'") from None
    try:
        if prefix == "timm":
            net = package.create_model(name, pretrained=True)
            cfg = getattr(net, "pretrained_cfg", None) or {}
            return net, cfg.get("mean"), cfg.get("std")
        weights = package.models.get_model_weights(name).DEFAULT
        net = package.models.get_model(name, weights=weights)
        norm = getattr(weights.transforms(), "mean", None), getattr(weights.transforms(), "std", None)
        return net, *norm
    except DeepCanvasError:
        raise
    except Exception as e:
        raise DeepCanvasError(f"cannot build {prefix}:{name}: {type(e).__name__}: {str(e).splitlines()[0]}") from None


def load_weights_file(path) -> dict:
    """A state dict from .pth/.pt (torch.load with weights_only) or .safetensors."""
    path = Path(path)
    if path.suffix != ".safetensors":
        return weight_files.load_checkpoint(path, what="weights")
    if not path.is_file():
        raise DeepCanvasError(f"cannot read weights '{path}': no such file")
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise DeepCanvasError("reading .safetensors needs the safetensors package: pip install safetensors") from None
    try:
        return load_file(str(path))
    except Exception as e:
        raise DeepCanvasError(f"cannot read weights '{path}': not a safetensors file ({type(e).__name__})") from None


def load_into(module: nn.Module, sd: dict, source: str) -> None:
    """Load ``sd`` strictly, or fail in one line with the counts of missing and unexpected keys."""
    own = module.state_dict()
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    wrong = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = [f"{len(lst)} {what} (e.g. {', '.join(map(repr, lst[:3]))})"
                 for lst, what in ((missing, "missing"), (unexpected, "unexpected"), (wrong, "of another shape"))
                 if lst]
        raise DeepCanvasError(f"{source} does not fit the network: {'; '.join(parts)} keys")
    module.load_state_dict(sd, strict=True)


@functools.lru_cache(maxsize=8)
def _built(spec: str) -> tuple[nn.Module, tuple | None, tuple | None]:
    prefix, _, name = spec.partition(":")
    if prefix in PACKAGES:
        net, mean, std = _from_package(prefix, name)
    else:
        net, mean, std = _from_file(spec), None, None
    return net.eval().requires_grad_(False), mean, std


@dataclass(frozen=True)
class SpecInfo:
    """What the techniques read from a ModelInfo, for a network named by a spec or a registered user name."""

    name: str
    spec: str
    weights: str | None = None
    mean: tuple | None = None
    std: tuple | None = None
    description: str = ""
    offline: bool = True
    arch: str = field(default="", compare=False)

    @property
    def source(self) -> str:
        return self.weights or f"{self.spec} (its own weights)"

    def available(self) -> bool:
        return True

    def net(self) -> HookedNet:
        return _hooked(self.spec, self.weights, self.mean, self.std, self.name)

    @property
    def defaults(self) -> dict:
        return dict(self.net().defaults)

    @property
    def classes(self):
        names = self.net().class_names
        return (lambda: list(names)) if names else None

    def layer_names(self) -> list[str]:
        return list(self.net().layer_names)

    def layer_shapes(self) -> dict:
        return self.net().layer_shapes()


@functools.lru_cache(maxsize=8)
def _hooked(spec: str, weights: str | None, mean, std, name: str) -> HookedNet:
    module, meta_mean, meta_std = _built(spec)
    if weights:
        sd = load_weights_file(weights)
        module = copy.deepcopy(module)
        load_into(module, sd, f"weights '{weights}'")
    pre = Preprocess(mean or meta_mean or IMAGENET_MEAN, std or meta_std or IMAGENET_STD)
    return HookedNet(module, pre, name=name)


def spec_info(name: str, weights=None, mean=None, std=None) -> SpecInfo | None:
    """A SpecInfo for a spec or a registered user name (None for neither); ``weights``/``mean``/``std``
    override a registered model's."""
    entry = {"model": name} if is_spec(name) else user_models().get(name)
    if entry is None:
        return None
    w = str(weights) if weights else entry.get("weights")
    return SpecInfo(name, entry["model"], w, parse_floats3(mean, "mean") or parse_floats3(entry.get("mean"), "mean"),
                    parse_floats3(std, "std") or parse_floats3(entry.get("std"), "std"),
                    entry.get("description") or f"your model ({entry['model']})")


def add_user_model(name: str, model: str, weights=None, mean=None, std=None, reserved=()) -> SpecInfo:
    """Register ``model`` (a spec) under ``name`` after checking that it builds and its weights fit
    (``reserved``: the bundled names, which a user's cannot shadow)."""
    if not name or name in reserved or is_spec(name) or any(c in name for c in " /\\"):
        raise DeepCanvasError(f"cannot register a model as {name!r}: pick a new name without spaces or slashes")
    if not is_spec(model):
        raise DeepCanvasError(f"--model must be file.py:function, timm:NAME or torchvision:NAME, got {model!r}")
    if model.partition(":")[0].endswith(".py"):
        model = f"{Path(model.rpartition(':')[0]).expanduser().resolve()}:{model.rpartition(':')[2]}"
    entry = {"model": model, "weights": str(Path(weights).expanduser().resolve()) if weights else None,
             "mean": mean, "std": std}
    info = SpecInfo(name, model, entry["weights"], parse_floats3(mean, "mean"), parse_floats3(std, "std"))
    info.net()  # builds it, loads the weights and runs it once: errors now, not at first use
    data = user_models()
    data[name] = entry
    _write(data)
    return info


def remove_user_model(name: str) -> None:
    data = user_models()
    if name not in data:
        raise DeepCanvasError(f"no registered model {name!r}; registered: {', '.join(data) or 'none'}")
    del data[name]
    _write(data)


def _write(data: dict) -> None:
    path = _registry_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_bytes_atomic((json.dumps(data, indent=2) + "\n").encode(), path)
