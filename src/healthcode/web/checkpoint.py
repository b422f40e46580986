"""The checkpoint scanner page and the trust material it verifies codes with.

The page decides at the door by itself: it reads a code from the camera,
checks its signature against the code keys of a signed trust list, reads a
paper code's colour from the region's signed status list, and queues the
check-in. It needs the server only to fetch that material, which it keeps,
and to upload its queue when the server answers again. The uploads and the
look-up by document go to the service's device endpoints
(``/v1/checkpoints/...``) with the checkpoint's API key, which the staff
enter once on the device.

The trust material is public: a trust list names public keys only, and a
status list holds indices, never names. The trust anchors come with it, and
the page keeps the first anchors it was given (trust on first use); a
deployment that hands devices their anchors by other means replaces that
step.
"""

from __future__ import annotations

import base64
import threading
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from healthcode.codes.keys import KeyRecord, KeyRole
from healthcode.codes.services import CodeService
from healthcode.regions.peers import PeerStore, region_name
from healthcode.regions.services import published_trust_list
from healthcode.service.deps import Db, Now, Rt
from healthcode.web.pages import PageRoute, page_options, render

__all__ = ["MATERIAL_FORMAT", "TrustMaterial", "router", "trust_material"]


MATERIAL_FORMAT = "healthcode-checkpoint-material/1"
# Signing a status list reads every status that is not green, so one signed
# list is handed out for a few minutes rather than signed for each device.
MATERIAL_TTL = timedelta(minutes=5)

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@dataclass(frozen=True)
class TrustMaterial:
    """What a checkpoint keeps: anchors, a signed trust list, status lists."""

    anchors: list[KeyRecord]
    trust_list: bytes
    status_lists: dict[str, bytes]
    made_at: datetime
    region_names: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MATERIAL_FORMAT,
            "madeAt": self.made_at.isoformat(),
            "anchors": [record.to_json() for record in self.anchors],
            "trustList": self.trust_list.decode("utf-8"),
            "statusLists": {
                region: base64.urlsafe_b64encode(document).decode("ascii")
                for region, document in sorted(self.status_lists.items())
            },
            "regionNames": self.region_names,
        }


def trust_material(
    codes: CodeService, peers: PeerStore, session: Session, at: datetime
) -> TrustMaterial:
    """Sign the trust list of this instance and each of its regions' status lists.

    The trust list names the code keys of this instance and of every peer
    region whose own list is valid (see
    :func:`healthcode.regions.services.published_trust_list`), so the page
    accepts their screen codes too. Call it in a transaction that commits:
    signing a status list first recolours the statuses that time has changed.
    """
    store = codes.store
    document = published_trust_list(store, peers, at, codes.region)
    code_keys = [r for r in store.records() if r.role is KeyRole.CODE]
    regions = sorted({r.region for r in code_keys if r.may_sign(at)})
    if codes.region is not None:
        regions = [region for region in regions if region == codes.region]
    lists = {region: codes.status_list(session, region, at) for region in regions}
    anchors = [r for r in store.records() if r.role is KeyRole.TRUST_LIST]
    listed = {r.region for r in code_keys} | {
        r.region for peer in peers.peers(skip_unreadable=True) for r in peer.code_keys
    }
    names = {region: region_name(region) for region in sorted(listed)}
    return TrustMaterial(anchors, document, lists, at, names)


class _MaterialCache:
    """The last material made, per code service, for :data:`MATERIAL_TTL`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: weakref.WeakKeyDictionary[CodeService, TrustMaterial] = (
            weakref.WeakKeyDictionary()
        )

    def get(
        self, codes: CodeService, peers: PeerStore, session: Session, at: datetime
    ) -> TrustMaterial:
        with self._lock:
            kept = self._kept.get(codes)
            if kept is not None and kept.made_at <= at < kept.made_at + MATERIAL_TTL:
                return kept
            material = trust_material(codes, peers, session, at)
            self._kept[codes] = material
            return material


_CACHE = _MaterialCache()


@router.get("/checkpoint")
def scanner_page(request: Request) -> Response:
    """The scanner; it holds nothing personal, so it needs no sign-in."""
    return render(request, "checkpoint/scanner.html")


@router.get("/checkpoint/trust.json")
@page_options(json=True)
def trust_material_json(rt: Rt, session: Db, now: Now) -> JSONResponse:
    """The anchors, the signed trust list and the status lists, for devices."""
    material = _CACHE.get(rt.codes, rt.peers, session, now)
    return JSONResponse(material.to_json())
