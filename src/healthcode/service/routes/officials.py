"""Officials' endpoints: appeals, overrides, searches, statistics, administration.

Each endpoint names the permission it needs (see
:data:`healthcode.accounts.services.ROLE_PERMISSIONS`). Every read of
identifiable data and every write here is appended to the audit log in the
transaction that does it.
"""

from __future__ import annotations

from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query, Response, status

from healthcode.accounts.models import ApiKey
from healthcode.accounts.services import (
    Permission,
    create_api_key,
    create_official,
    provisioning_uri,
    revoke_api_key,
)
from healthcode.family.models import Guardianship
from healthcode.family.services import approve_guardianship, pending_guardianships
from healthcode.identity.documents import Document, DocumentKind
from healthcode.identity.errors import UnknownResident
from healthcode.identity.models import Resident
from healthcode.officials.models import BulkOverride
from healthcode.officials.services import (
    OverrideOutcome,
    appeals,
    appeals_of,
    approve_bulk_override,
    end_override,
    reject_bulk_override,
    review_appeal,
    search_residents,
    set_override,
    statistics,
)
from healthcode.service.deps import Db, Now, OfficialRef, Rt, official_with
from healthcode.service.routes.residents import appeal_answer, document_of, status_of
from healthcode.service.schemas import (
    ApiKeyAnswer,
    ApiKeyRequest,
    AppealAnswer,
    AuditVerifyAnswer,
    BulkOverrideAnswer,
    DayCount,
    DecisionRequest,
    DistrictCount,
    GuardianshipAnswer,
    OfficialResidentAnswer,
    OverrideAnswer,
    OverrideRequest,
    Purpose,
    RejectionRequest,
    ResidentFound,
    ReviewRequest,
    SearchRequest,
    StaffAnswer,
    StaffRequest,
    StatisticsAnswer,
)

router = APIRouter(prefix="/v1/officials", tags=["officials"])

ObjectId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _with(permission: Permission) -> type[OfficialRef]:
    return Annotated[OfficialRef, Depends(official_with(permission))]  # type: ignore[return-value]


Reviewer = _with(Permission.REVIEW_APPEALS)
Overrider = _with(Permission.OVERRIDE)
Approver = _with(Permission.APPROVE_BULK_OVERRIDES)
Searcher = _with(Permission.SEARCH_RESIDENTS)
Counter = _with(Permission.READ_STATISTICS)
GuardianApprover = _with(Permission.APPROVE_GUARDIANS)
Administrator = _with(Permission.MANAGE_ACCOUNTS)
Auditor = _with(Permission.READ_AUDIT)


def _masked(resident: Resident) -> str:
    return Document(
        kind=DocumentKind(resident.doc_kind),
        number=resident.doc_number,
        country=resident.doc_country,
    ).masked()


# Appeals


@router.get("/appeals", response_model=list[AppealAnswer])
def list_appeals(
    official: Reviewer,
    session: Db,
    now: Now,
    state: Annotated[Literal["open", "upheld", "corrected"] | None, Query()] = "open",
) -> list[AppealAnswer]:
    """Appeals to review, oldest first (100 at most)."""
    found = appeals(session, state)
    official.audit(
        session,
        now,
        "appeals.list",
        state=state,
        residents=sorted({appeal.resident_id for appeal in found}),
    )
    return [appeal_answer(appeal) for appeal in found]


@router.post("/appeals/{appeal_id}/review", response_model=AppealAnswer)
def review(
    appeal_id: ObjectId,
    body: ReviewRequest,
    official: Reviewer,
    rt: Rt,
    session: Db,
    now: Now,
) -> AppealAnswer:
    """Uphold the colour, or correct it: a correction is an override."""
    appeal = review_appeal(
        session,
        appeal_id,
        official_id=official.id,
        official_role=official.role,
        outcome=body.outcome,
        note=body.note,
        now=now,
        colour=body.colour,
        expires_at=body.expires_at,
        policy=rt.overrides,
    )
    if appeal.override_id is not None:
        official.audit(
            session,
            now,
            "override.set",
            f"resident:{appeal.resident_id}",
            colour=body.colour,
            reason=body.note,
            expiresAt=body.expires_at,
            residents=[appeal.resident_id],
            overrideIds=[appeal.override_id],
            appealId=appeal.id,
        )
    official.audit(
        session,
        now,
        "appeal.review",
        f"resident:{appeal.resident_id}",
        appealId=appeal.id,
        outcome=appeal.state,
        overrideId=appeal.override_id,
    )
    return appeal_answer(appeal)


