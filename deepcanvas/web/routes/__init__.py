"""The studio's endpoints, one APIRouter per concern (all JSON unless noted; errors are ``{"error": "..."}``).

    pages      GET  /, GET /video               the studio page and the video tab's page
    catalog    GET  /api/info, /api/techniques, /api/models, /api/classes, /api/images, /api/images/{id}
                                                what the page is built from (forms from the API signatures)
    uploads    POST /api/uploads                an image, checked from its header then decoded, stored
    jobs       POST /api/jobs, GET /api/jobs, GET /api/jobs/{id}, POST /api/jobs/{id}/cancel|resubmit|print,
               GET  /api/jobs/{id}/events       (server-sent events), GET /api/jobs/{id}/result/{i}
    videos     POST /api/videos, GET /api/videos/{id}.mp4   the video tab: a clip styled frame by frame

Each router reaches the shared :class:`~deepcanvas.web.state.Studio` through the ``get_studio`` dependency.
"""

from __future__ import annotations

from . import catalog, jobs, pages, uploads, videos

ROUTERS = (pages.router, catalog.router, uploads.router, jobs.router, videos.router)
