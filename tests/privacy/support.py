"""Helpers of the privacy tests: JSON logs captured, leaks searched, a clock."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from healthcode.accounts.senders import phone_digest
from healthcode.accounts.services import normalize_phone

# Noon in Shanghai on a Tuesday.
NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)


@contextmanager
def json_logs(level: str = "info") -> Iterator[list[str]]:
    """Capture every structlog event as the JSON line production would write.

    The processors are those of :func:`healthcode.log.configure` in JSON
    mode, events below ``level`` dropped as the production filter drops
    them; the run's log watch stays first. Code run earlier in the session
    may have configured logging with a higher level and loggers that cache
    themselves (the demo command does), so the package's cached loggers are
    let go before and after, and the configuration is put back afterwards.
    """
    lines: list[str] = []
    renderer = structlog.processors.JSONRenderer()

    def keep(
        logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> Any:
        lines.append(renderer(logger, method_name, dict(event_dict)))
        raise structlog.DropEvent

    saved = structlog.get_config()
    watches = [p for p in saved["processors"] if type(p).__name__ == "LogWatch"]
    _forget_cached_loggers()
    structlog.configure(
        processors=[
            *watches,
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            keep,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        cache_logger_on_first_use=False,
    )
    try:
        yield lines
    finally:
        _forget_cached_loggers()
        structlog.configure(**saved)


def _forget_cached_loggers() -> None:
    # A lazy logger that cached itself keeps the level and processors of the
    # configuration it first saw; without its cached copy it reads the
    # configuration of the moment again.
    proxy = type(structlog.get_logger())
    for name, module in list(sys.modules.items()):
        if not name.startswith("healthcode") or module is None:
            continue
        for value in list(vars(module).values()):
            if isinstance(value, proxy) and "bind" in vars(value):
                del value.bind


def log_texts(lines: Iterable[str]) -> list[str]:
    """Each JSON line as written and with its values decoded.

    The JSON renderer writes characters outside ASCII as escapes, so a name
    in Han characters is searched for in the decoded values as well.
    """
    texts = []
    for line in lines:
        texts.append(line)
        texts.append(" ".join(_flat(json.loads(line))))
    return texts


def _flat(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _flat(item)
    elif isinstance(value, list):
        for item in value:
            yield from _flat(item)
    else:
        yield str(value)


def leaks(texts: Iterable[tuple[str, str]], values: Iterable[str]) -> list[str]:
    """Where any of ``values`` occurs in the (place, text) pairs, masked.

    The answer names the place and the value's length only, so that a
    failing assertion does not print the personal value it found.
    """
    wanted = sorted({value for value in values if value}, key=len, reverse=True)
    found = []
    for place, text in texts:
        for value in wanted:
            if value in text:
                found.append(f"{place}: a value of {len(value)} characters")
    return found


@dataclass
class Clock:
    """A clock a test moves by hand."""

    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now = self.now + timedelta(**delta)
        return self.now


@dataclass
class Outbox:
    """A sign-in code sender that keeps what it sent, by phone digest."""

    sent: dict[str, list[str]] = field(default_factory=dict)

    def send(self, phone: str, code: str, valid_until: datetime) -> None:
        self.sent.setdefault(phone_digest(phone), []).append(code)

    def last(self, phone: str) -> str:
        return self.sent[phone_digest(normalize_phone(phone))][-1]


# Records written straight into the tables, for retention and sunset tests.

_serial = iter(range(1, 10**9))


def add_resident(session: Any, number: str, name: str, at: datetime) -> int:
    """A resident row, without the status the registration service adds."""
    from healthcode.identity.models import Resident

    resident = Resident(
        doc_kind="cn-id",
        doc_country="",
        doc_number=number,
        name=name,
        region_code="610113",
        identity_state="confirmed",
        registered_at=at,
    )
    session.add(resident)
    session.flush()
    return resident.id


def add_declaration(session: Any, resident_id: int, at: datetime) -> int:
    """A resident's declaration made at ``at``, in an import of its own."""
    from healthcode.feeds.models import Declaration, FeedImport

    serial = next(_serial)
    feed = FeedImport(
        kind="declarations",
        department="resident",
        file_name=f"app-{serial}.ndjson",
        sha256="0" * 64,
        zone="Asia/Shanghai",
        mode="all-or-nothing",
        started_at=at,
    )
    session.add(feed)
    session.flush()
    row = Declaration(
        department="resident",
        source_id=f"APP-{serial}",
        content_hash="0" * 32,
        import_id=feed.id,
        resident_id=resident_id,
        declared_at=at,
        fever=False,
        respiratory=False,
    )
    session.add(row)
    session.flush()
    return row.id


