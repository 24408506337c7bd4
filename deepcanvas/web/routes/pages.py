"""The studio's HTML pages (their scripts and styles are served from /static)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from ..state import STATIC

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index():
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/video")
async def video_page():
    return FileResponse(STATIC / "video.html", headers={"Cache-Control": "no-cache"})
