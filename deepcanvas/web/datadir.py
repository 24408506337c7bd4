"""The data folder is owned: one studio at a time holds it, and only a database that names it may tidy it.

* :class:`FolderLock`: an OS lock on ``DATA_DIR/studio.lock`` (released when the process ends, even on
  kill -9), holding the owner's PID and port, so that a second server refuses with one line naming them.
* :func:`folder_id`: the id in ``DATA_DIR/studio.id``; the database stores the same id, and files are removed
  as orphans only when the two agree (a database copied from elsewhere, or a fresh one, never sweeps).
* :func:`quarantine`: ``--repair`` moves (never deletes) files the database does not know into
  ``DATA_DIR/quarantine/<time>/``.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

from ..errors import DeepCanvasError

LOCK_NAME = "studio.lock"
ID_NAME = "studio.id"
QUARANTINE = "quarantine"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


class FolderLock:
    """Held while a studio uses ``data_dir``; a second holder gets a one-line DeepCanvasError."""

    def __init__(self, data_dir: Path, port: int | None = None):
        self.path = Path(data_dir) / LOCK_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a+")
        try:
            if fcntl is not None:
                fcntl.flock(self._f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:  # pragma: no cover - Windows
                import msvcrt

                self._f.seek(0)
                msvcrt.locking(self._f.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            self._f.seek(0)
            owner = self._f.read().strip() or "unknown"
            self._f.close()
            raise DeepCanvasError(f"the data folder '{data_dir}' is in use by another deepcanvas studio ({owner}); "
                                  f"stop it, or give this one another --data-dir") from None
        self._f.seek(0)
        self._f.truncate()
        self._f.write(f"PID {os.getpid()}" + (f", port {port}" if port else ""))
        self._f.flush()

    def release(self) -> None:
        if not self._f.closed:
            self._f.close()  # closing the file releases the lock


def folder_id(data_dir: Path) -> str | None:
    try:
        return (Path(data_dir) / ID_NAME).read_text().strip() or None
    except OSError:
        return None


def new_folder_id(data_dir: Path) -> str:
    from ..atomic import save_bytes_atomic

    fid = uuid.uuid4().hex
    save_bytes_atomic(fid.encode(), Path(data_dir) / ID_NAME)
    return fid


#: The folders whose files a database lists: the gallery that a missing database must not cost.
GALLERY = ("results", "uploads", "videos")


def user_files(data_dir: Path) -> list[Path]:
    """The files in the data folder's gallery folders (the files a database would list); anything else a user
    keeps there, a server log say, is not the studio's to judge."""
    d = Path(data_dir)
    out = []
    for name in GALLERY:
        p = d / name
        if p.is_dir() and not p.is_symlink():
            out.extend(p.iterdir())
    return out


def quarantine(data_dir: Path, paths) -> Path | None:
    """Move ``paths`` (inside ``data_dir``) to ``data_dir/quarantine/<time>/``, keeping their relative paths."""
    paths = list(paths)
    if not paths:
        return None
    dest = Path(data_dir) / QUARANTINE / time.strftime("%Y%m%d-%H%M%S")
    for p in paths:
        target = dest / p.relative_to(data_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(p), str(target))
    return dest
