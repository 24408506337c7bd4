"""Image uploads: sized from the header before decoding, checked with io.load_image, stored as upload:<uuid>."""

from __future__ import annotations

import asyncio
import re
import threading
import uuid
from pathlib import Path

from fastapi import APIRouter, Depends, Request

from ...errors import DeepCanvasError
from .. import forms
from ..errors import ApiError
from ..state import MAX_UPLOAD_PIXELS, THUMB_SIDE, Studio, get_studio, jpeg_bytes

router = APIRouter(prefix="/api")
_DECODE_LOCK = threading.Lock()


@router.post("/uploads", status_code=201)
async def upload(request: Request, studio: Studio = Depends(get_studio)):
    """Multipart "file": refused from Content-Length when too large, then recorded in the store."""
    limit = studio.max_upload
    too_big = ApiError(413, f"the file is too large; the limit is {limit / 1024 / 1024:.0f} MB")
    length = request.headers.get("content-length")
    if length is None:
        raise ApiError(411, "the upload needs a Content-Length header")
    if not length.isdigit() or int(length) > limit + 64 * 1024:  # the multipart framing is small
        raise too_big
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(400, "send the image as multipart/form-data in a field called 'file'")
    form = await request.form(max_files=1, max_fields=4)
    try:
        f = form.get("file")
        if f is None or isinstance(f, str):
            raise ApiError(400, "no file: send the image in a multipart field called 'file'")
        name = re.sub(r"[^\w. -]+", "_", Path(f.filename or "image").name)[:80] or "image"
        uid = uuid.uuid4().hex
        part = studio.uploads / f".{uid}.part"
        try:
            await forms.save_upload(f, part, limit, too_big)
            entry = await asyncio.to_thread(accept_upload, studio, part, uid, name)
        finally:
            part.unlink(missing_ok=True)
    finally:
        await form.close()
    await asyncio.to_thread(studio.retain)
    return entry


def accept_upload(studio: Studio, part: Path, uid: str, name: str) -> dict:
    """Check an uploaded file (io.load_preview: the header's size first, then a full decode of its first frame);
    keep it (server-chosen name) and a small JPEG of it."""
    from ...atomic import save_bytes_atomic
    from ...io import load_preview

    try:
        # One upload decoded at a time; each costs at most its decoded pixels and one copy at 4 bytes a pixel.
        with _DECODE_LOCK:
            img, (width, height) = load_preview(part, THUMB_SIDE, what="uploaded image", max_pixels=MAX_UPLOAD_PIXELS)
    except DeepCanvasError as e:
        raise ApiError(400, str(e).replace(str(part), name)) from None
    thumb = jpeg_bytes(img)
    del img
    # Files first, then the row that lists them: a crash in between leaves orphans, removed at start-up.
    part.replace(studio.uploads / f"{uid}.img")
    save_bytes_atomic(thumb, studio.uploads / f"{uid}.jpg")
    row = studio.store.insert_upload(uid, Path(name).stem or "upload", width, height)
    return {"id": f"upload:{uid}", "name": row["name"], "url": f"/api/images/upload:{uid}",
            "width": row["width"], "height": row["height"], "bundled": False}
