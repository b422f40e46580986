"""Domain objects shaped as answers."""

from __future__ import annotations

from fastapi.responses import Response
from pydantic import BaseModel

from healthcode.codes.format import Purpose
from healthcode.codes.services import IssuedCode
from healthcode.service.schemas import CodeAnswer, HistoryEvent, StatusAnswer
from healthcode.status.models import StatusEvent
from healthcode.status.services import StatusView


def status_answer(view: StatusView) -> StatusAnswer:
    return StatusAnswer(
        resident_id=view.resident_id,
        colour=view.colour,  # type: ignore[arg-type]
        reasons=view.reasons,
        as_of=view.as_of,
        changes_at=view.changes_at,
        changes_to=view.changes_to,  # type: ignore[arg-type]
        rule_set=view.rule_set,
    )


def json_answer(answer: BaseModel) -> Response:
    """``answer`` as the JSON body FastAPI would send for it, without checking it.

    FastAPI validates what an endpoint returns against its response model
    before it serializes it; for an answer built as that very model, the
    second check only costs a hot path its time.
    """
    return Response(
        answer.model_dump_json(by_alias=True), media_type="application/json"
    )


def code_answer(issued: IssuedCode) -> CodeAnswer:
    return CodeAnswer(
        text=issued.text,
        purpose="paper" if issued.purpose is Purpose.PAPER else "screen",
        colour=issued.colour.value if issued.colour else None,  # type: ignore[arg-type]
        masked_name=issued.masked_name,
        region=issued.region,
        region_name=issued.region_name,
        key_name=issued.key_name,
        issued_at=issued.issued_at,
        valid_until=issued.valid_until,
        status_index=issued.status_index,
    )


def history_event(event: StatusEvent) -> HistoryEvent:
    return HistoryEvent(
        at=event.at,
        from_colour=event.old_colour,  # type: ignore[arg-type]
        to_colour=event.new_colour,  # type: ignore[arg-type]
        cause=event.cause,
        rules=[reason.get("rule", "") for reason in event.reasons],
    )
