"""Errors of guardians and dependents.

The two limits name their number, so that a guardian who is refused knows
why and what the rule is.
"""

from __future__ import annotations

from healthcode.errors import HealthcodeError


class FamilyError(HealthcodeError):
    """The root of the family domain's errors."""

    code = "family_error"


class DependentLimit(FamilyError):
    """The guardian already holds as many dependents as one guardian may."""

    code = "dependent_limit"


class GuardianLimit(FamilyError):
    """The dependent already has as many guardians as one dependent may."""

    code = "guardian_limit"


class AlreadyGuardian(FamilyError):
    """The guardian already holds, or has asked to hold, this dependent."""

    code = "already_guardian"


class OwnDependent(FamilyError):
    """A guardian tried to add themselves as their own dependent."""

    code = "own_dependent"


class NotYourDependent(FamilyError):
    """The resident is not an active dependent of the signed-in guardian."""

    code = "not_your_dependent"


class UnknownGuardianship(FamilyError):
    """No link between a guardian and a dependent has this id."""

    code = "unknown_guardianship"


class GuardianshipNotPending(FamilyError):
    """The link is not waiting for an official's approval."""

    code = "guardianship_not_pending"


class IdentityMismatch(FamilyError):
    """The name given does not match the one registered with the document."""

    code = "identity_mismatch"


class NotRegistered(FamilyError):
    """The signed-in phone has not registered as a resident yet."""

    code = "not_registered"


class ResidentTaken(FamilyError):
    """Another phone already registered as this resident."""

    code = "resident_taken"