# Overrides


def _override_answer(outcome: OverrideOutcome, residents: int) -> OverrideAnswer:
    return OverrideAnswer(
        state="applied" if outcome.overrides else "pending-approval",
        override_ids=[override.id for override in outcome.overrides],
        bulk_override_id=outcome.bulk.id if outcome.bulk else None,
        residents=residents,
    )


@router.post(
    "/overrides",
    response_model=OverrideAnswer,
    status_code=status.HTTP_201_CREATED,
    responses={202: {"model": OverrideAnswer, "description": "Waiting for approval."}},
)
def override(
    body: OverrideRequest,
    official: Overrider,
    rt: Rt,
    session: Db,
    now: Now,
    response: Response,
) -> OverrideAnswer:
    """Set residents' colour with a reason and an expiry.

    More residents than HEALTHCODE_BULK_OVERRIDE_THRESHOLD (100) in one action
    need legalBasis and wait for a second official (answered 202).
    """
    outcome = set_override(
        session,
        resident_ids=body.resident_ids,
        colour=body.colour,
        reason=body.reason,
        expires_at=body.expires_at,
        author_id=official.id,
        author_role=official.role,
        now=now,
        legal_basis=body.legal_basis,
        policy=rt.overrides,
    )
    ids = sorted(set(body.resident_ids))
    if outcome.bulk is not None:
        subject: str | None = f"bulk-override:{outcome.bulk.id}"
    else:
        subject = f"resident:{ids[0]}" if len(ids) == 1 else None
    official.audit(
        session,
        now,
        "override.propose" if outcome.bulk else "override.set",
        subject,
        body.legal_basis,
        colour=body.colour,
        reason=body.reason,
        expiresAt=body.expires_at,
        residents=ids,
        overrideIds=[o.id for o in outcome.overrides],
    )
    if outcome.bulk is not None:
        response.status_code = status.HTTP_202_ACCEPTED
    return _override_answer(outcome, len(ids))


