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

# A request is matched against the routes in this order, router by router,
# and each route passed over costs a few microseconds: the hot paths (a
# phone's code refresh, a door's verify and its uploads of scans) come right
# after the health check that balancers poll, and the rarely called
# officials' and peers' endpoints last. No two routes here match one request,
# so the order decides only what a request costs.
ROUTERS: list[APIRouter] = [
    meta.router,
    checkpoints.router,
    residents.router,
    venues.router,
    signin.router,
    dependents.router,
    feeds.router,
    privacy.router,
    officials.router,
    peers.router,
    peers.officials,
]
