"""Endpoints about the service itself."""

from __future__ import annotations

from fastapi import APIRouter

from healthcode import __version__
from healthcode.service.schemas import Health

router = APIRouter(tags=["service"])


@router.get("/v1/health", response_model=Health)
def health() -> Health:
    """Say that the service is up, and which version it runs."""
    return Health(status="ok", version=__version__)
