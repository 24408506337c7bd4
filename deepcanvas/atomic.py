"""Files written atomically: a finished file or none.

:func:`atomic_path` and :func:`save_bytes_atomic` write to a temporary file in the destination
directory and rename it over the destination only once it is complete and synced, so a failure
never leaves a half-written file or clobbers an existing one.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import stat
import tempfile
from typing import Iterator, Union

from .errors import DeepCanvasError

__all__ = ["atomic_path", "save_bytes_atomic", "output_path", "check_destination", "os_reason", "short_reason"]

PathLike = Union[str, "os.PathLike[str]"]


def short_reason(e: BaseException) -> str:
    """An exception as one line of at most 160 characters, for an error message."""
    msg = " ".join(str(e).split())
    if not msg:
        return type(e).__name__
    return msg if len(msg) <= 160 else msg[:157] + "..."


def os_reason(e: OSError) -> str:
    """Why an OS call failed, in the system's words when it gave some."""
    return e.strerror or short_reason(e)


def output_path(path: PathLike, prefix_word: str = "cannot write output") -> tuple[pathlib.Path, str]:
    """``path`` as a Path (``~`` expanded) and the start of an error message that names it."""
    try:
        fspath = os.fspath(path)
    except TypeError:
        raise DeepCanvasError(f"{prefix_word}: expected a file path, got {type(path).__name__}") from None
    if isinstance(fspath, bytes):
        fspath = os.fsdecode(fspath)
    if not fspath:
        raise DeepCanvasError(f"{prefix_word}: no file name given")
    return pathlib.Path(os.path.expanduser(fspath)), f"{prefix_word} '{fspath}'"


def check_destination(p: pathlib.Path, prefix: str) -> pathlib.Path:
    """Common checks for a file we are about to write; return its directory."""
    if p.is_dir():
        raise DeepCanvasError(f"{prefix}: it is an existing directory; give a file name")
    parent = p.parent
    if not parent.exists():
        raise DeepCanvasError(f"{prefix}: directory '{parent}' does not exist")
    if not parent.is_dir():
        raise DeepCanvasError(f"{prefix}: '{parent}' is not a directory")
    return parent



def _target_mode(target: str) -> int:
    """Permission bits the finished file should get (tempfiles are created 0600)."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)  # keep an existing file's mode
    except OSError:
        pass
    umask = None
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    umask = int(line.split()[1], 8)
                    break
    except (OSError, ValueError, IndexError):
        pass
    if umask is None:
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[pathlib.Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``.

    The temporary file has the same extension as ``path`` (so writers that go
    by extension work) and is synced to disk before the rename. If the body
    raises, the temporary file is removed and ``path`` is left as it was;
    ``OSError`` is reported as :class:`DeepCanvasError`, anything else is
    re-raised unchanged. A symbolic link at ``path`` is written through.
    """
    p, prefix = output_path(path)
    parent = check_destination(p, prefix)
    target = os.path.realpath(p) if os.path.islink(p) else os.fspath(p)
    tdir = os.path.dirname(target) or "."
    try:
        tmp = tempfile.NamedTemporaryFile(
            dir=tdir, prefix="." + os.path.basename(target) + ".", suffix=p.suffix or ".tmp", delete=False
        )
        tmp.close()
    except OSError as e:
        raise DeepCanvasError(f"{prefix}: directory '{parent}' is not writable ({os_reason(e)})") from None
    tmp_name = tmp.name
    done = False
    try:
        yield pathlib.Path(tmp_name)
        fd = os.open(tmp_name, os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if os.path.getsize(tmp_name) == 0:
            raise OSError("nothing was written")
        os.chmod(tmp_name, _target_mode(target))
        os.replace(tmp_name, target)
        done = True
        _fsync_dir(tdir)
    except OSError as e:
        raise DeepCanvasError(f"{prefix}: {os_reason(e)}") from None
    finally:
        if not done:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


def _fsync_dir(d: str) -> None:
    """Best effort: make the rename itself durable (POSIX only)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_bytes_atomic(data: bytes, path: PathLike) -> pathlib.Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    p, _ = output_path(path)
    with atomic_path(p) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
    return p

