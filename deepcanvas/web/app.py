"""The studio's HTTP app (FastAPI): the routes (``web/routes/``), the cross-site guard and the error shape.

See :mod:`deepcanvas.web.routes` for the endpoints.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from .. import __version__
from .errors import add_error_handlers
from .guard import SameOriginGuard
from .routes import ROUTERS
from .state import (DEFAULT_MAX_UPLOAD, MAX_JOB_BODY, MAX_QUEUED, MAX_UPLOAD_PIXELS, STATIC, Studio,
                    default_data_dir)

# The studio's limits, read by `deepcanvas serve` and the tests from here.
__all__ = ["create_app", "default_data_dir", "DEFAULT_MAX_UPLOAD", "MAX_JOB_BODY", "MAX_QUEUED",
           "MAX_UPLOAD_PIXELS"]


def create_app(data_dir: Path | None = None, max_upload: int = DEFAULT_MAX_UPLOAD,
               allowed_hosts: tuple[str, ...] | None = None, **studio_options) -> FastAPI:
    """The studio. ``allowed_hosts``: Host header names accepted (None: any; ``deepcanvas serve``
    on a loopback address passes :data:`~deepcanvas.web.LOOPBACK_NAMES`). ``studio_options``:
    :class:`~.state.Studio`'s keep_jobs, keep_uploads, keep_mb (retention), checkpoint_every (seconds), port
    (named in the data folder's lock) and repair (a missing or damaged database: files moved aside)."""
    studio = Studio(data_dir, max_upload, **studio_options)

    @asynccontextmanager
    async def lifespan(app):
        studio.queue.start()
        try:
            yield
        finally:
            await asyncio.to_thread(studio.queue.stop)
            studio.close()

    app = FastAPI(title="deepcanvas studio", version=__version__, lifespan=lifespan, docs_url="/api/docs",
                  redoc_url=None, openapi_url="/api/openapi.json")
    app.state.studio = studio
    app.add_middleware(SameOriginGuard, allowed_hosts=allowed_hosts)
    add_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in ROUTERS:
        app.include_router(router)
    return app
