"""Errors of the code format, the key store, the trust list and status lists.

A code that fails verification raises :class:`InvalidCode` or one of its
subclasses. The base class is all that a forger learns about a bad signature
or broken bytes; the subclasses name outcomes that give nothing away (the
code expired, its key is not known here, its key was revoked). Catching
``InvalidCode`` therefore catches every rejected code.

Mistakes of configuration (a private key file that others can read, a key
that does not match its record) name the key, never a person.
"""

from __future__ import annotations

from healthcode.errors import ConfigurationError, HealthcodeError


class CodeError(HealthcodeError):
    """The root of every error raised by :mod:`healthcode.codes`."""

    code = "code_error"


class InvalidCode(CodeError):
    """The code is forged, damaged, not ours, or otherwise not acceptable."""

    code = "invalid_code"

    def __init__(self, message: str = "The code is not a valid health code.") -> None:
        super().__init__(message)


class ExpiredCode(InvalidCode):
    """The code was genuine but its validity ended before the given time."""

    code = "expired_code"


class NotYetValidCode(InvalidCode):
    """The code says it was issued later than the given time, beyond leeway."""

    code = "not_yet_valid_code"


class UnknownKeyCode(InvalidCode):
    """The code names a region and key that no trust list held here lists."""

    code = "unknown_key"


class RevokedKeyCode(InvalidCode):
    """The code was signed by a key that its region has revoked."""

    code = "revoked_key"


class RetiredKeyCode(InvalidCode):
    """The code was signed by a key whose acceptance period has ended."""

    code = "retired_key"


class CodeParameterError(CodeError, ValueError):
    """A caller handed the issuer or the verifier a value that cannot work."""

    code = "code_parameter_error"


class InvalidReference(CodeError):
    """A subject reference does not open under this authority's secret."""

    code = "invalid_reference"

    def __init__(
        self, message: str = "The subject reference was not issued here."
    ) -> None:
        super().__init__(message)


class KeyConfigurationError(CodeError, ConfigurationError):
    """A key file, key record or key choice is wrong; the message names the key."""

    code = "key_configuration_error"


class KeyStoreError(CodeError):
    """A key store command cannot be carried out as asked."""

    code = "key_store_error"


class InvalidTrustList(CodeError):
    """A trust list is damaged, not signed by a trust anchor, or out of date."""

    code = "invalid_trust_list"


class InvalidStatusList(CodeError):
    """A status list is damaged or not signed by a key of its region."""

    code = "invalid_status_list"


class StaleStatusList(CodeError):
    """The status list held is past its validity; fetch a newer one."""

    code = "stale_status_list"


class StatusListNotHeld(CodeError):
    """No status list held here covers the paper code's region or index."""

    code = "status_list_not_held"


class NoIssuingRegion(CodeError):
    """No region can issue the resident's code: none configured, none on record."""

    code = "no_issuing_region"


class RegionNotServed(CodeError):
    """The service was asked for a region other than the one it issues for."""

    code = "region_not_served"


class NoCodeInImage(CodeError):
    """An image holds no QR code that could be read, or more than one."""

    code = "no_code_in_image"


class CardFontMissing(CodeError, ConfigurationError):
    """No font with Chinese characters is installed to print a paper-code card."""

    code = "cjk_font_missing"
