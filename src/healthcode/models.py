"""Every table, imported in one place so that the metadata is complete."""

from healthcode.accounts.models import Account, ApiKey, Official
from healthcode.audit.models import AuditEntry, AuditHead
from healthcode.checkins.models import Checkin, CheckinRescan, Exposure, Venue
from healthcode.family.models import Guardianship
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
from healthcode.officials.models import Appeal, BulkOverride, Override
from healthcode.privacy.models import AuditSeal, DailyCount
from healthcode.status.models import RecolorGuard, Status, StatusEvent

__all__ = [
    "Account",
    "ApiKey",
    "Appeal",
    "AuditEntry",
    "AuditHead",
    "AuditSeal",
    "BulkOverride",
    "CaseReport",
    "Checkin",
    "CheckinRescan",
    "DailyCount",
    "Declaration",
    "Exposure",
    "FeedImport",
    "Guardianship",
    "IdentityRecord",
    "LabResult",
    "Official",
    "Override",
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
