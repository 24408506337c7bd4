"""What the page is built from: techniques and their forms, models, class names, pickable images."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from ... import __version__
from ...errors import DeepCanvasError
from .. import forms
from ..errors import ApiError
from ..state import MAX_UPLOAD_PIXELS, Studio, get_studio

router = APIRouter(prefix="/api")


@router.get("/techniques")
async def techniques():
    """Each technique's inputs and form fields (derived from the API signatures)."""
    return [forms.describe(t) for t in forms.available()]


@router.get("/models")
async def models_(studio: Studio = Depends(get_studio)):
    """Networks with their layer names, default layers and availability."""
    return studio.models()


@router.get("/classes")
async def classes(model: str = "efficientnet-lite0"):
    """A classifier's class names (efficientnet-lite0: the 1000 ImageNet names)."""
    from ... import models
    from ...techniques.classviz import require_classifier

    try:
        info = models.get_info(model)
        require_classifier(info)
    except DeepCanvasError as e:
        raise ApiError(400, str(e)) from None
    return {"model": model, "classes": info.classes()}


@router.get("/images")
async def images(studio: Studio = Depends(get_studio)):
    """Pickable images: the bundled ones and the stored uploads."""
    return studio.bundled() + studio.upload_entries()


@router.get("/images/{image_id}")
async def image(image_id: str, studio: Studio = Depends(get_studio)):
    """A small JPEG of one of them (for display)."""
    data = await asyncio.to_thread(studio.thumb, image_id)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


@router.get("/info")
async def info(studio: Studio = Depends(get_studio)):
    """Everything the page starts from in one request, with the upload limits."""
    return {"version": __version__, "techniques": await techniques(), "models": studio.models(),
            "images": await images(studio), "max_upload": studio.max_upload,
            "max_upload_pixels": MAX_UPLOAD_PIXELS}
