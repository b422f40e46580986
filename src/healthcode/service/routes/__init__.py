"""The endpoints, one module per kind of caller."""

from fastapi import APIRouter

from healthcode.service.routes import (
    checkpoints,
    dependents,
    feeds,
    meta,
    officials,
    peers,
    privacy,
    residents,
    signin,
    venues,
)

ROUTERS: list[APIRouter] = [
    meta.router,
    signin.router,
    residents.router,
    dependents.router,
    feeds.router,
    officials.router,
    checkpoints.router,
    venues.router,
    privacy.router,
    peers.router,
    peers.officials,
]
