"""The one place where errors become HTTP answers.

Every domain error carries a stable ``code`` (see :mod:`healthcode.errors`).
:data:`ERROR_ANSWERS` gives each code its HTTP status and, where the domain
message alone does not say what the caller should change, a hint that is
added to it. Errors that are the service's own fault (configuration, a lost
Redis, a bug) answer with a fixed sentence instead of their message, which
may name files and keys that callers have no business knowing.

The map is keyed by code rather than by class so that it needs no import of
any domain: a test walks every subclass of
:class:`~healthcode.errors.HealthcodeError` and proves its code is here.

Every answer, including request validation and unknown paths, has the same
body: ``{"code", "message", "problems"}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from healthcode.errors import DatabaseUnavailable, HealthcodeError

__all__ = [
    "ERROR_ANSWERS",
    "ErrorAnswer",
    "ErrorBody",
    "FeedRefused",
    "FieldProblem",
    "UploadTooLarge",
    "answer_for",
    "install_error_handlers",
]

log = structlog.get_logger(__name__)


class UploadTooLarge(HealthcodeError):
    """An uploaded file is larger than the service accepts."""

    code = "upload_too_large"


class FeedRefused(HealthcodeError):
    """A feed upload was refused as a whole; the report says row by row why."""

    code = "feed_refused"

    def __init__(self, message: str, report: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.report = report or {}

    def answer_extra(self) -> dict[str, Any]:
        return {"report": self.report}


@dataclass(frozen=True)
class ErrorAnswer:
    """How one error code is answered."""

    status: int
    #: Added to the domain message: what the caller should change.
    hint: str | None = None
    #: Said instead of the domain message, for faults that are ours.
    public: str | None = None


_OURS = "The service could not complete the request because of a fault on our side."
_UNAVAILABLE = (
    "The service is not able to answer right now; try again in a few minutes."
)
_FIX_FIELD = "Correct the value and send the request again."
_SCAN_AGAIN = "Ask the holder to show a fresh code, or scan it again."


def _ours(status: int = 500) -> ErrorAnswer:
    return ErrorAnswer(status, public=_OURS)


def _unavailable() -> ErrorAnswer:
    return ErrorAnswer(503, public=_UNAVAILABLE)


ERROR_ANSWERS: dict[str, ErrorAnswer] = {
    # The root and configuration.
    "healthcode_error": _ours(),
    "configuration_error": _unavailable(),
    "database_unavailable": ErrorAnswer(
        503,
        public="The service cannot reach its records right now; keep the request"
        " and send it again after the seconds that Retry-After gives.",
    ),
    # Identity.
    "invalid_document": ErrorAnswer(422, _FIX_FIELD),
    "invalid_name": ErrorAnswer(422, _FIX_FIELD),
    "unknown_division": ErrorAnswer(422, _FIX_FIELD),
    "already_registered": ErrorAnswer(409),
    "unknown_resident": ErrorAnswer(404, "Check the document kind and number."),
    # Rules and statuses.
    "certlogic_error": ErrorAnswer(422),
    "certlogic_evaluation": ErrorAnswer(422),
    "certlogic_invalid": ErrorAnswer(422),
    "invalid_rule_set": ErrorAnswer(422),
    "status_error": _ours(),
    # Feeds.
    "feed_error": ErrorAnswer(422),
    "feed_unknown_kind": ErrorAnswer(404),
    "feed_unknown_format": ErrorAnswer(
        415, "Send text/csv or application/x-ndjson, or say format=csv or ndjson."
    ),
    "feed_file_unreadable": ErrorAnswer(422, "Send the file again, uncut."),
    "feed_concurrent_import": ErrorAnswer(409),
    "feed_refused": ErrorAnswer(422),
    "upload_too_large": ErrorAnswer(413),
    # Codes, keys, trust and status lists.
    "code_error": _ours(),
    "invalid_code": ErrorAnswer(422, _SCAN_AGAIN),
    "expired_code": ErrorAnswer(422, _SCAN_AGAIN),
    "not_yet_valid_code": ErrorAnswer(422, "Check the clock of the device."),
    "unknown_key": ErrorAnswer(422, "Update the trust list, or scan again."),
    "revoked_key": ErrorAnswer(422, "The holder needs a new code."),
    "retired_key": ErrorAnswer(422, "The holder needs a new code."),
    "code_parameter_error": _ours(),
    "invalid_reference": ErrorAnswer(422, "The code was issued by another region."),
    "key_configuration_error": _unavailable(),
    "key_store_error": _unavailable(),
    "invalid_trust_list": _unavailable(),
    "invalid_status_list": _unavailable(),
    "stale_status_list": _unavailable(),
    "status_list_not_held": ErrorAnswer(404),
    "no_issuing_region": ErrorAnswer(409),
    "region_not_served": ErrorAnswer(404),
    "no_code_in_image": ErrorAnswer(422, "Send a clear photo of one code."),
    "cjk_font_missing": _unavailable(),
    # Other regions: peers, their trust lists, calls between instances.
    "regions_error": _ours(),
    "peer_configuration_error": _unavailable(),
    "peer_not_configured": ErrorAnswer(404),
    "unknown_peer": ErrorAnswer(403),
    "peer_unauthenticated": ErrorAnswer(401),
    "stale_request": ErrorAnswer(401),
    "replayed_request": ErrorAnswer(401),
    # What went wrong at the peer is logged with its region; the official
    # is told what kind of failure it was in a fixed sentence, as for every
    # answer that is not the caller's fault.
    "peer_unreachable": ErrorAnswer(
        504,
        public="The other region's instance did not answer in time or could not"
        " be reached; try again in a few minutes.",
    ),
    "peer_refused": ErrorAnswer(
        502,
        public="The other region's instance refused the query; the operators of"
        " both regions need to check their peering.",
    ),
    "invalid_peer_answer": ErrorAnswer(
        502,
        public="The other region's answer could not be verified, so it is not"
        " shown; the operators of both regions need to check their peering.",
    ),
    # Check-ins and tracing.
    "checkin_error": _ours(),
    "invalid_venue": ErrorAnswer(422, _FIX_FIELD),
    "unknown_venue": ErrorAnswer(404),
    "invalid_checkin": ErrorAnswer(422, _FIX_FIELD),
    "invalid_venue_code": ErrorAnswer(422, "Scan the venue's poster again."),
    "expired_venue_code": ErrorAnswer(422, "The venue needs to print a new poster."),
    "tracing_configuration_error": _unavailable(),
    # Certificates from elsewhere.
    "certificate_error": _ours(),
    "invalid_certificate": ErrorAnswer(422),
    "certificate_prefix": ErrorAnswer(422),
    "certificate_encoding": ErrorAnswer(422),
    "certificate_compression": ErrorAnswer(422),
    "certificate_structure": ErrorAnswer(422),
    "certificate_schema": ErrorAnswer(422),
    "certificate_algorithm": ErrorAnswer(422),
    "unknown_signer": ErrorAnswer(422),
    "forged_certificate": ErrorAnswer(422),
    "signer_not_permitted": ErrorAnswer(422),
    "signer_not_valid": ErrorAnswer(422),
    "expired_certificate": ErrorAnswer(422),
    "not_yet_valid_certificate": ErrorAnswer(422),
    "health_card_qr": ErrorAnswer(422),
    "health_card_format": ErrorAnswer(422),
    "health_card_header": ErrorAnswer(422),
    "health_card_signature_format": ErrorAnswer(422),
    "health_card_compression": ErrorAnswer(422),
    "health_card_payload": ErrorAnswer(422),
    "health_card_bundle": ErrorAnswer(422),
    "unknown_issuer": ErrorAnswer(422),
    "holder_mismatch": ErrorAnswer(422),
    "certificate_in_use": ErrorAnswer(409),
    "unusable_certificate": ErrorAnswer(422),
    "invalid_business_rule": ErrorAnswer(422),
    "certificate_trust_configuration": _unavailable(),
    # The demo is a command, never a request; reaching here is a bug.
    "demo_error": _ours(),
    # The Spark jobs are commands too.
    "spark_job_error": _ours(),
    "spark_unavailable": _unavailable(),
    "spark_snapshot_error": _ours(),
    "spark_snapshot_outdated": ErrorAnswer(409),
    "demo_database_not_empty": _ours(),
    # Accounts and sign-in.
    "account_error": _ours(),
    "invalid_phone": ErrorAnswer(422),
    "sign_in_code_wrong": ErrorAnswer(401),
    "sign_in_locked": ErrorAnswer(429),
    "rate_limited": ErrorAnswer(429),
    "not_signed_in": ErrorAnswer(
        401, "Sign in, then send the session cookie or the bearer token."
    ),
    "invalid_api_key": ErrorAnswer(401),
    "out_of_scope": ErrorAnswer(403),
    "invalid_credentials": ErrorAnswer(401),
    "weak_password": ErrorAnswer(422),
    "official_exists": ErrorAnswer(409),
    "unknown_official": ErrorAnswer(404),
    "unknown_api_key": ErrorAnswer(404),
    "invalid_scope": ErrorAnswer(422),
    "store_unavailable": _unavailable(),
    # Families.
    "family_error": _ours(),
    "guardian_limit": ErrorAnswer(409),
    "dependent_limit": ErrorAnswer(409),
    "already_guardian": ErrorAnswer(409),
    "own_dependent": ErrorAnswer(422),
    "not_your_dependent": ErrorAnswer(404),
    "unknown_guardianship": ErrorAnswer(404),
    "guardianship_not_pending": ErrorAnswer(409),
    "identity_mismatch": ErrorAnswer(409),
    "not_registered": ErrorAnswer(409, "Register with your identity document first."),
    "resident_taken": ErrorAnswer(409),
    # Officials' work.
    "officials_error": _ours(),
    "invalid_override": ErrorAnswer(422, _FIX_FIELD),
    "legal_basis_required": ErrorAnswer(422),
    "unknown_override": ErrorAnswer(404),
    "unknown_bulk_override": ErrorAnswer(404),
    "bulk_override_decided": ErrorAnswer(409),
    "second_official_required": ErrorAnswer(403),
    "unknown_appeal": ErrorAnswer(404),
    "appeal_reviewed": ErrorAnswer(409),
    "appeal_open": ErrorAnswer(409),
    "invalid_review": ErrorAnswer(422, _FIX_FIELD),
    "invalid_search": ErrorAnswer(422, _FIX_FIELD),
    # The audit log.
    "audit_error": _ours(),
    "audit_head_missing": _unavailable(),
    # Retention, the sunset, audit seals and data keys.
    "privacy_error": _ours(),
    "data_key_error": _unavailable(),
    "audit_seal_invalid": ErrorAnswer(422),
    "sunset_not_confirmed": ErrorAnswer(422),
    # Answers of the HTTP layer itself.
    "invalid_request": ErrorAnswer(422),
    "bad_request": ErrorAnswer(400),
    "not_found": ErrorAnswer(404),
    "method_not_allowed": ErrorAnswer(405),
    "internal_error": _ours(),
}


class FieldProblem(BaseModel):
    """One thing wrong with one field of a request."""

    field: str = Field(description="Where: body.document.number, query.days, ...")
    message: str


class ErrorBody(BaseModel):
    """The body of every answer that is not a success."""

    code: str = Field(description="Stable; decide on this, never on the message.")
    message: str = Field(description="What is wrong and what to change, in English.")
    problems: list[FieldProblem] = Field(default_factory=list)


def answer_for(exc: HealthcodeError) -> tuple[int, str, str]:
    """The status, code and message for a domain error."""
    answer = ERROR_ANSWERS.get(exc.code)
    code = exc.code
    if answer is None:
        # A code missing from the map is a bug the map test catches; until
        # it is fixed, answer as the nearest mapped ancestor would.
        log.error("error_code_unmapped", code=exc.code, error=type(exc).__name__)
        for base in type(exc).__mro__[1:]:
            inherited = getattr(base, "code", None)
            if isinstance(inherited, str) and inherited in ERROR_ANSWERS:
                answer = ERROR_ANSWERS[inherited]
                break
        else:
            answer = ERROR_ANSWERS["internal_error"]
    if answer.public is not None:
        return answer.status, code, answer.public
    message = str(exc).strip() or "The request could not be carried out."
    if answer.hint:
        message = f"{message} {answer.hint}"
    return answer.status, code, message


def error_response(
    status: int,
    code: str,
    message: str,
    problems: list[FieldProblem] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body = ErrorBody(code=code, message=message, problems=problems or []).model_dump()
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers)


def _field(location: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in location) or "body"


_PROBLEM_TEXT = {
    "missing": "This field is required.",
    "extra_forbidden": "This field is not part of the request; remove it.",
    "json_invalid": "The body is not valid JSON.",
    "model_attributes_type": "Send a JSON object here.",
    "dict_type": "Send a JSON object here.",
}


def _problem(error: dict[str, Any]) -> FieldProblem:
    # The input is never echoed: it may be an identity number or a phone.
    kind = error.get("type", "")
    text = _PROBLEM_TEXT.get(kind)
    if text is None:
        text = str(error.get("msg", "This value is not acceptable.")).strip()
        if text.startswith("Value error, "):
            text = text[len("Value error, ") :]
        text = text[:1].upper() + text[1:]
        if not text.endswith("."):
            text += "."
    return FieldProblem(field=_field(tuple(error.get("loc", ()))), message=text)


def _unreachable(exc: sa.exc.SQLAlchemyError) -> bool:
    if isinstance(exc, sa.exc.TimeoutError | sa.exc.OperationalError):
        return True
    if isinstance(exc, sa.exc.DBAPIError):
        return bool(exc.connection_invalidated) or isinstance(
            exc, sa.exc.InterfaceError
        )
    return False


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every failure into an :class:`ErrorBody`."""

    @app.exception_handler(HealthcodeError)
    async def _domain(request: Request, exc: HealthcodeError) -> JSONResponse:
        status, code, message = answer_for(exc)
        headers = {}
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int):
            headers["Retry-After"] = str(retry_after)
        if status >= 500:
            log.error(
                "request_failed", code=code, error=type(exc).__name__, status=status
            )
        extra = getattr(exc, "answer_extra", None)
        return error_response(
            status, code, message, headers=headers, extra=extra() if extra else None
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_problem(error) for error in exc.errors()]
        first = problems[0] if problems else None
        if first is None:
            message = "The request is not acceptable; see /docs for its form."
        else:
            more = len(problems) - 1
            message = f"{first.field}: {first.message}"
            if more:
                message += f" {more} more problems are listed under problems."
        return error_response(422, "invalid_request", message, problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(
                404,
                "not_found",
                "There is nothing at this path; the endpoints are listed at /docs.",
            )
        if exc.status_code == 405:
            return error_response(
                405,
                "method_not_allowed",
                f"This path does not take {request.method}; see /docs for the"
                " methods it takes.",
                headers=dict(exc.headers or {}),
            )
        if exc.status_code == 400:
            return error_response(
                400,
                "bad_request",
                "The request could not be read; send a body that matches its"
                " Content-Type (JSON unless /docs says otherwise).",
            )
        code = "internal_error" if exc.status_code >= 500 else f"http_{exc.status_code}"
        detail = exc.detail if isinstance(exc.detail, str) else "The request failed."
        return error_response(exc.status_code, code, detail)

    @app.exception_handler(sa.exc.SQLAlchemyError)
    async def _database(request: Request, exc: sa.exc.SQLAlchemyError) -> JSONResponse:
        # A database that stopped, restarts or is out of reach is a fault a
        # caller waits out: a device keeps its check-ins and sends them again.
        # Anything else the database says is a fault of ours.
        if _unreachable(exc):
            retry_after = getattr(request.app.state, "retry_after", 1)
            return await _domain(
                request,
                DatabaseUnavailable("The database does not answer.", retry_after),
            )
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("request_crashed", error=type(exc).__name__, path=request.url.path)
        return error_response(500, "internal_error", _OURS)