@router.delete("/overrides/{override_id}", status_code=status.HTTP_204_NO_CONTENT)
def end(override_id: ObjectId, official: Overrider, session: Db, now: Now) -> Response:
    """End an override before its expiry; the computed colour returns now."""
    ended = end_override(session, override_id, official.id, now)
    official.audit(
        session,
        now,
        "override.end",
        f"resident:{ended.resident_id}",
        overrideId=ended.id,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _bulk_answer(bulk: BulkOverride) -> BulkOverrideAnswer:
    return BulkOverrideAnswer(
        bulk_override_id=bulk.id,
        colour=bulk.colour,  # type: ignore[arg-type]
        reason=bulk.reason,
        legal_basis=bulk.legal_basis,
        expires_at=bulk.expires_at,
        residents=len(bulk.resident_ids),
        author_id=bulk.author_id,
        created_at=bulk.created_at,
        state=bulk.state,  # type: ignore[arg-type]
        decided_by=bulk.decided_by,
        decided_at=bulk.decided_at,
        decision_note=bulk.decision_note,
    )


@router.get("/bulk-overrides", response_model=list[BulkOverrideAnswer])
def list_bulk(
    official: Approver,
    session: Db,
    state: Annotated[Literal["pending", "approved", "rejected"], Query()] = "pending",
) -> list[BulkOverrideAnswer]:
    """Bulk overrides, by default those waiting for a second official."""
    found = session.scalars(
        sa.select(BulkOverride)
        .where(BulkOverride.state == state)
        .order_by(BulkOverride.id)
        .limit(100)
    )
    return [_bulk_answer(bulk) for bulk in found]


@router.post("/bulk-overrides/{bulk_id}/approve", response_model=OverrideAnswer)
def approve_bulk(
    bulk_id: ObjectId,
    body: DecisionRequest,
    official: Approver,
    session: Db,
    now: Now,
) -> OverrideAnswer:
    """Approve another official's bulk override; it applies to each resident now."""
    outcome = approve_bulk_override(session, bulk_id, official.id, now, body.note)
    bulk = outcome.bulk
    official.audit(
        session,
        now,
        "override.approve",
        f"bulk-override:{bulk_id}",
        bulk.legal_basis if bulk else None,
        residents=len(outcome.overrides),
        note=body.note,
    )
    return _override_answer(outcome, len(outcome.overrides))


@router.post("/bulk-overrides/{bulk_id}/reject", response_model=BulkOverrideAnswer)
def reject_bulk(
    bulk_id: ObjectId,
    body: RejectionRequest,
    official: Approver,
    session: Db,
    now: Now,
) -> BulkOverrideAnswer:
    """Turn a bulk override down; nobody's colour changes."""
    bulk = reject_bulk_override(session, bulk_id, official.id, now, body.note)
    official.audit(
        session,
        now,
        "override.reject",
        f"bulk-override:{bulk_id}",
        note=body.note,
    )
    return _bulk_answer(bulk)


# Residents


@router.post("/search", response_model=list[ResidentFound])
def search(
    body: SearchRequest, official: Searcher, rt: Rt, session: Db, now: Now
) -> list[ResidentFound]:
    """Find residents by document or by name; the purpose is audited."""
    document = document_of(body.document, rt, now) if body.document else None
    found = search_residents(
        session, document=document, name=body.name, born_in=body.born_in
    )
    answers = [
        ResidentFound(
            resident_id=resident.id,
            name=resident.name,
            document=_masked(resident),
            region_code=resident.region_code,
            identity_state=resident.identity_state,
            colour=rt.cache.status(session, resident.id, now).colour,  # type: ignore[arg-type]
        )
        for resident in found
    ]
    official.audit(
        session,
        now,
        "resident.search",
        purpose=body.purpose,
        by="document" if document else "name",
        residents=[answer.resident_id for answer in answers],
    )
    return answers


@router.get("/residents/{resident_id}", response_model=OfficialResidentAnswer)
def resident(
    resident_id: ObjectId,
    purpose: Annotated[Purpose, Query(description="Why: kept in the audit log.")],
    official: Searcher,
    rt: Rt,
    session: Db,
    now: Now,
) -> OfficialResidentAnswer:
    """One resident's status with its reasons, and their appeals."""
    found = session.get(Resident, resident_id)
    if found is None:
        raise UnknownResident("No resident has that id.")
    answer = OfficialResidentAnswer(
        resident_id=found.id,
        name=found.name,
        document=_masked(found),
        region_code=found.region_code,
        identity_state=found.identity_state,
        status=status_of(rt, session, found.id, now),
        appeals=[appeal_answer(appeal) for appeal in appeals_of(session, found.id)],
    )
    official.audit(session, now, "resident.read", f"resident:{found.id}", purpose)
    return answer


@router.get("/statistics", response_model=StatisticsAnswer)
def stats(
    official: Counter,
    rt: Rt,
    session: Db,
    now: Now,
    days: Annotated[
        int, Query(ge=1, le=90, description="Days back, today included.")
    ] = 7,
) -> StatisticsAnswer:
    """Residents by colour and by district, and colour changes by day."""
    del official
    found = statistics(session, now, rt.settings.tz, days=days)
    return StatisticsAnswer(
        by_colour=found.by_colour,
        by_district=[
            DistrictCount(district=district, colour=colour, residents=count)  # type: ignore[arg-type]
            for district, colour, count in found.by_district
        ],
        by_day=[
            DayCount(day=day, colour=colour, changes=count)  # type: ignore[arg-type]
            for day, colour, count in found.by_day
        ],
    )


def _guardianship(link: Guardianship) -> GuardianshipAnswer:
    return GuardianshipAnswer(
        guardianship_id=link.id,
        guardian_id=link.guardian_id,
        dependent_id=link.dependent_id,
        state=link.state,  # type: ignore[arg-type]
        basis=link.basis,  # type: ignore[arg-type]
        created_at=link.created_at,
    )


@router.get("/guardianships", response_model=list[GuardianshipAnswer])
def pending_links(official: GuardianApprover, session: Db) -> list[GuardianshipAnswer]:
    """Guardians waiting for approval to hold an adult's code."""
    del official
    return [_guardianship(link) for link in pending_guardianships(session)]


@router.post(
    "/guardianships/{guardianship_id}/approve", response_model=GuardianshipAnswer
)
def approve_link(
    guardianship_id: ObjectId, official: GuardianApprover, session: Db, now: Now
) -> GuardianshipAnswer:
    """Approve a guardian for a dependent who is neither a child nor elderly."""
    link = approve_guardianship(session, guardianship_id, official.id, now)
    official.audit(
        session,
        now,
        "guardianship.approve",
        f"resident:{link.dependent_id}",
        guardianshipId=link.id,
        guardianId=link.guardian_id,
    )
    return _guardianship(link)


# Administration


def _key_answer(row: ApiKey, key: str | None = None) -> ApiKeyAnswer:
    return ApiKeyAnswer(
        api_key_id=row.id,
        kind=row.kind,
        scope=row.scope,
        feed_kinds=list(row.feed_kinds or []),
        label=row.label,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        key=key,
    )


@router.post(
    "/api-keys", response_model=ApiKeyAnswer, status_code=status.HTTP_201_CREATED
)
def make_key(
    body: ApiKeyRequest, official: Administrator, session: Db, now: Now
) -> ApiKeyAnswer:
    """Make a key for a venue, a checkpoint or a department; shown this once."""
    row, key = create_api_key(
        session,
        body.kind,
        body.scope,
        now,
        feed_kinds=body.feed_kinds,
        label=body.label,
        created_by=official.id,
    )
    official.audit(
        session,
        now,
        "api-key.create",
        f"api-key:{row.id}",
        kind=row.kind,
        scope=row.scope,
        feedKinds=list(row.feed_kinds),
    )
    return _key_answer(row, key)


@router.get("/api-keys", response_model=list[ApiKeyAnswer])
def keys(official: Administrator, session: Db) -> list[ApiKeyAnswer]:
    """Every key, without the keys themselves."""
    del official
    return [
        _key_answer(row)
        for row in session.scalars(sa.select(ApiKey).order_by(ApiKey.id).limit(1000))
    ]


@router.delete("/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_key(
    key_id: ObjectId, official: Administrator, session: Db, now: Now
) -> Response:
    """Revoke a key; requests that carry it are refused from now on."""
    revoke_api_key(session, key_id, now)
    official.audit(session, now, "api-key.revoke", f"api-key:{key_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/staff", response_model=StaffAnswer, status_code=status.HTTP_201_CREATED)
def add_staff(
    body: StaffRequest, official: Administrator, session: Db, now: Now
) -> StaffAnswer:
    """Add an official; the answer carries the TOTP enrolment URI, once."""
    made, _ = create_official(session, body.username, body.role, body.password, now)
    official.audit(
        session, now, "official.create", f"official:{made.id}", role=made.role
    )
    return StaffAnswer(
        official_id=made.id,
        username=made.username,
        role=made.role,
        totp_uri=provisioning_uri(made),
    )


@router.get("/audit/verify", response_model=AuditVerifyAnswer)
def verify_audit(official: Auditor, session: Db) -> AuditVerifyAnswer:
    """Check the audit log's hash chain; name the first broken entry."""
    from healthcode.privacy.config import get_privacy_settings
    from healthcode.privacy.seals import SealKeys
    from healthcode.privacy.seals import verify_audit as verify_sealed_log

    del official
    # From the newest purge seal on, as retention leaves the log.
    report = verify_sealed_log(session, SealKeys(get_privacy_settings().data_key_dir))
    return AuditVerifyAnswer(
        entries=report.entries,
        intact=report.intact,
        first_broken=report.first_broken,
        problem=report.problem,
    )
