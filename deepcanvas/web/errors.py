"""The studio's errors on the wire: every refusal is ``{"error": "one line"}`` with a 4xx status."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class ApiError(Exception):
    """A refused request: ``status`` and the one-line ``message`` the page shows."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def add_error_handlers(app: FastAPI) -> None:
    """ApiError, Starlette's HTTP errors (404 for an unknown path) and FastAPI's parameter validation
    all answer in the one shape the page reads; a validation error names the first bad parameter."""

    @app.exception_handler(ApiError)
    async def api_error(request, exc: ApiError):
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc: StarletteHTTPException):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):
        from .schemas import first_error

        return JSONResponse({"error": first_error(list(exc.errors()))}, status_code=400)
