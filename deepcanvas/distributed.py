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


def run_pool(worker: type, args: tuple, items: Iterable, submit: Callable[[Any, Any, Any], Any], *, workers: int,
             cpus_per_worker: float) -> Iterator[tuple[int, Any]]:
    """Run every item on a pool of ``worker(*args)`` actors; yield ``(steps, None)`` as they report finished
    optimisation steps and ``(0, result)`` as items finish.

    ``submit(actor, item, steps)`` calls one of the actor's methods remotely, e.g.
    ``lambda a, item, steps: a.run.remote(item, steps)``; the method counts its steps by calling
    :func:`report` with ``steps``. The pool has ``workers`` actors (no more than there are items), each
    holding ``cpus_per_worker`` CPUs. Call it inside :func:`connect`; closing the generator (Ctrl-C in
    render) stops the actors.
    """
    import ray
    from ray.util import ActorPool
    from ray.util.queue import Queue

    items = list(items)
    steps = Queue()
    remote = ray.remote(num_cpus=cpus_per_worker)(worker)
    actors = [remote.remote(*args) for _ in range(min(workers, max(1, len(items))))]
    pool = ActorPool(actors)
    for item in items:
        pool.submit(lambda a, it: submit(a, it, steps), item)

    def reported() -> int:
        n = steps.qsize()
        return sum(steps.get_nowait_batch(n)) if n else 0

    try:
        while pool.has_next():
            try:
                result = pool.get_next_unordered(timeout=0.2)
            except TimeoutError:
                result = _NOTHING
            n = reported()
            if n:
                yield n, None
            if result is not _NOTHING:
                yield 0, result
        n = reported()
        if n:
            yield n, None
    finally:
        for a in actors:
            ray.kill(a)
        steps.shutdown()


_NOTHING = object()


def report(steps) -> Callable:
    """A ``callback`` for render's Progress stream on a worker: counts each step on the driver's queue."""
    return lambda p: None if p.done else steps.put(1)
