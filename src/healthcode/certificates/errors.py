"""Errors raised while reading foreign health certificates and importing them.

Every refused certificate raises a subclass of :class:`InvalidCertificate`,
so that catching it catches every refusal; the subclass and its stable
``code`` say why: the text is damaged, the signature does not verify, the
signer is unknown or may not sign this kind of certificate, the certificate
has expired, or it belongs to someone else. A SMART Health Card that breaks
its specification raises the subclass named after the fault.

Messages are whole sentences that name the part of the certificate at fault.
They never repeat a name, a date of birth or an identity number: those are
personal data, and error messages end up in logs and on screens. Faults of
configuration (a signer file that cannot be read, an issuer key set that is
malformed) raise :class:`TrustConfigurationError` and name the file or key.
"""

from __future__ import annotations

from healthcode.errors import ConfigurationError, HealthcodeError


class CertificateError(HealthcodeError):
    """The root of every error raised by :mod:`healthcode.certificates`."""

    code = "certificate_error"


class InvalidCertificate(CertificateError):
    """The certificate is damaged, forged, expired or otherwise not acceptable."""

    code = "invalid_certificate"


# EU Digital COVID Certificate: one class per stage of reading.


class CertificatePrefixError(InvalidCertificate):
    """The text does not start with the ``HC1:`` context identifier."""

    code = "certificate_prefix"


class CertificateEncodingError(InvalidCertificate):
    """The text after the prefix is not valid Base45."""

    code = "certificate_encoding"


class CertificateCompressionError(InvalidCertificate):
    """The decoded bytes are not a zlib stream, or it is broken or too large."""

    code = "certificate_compression"


class CertificateStructureError(InvalidCertificate):
    """The CBOR, the COSE_Sign1 message or the CWT claims are malformed."""

    code = "certificate_structure"


class CertificateSchemaError(InvalidCertificate):
    """The certificate's content breaks the schema of its version."""

    code = "certificate_schema"


class UnsupportedAlgorithm(InvalidCertificate):
    """The signature uses an algorithm other than ES256 or PS256."""

    code = "certificate_algorithm"


class UnknownSigner(InvalidCertificate):
    """No configured document signer has the certificate's key id."""

    code = "unknown_signer"


class ForgedCertificate(InvalidCertificate):
    """The signature does not verify under any signer with the key id."""

    code = "forged_certificate"


class SignerNotPermitted(InvalidCertificate):
    """The signer's extended key usage does not cover this kind of certificate."""

    code = "signer_not_permitted"


class SignerNotValid(InvalidCertificate):
    """The signer's own validity does not cover the certificate's lifetime."""

    code = "signer_not_valid"


class ExpiredCertificate(InvalidCertificate):
    """The certificate was genuine but its validity ended before the clock."""

    code = "expired_certificate"


class NotYetValidCertificate(InvalidCertificate):
    """The certificate says it was issued, or becomes valid, after the clock."""

    code = "not_yet_valid_certificate"


# SMART Health Cards: one class per fault of the specification.


class HealthCardQrError(InvalidCertificate):
    """A numeric ``shc:/`` QR text or image breaks the QR rules of the card."""

    code = "health_card_qr"


class HealthCardFormatError(InvalidCertificate):
    """The card is not a clean compact JWS, or its file is not a card file."""

    code = "health_card_format"


class HealthCardHeaderError(InvalidCertificate):
    """The JWS header lacks ``alg``, ``zip`` or ``kid``, or has wrong values."""

    code = "health_card_header"


class HealthCardSignatureFormatError(InvalidCertificate):
    """The signature is not the 64-byte r||s form (a DER signature, say)."""

    code = "health_card_signature_format"


class HealthCardCompressionError(InvalidCertificate):
    """The payload is not raw DEFLATE (missing, zlib-wrapped or broken)."""

    code = "health_card_compression"


class HealthCardPayloadError(InvalidCertificate):
    """The payload's issuer, times or credential types break the specification."""

    code = "health_card_payload"


class HealthCardBundleError(InvalidCertificate):
    """The FHIR bundle lacks the patient or holds entries that cannot be read."""

    code = "health_card_bundle"


class UnknownIssuer(InvalidCertificate):
    """The card's issuer or key id is not among the issuers configured here."""

    code = "unknown_issuer"


# Importing a certificate as evidence.


class HolderMismatch(InvalidCertificate):
    """The certificate's name or date of birth is not the visitor's."""

    code = "holder_mismatch"


class CertificateInUse(InvalidCertificate):
    """The certificate is already evidence for another resident."""

    code = "certificate_in_use"


class UnusableCertificate(InvalidCertificate):
    """The certificate is genuine but cannot be evidence here.

    It names a test outside the value sets, dates a record in the future,
    holds no entry our rules read, or the business rules do not accept it.
    """

    code = "unusable_certificate"


# Business rules.


class InvalidBusinessRule(CertificateError):
    """A business rule document breaks the published rule format."""

    code = "invalid_business_rule"


# Configuration.


class TrustConfigurationError(CertificateError, ConfigurationError):
    """A signer certificate file or an issuer key set cannot be used as given."""

    code = "certificate_trust_configuration"
