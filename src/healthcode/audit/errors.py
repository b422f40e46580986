"""Errors of the audit log."""

from __future__ import annotations

from healthcode.errors import HealthcodeError


class AuditError(HealthcodeError):
    """The root of the audit log's errors."""

    code = "audit_error"


class AuditHeadMissing(AuditError):
    """The row that orders appends to the log is missing; migrate the database."""

    code = "audit_head_missing"
