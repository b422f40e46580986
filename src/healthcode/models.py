"""Every table, imported in one place so that the metadata is complete."""

from healthcode.checkins.models import Checkin, CheckinRescan, Exposure, Venue
from healthcode.feeds.models import (
    CaseReport,
    Declaration,
    FeedImport,
    IdentityRecord,
    LabResult,
    QuarantineOrder,
    RiskArea,
    TravelSegment,
    Vaccination,
)
from healthcode.identity.models import Resident
from healthcode.status.models import RecolorGuard, Status, StatusEvent

__all__ = [
    "CaseReport",
    "Checkin",
    "CheckinRescan",
    "Declaration",
    "Exposure",
    "FeedImport",
    "IdentityRecord",
    "LabResult",
    "QuarantineOrder",
    "RecolorGuard",
    "Resident",
    "RiskArea",
    "Status",
    "StatusEvent",
    "TravelSegment",
    "Vaccination",
    "Venue",
]
