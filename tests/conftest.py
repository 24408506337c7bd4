import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "images"
DATA = ROOT / "deepcanvas" / "data"

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep converted weights in one session-wide temp cache, never in the user's."""
    cache = tmp_path_factory.getbasetemp() / "deepcanvas-cache"
    monkeypatch.setenv("DEEPCANVAS_CACHE", str(cache))
    yield


@pytest.fixture(scope="session")
def shared_images():
    if not SHARED.is_dir():
        pytest.fail(f"../shared/images not found at {SHARED}")
    return SHARED
