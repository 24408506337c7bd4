"""One Ray actor pool, for work too big for one machine: a batch of images, the chunks of a clip.

Each actor is built once (it loads the network once) and is then sent items one after another; the
results come back as they finish. ``pip install 'deepcanvas[ray]'``; the address is a Ray cluster's,
or 'local' to start one on this machine for the run.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Iterable, Iterator

from .errors import DeepCanvasError


def check_ray() -> None:
    """Fail with one line, before any slow work, if Ray is not installed."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise DeepCanvasError("--ray needs Ray: pip install 'deepcanvas[ray]'") from None


@contextlib.contextmanager
def connect(address: str) -> Iterator[float]:
    """Join the Ray cluster at ``address`` ('local': start one here) unless already joined; yield its CPU count.

    A cluster started here is shut down on the way out.
    """
    check_ray()
    import ray

    started = False
    if not ray.is_initialized():
        if address == "local":  # Ray nices its local workers to 15; here they do the work (a caller may override)
            os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(address=None if address == "local" else address, include_dashboard=False, log_to_driver=False,
                 ignore_reinit_error=True)
        started = True
    try:
        yield ray.available_resources().get("CPU", 1)
    finally:
        if started:
            ray.shutdown()


def map_unordered(worker: type, args: tuple, items: Iterable, submit: Callable[[Any, Any], Any], *, workers: int,
                  cpus_per_worker: float) -> Iterator:
    """Results of ``submit(actor, item)`` for every item, as they finish, on a pool of ``worker(*args)`` actors.

    The pool has ``workers`` actors (no more than there are items), each holding ``cpus_per_worker`` CPUs;
    ``submit`` calls one of the actor's methods remotely, e.g. ``lambda a, item: a.run.remote(item)``.
    Call it inside :func:`connect`.
    """
    import ray
    from ray.util import ActorPool

    items = list(items)
    remote = ray.remote(num_cpus=cpus_per_worker)(worker)
    pool = ActorPool([remote.remote(*args) for _ in range(min(workers, max(1, len(items))))])
    yield from pool.map_unordered(submit, items)