def add_checkin(session: Any, resident_id: int, at: datetime) -> int:
    """A visit at a venue of its own, opened at ``at``."""
    from healthcode.checkins.models import Checkin, Venue

    serial = next(_serial)
    venue = Venue(
        name=f"Shop {serial}",
        address="Xiaozhai Road",
        region_code="610113",
        venue_type="shop",
        default_stay_minutes=60,
        created_at=at,
    )
    session.add(venue)
    session.flush()
    visit = Checkin(
        venue_id=venue.id,
        resident_id=resident_id,
        checked_in_at=at,
        source="resident-scan",
        idempotency_key=f"scan-{serial}",
    )
    session.add(visit)
    session.flush()
    return visit.id


@contextmanager
def audit_guards_dropped(engine: Any) -> Iterator[None]:
    """Let a test tamper with the audit tables, as a database owner could.

    On PostgreSQL, whose database outlives the test, the triggers are
    switched back on afterwards.
    """
    import sqlalchemy as sa

    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as connection:
        if postgres:
            for table in ("audit_entries", "audit_seals"):
                connection.execute(sa.text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
        else:
            for name in (
                "audit_entries_no_update",
                "audit_entries_no_delete",
                "audit_seals_no_update",
                "audit_seals_no_delete",
            ):
                connection.execute(sa.text(f"DROP TRIGGER IF EXISTS {name}"))
    try:
        yield
    finally:
        if postgres:
            with engine.begin() as connection:
                for table in ("audit_entries", "audit_seals"):
                    connection.execute(
                        sa.text(f"ALTER TABLE {table} ENABLE TRIGGER USER")
                    )


# The service, in process.

PASSWORD = "correct horse battery"


@contextmanager
def service(engine: Any, folder: Any) -> Iterator[tuple[Any, Outbox, Clock]]:
    """A test client of the service on ``engine``, its outbox and its clock."""
    import warnings

    from starlette.exceptions import StarletteDeprecationWarning

    from healthcode.accounts.stores import MemoryStore
    from healthcode.config import Settings
    from healthcode.service.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StarletteDeprecationWarning)
        from fastapi.testclient import TestClient

    settings = Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        key_dir=str(folder / "keys"),
        region="610100",
        sign_in_sender="console",
    )
    clock, outbox = Clock(), Outbox()
    app = create_app(
        settings, clock=clock, store=MemoryStore(), sender=outbox, engine=engine
    )
    with TestClient(app, base_url="https://testserver") as client:
        yield client, outbox, clock


def sign_in(client: Any, outbox: Outbox, phone: str) -> dict[str, str]:
    """Sign ``phone`` in as an app; the headers that carry its session."""
    sent = client.post("/v1/sign-in/code", json={"phone": phone})
    assert sent.status_code == 202, sent.text
    answer = client.post(
        "/v1/sign-in",
        json={"phone": phone, "code": outbox.last(phone), "client": "app"},
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def sign_in_official(
    engine: Any, client: Any, username: str, role: str, now: datetime
) -> dict[str, str]:
    """Make an official and sign them in; the headers that carry the session."""
    import pyotp
    from sqlalchemy.orm import Session

    from healthcode.accounts.services import create_official

    with Session(engine) as session, session.begin():
        _, secret = create_official(session, username, role, PASSWORD, now)
    answer = client.post(
        "/v1/officials/sign-in",
        json={
            "username": username,
            "password": PASSWORD,
            "totp": pyotp.TOTP(secret).at(now),
        },
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}
