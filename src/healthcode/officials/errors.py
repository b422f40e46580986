"""Errors of appeals, overrides, searches and statistics."""

from __future__ import annotations

from healthcode.errors import HealthcodeError


class OfficialsError(HealthcodeError):
    """The root of the officials domain's errors."""

    code = "officials_error"


class InvalidOverride(OfficialsError):
    """An override's colour, expiry or residents cannot be accepted."""

    code = "invalid_override"


class LegalBasisRequired(OfficialsError):
    """A bulk override needs a stated legal basis."""

    code = "legal_basis_required"


class UnknownOverride(OfficialsError):
    """No override has this id."""

    code = "unknown_override"


class UnknownBulkOverride(OfficialsError):
    """No bulk override has this id."""

    code = "unknown_bulk_override"


class BulkOverrideDecided(OfficialsError):
    """The bulk override was already approved or rejected."""

    code = "bulk_override_decided"


class SecondOfficialRequired(OfficialsError):
    """The official who proposed a bulk override cannot also approve it."""

    code = "second_official_required"


class UnknownAppeal(OfficialsError):
    """No appeal has this id."""

    code = "unknown_appeal"


class AppealReviewed(OfficialsError):
    """The appeal was already reviewed."""

    code = "appeal_reviewed"


class AppealOpen(OfficialsError):
    """The resident already has an appeal waiting for review."""

    code = "appeal_open"


class InvalidReview(OfficialsError):
    """A review's outcome, colour or expiry cannot be accepted."""

    code = "invalid_review"


class InvalidSearch(OfficialsError):
    """A search names neither a document nor a name, or both."""

    code = "invalid_search"
