"""Threats of docs/security.md that no other suite covers.

SQL injection through every text field of the importer and of the API,
session fixation, the CSRF check and the security headers on every page,
and secrets kept out of the repository. The threats that other suites
cover are listed in docs/security.md with their tests.
"""

from __future__ import annotations

import csv
import io
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthcode.feeds.models import Declaration, LabResult, RiskArea, Vaccination
from healthcode.feeds.services import import_feed
from healthcode.identity.models import Resident
from healthcode.identity.services import search_by_name
from healthcode.officials.models import Appeal
from healthcode.status.services import recolor_residents

from .support import service, sign_in, sign_in_official

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]

# Text that would change a statement built by pasting values into SQL: a
# quote closing the literal, a second statement, a comment, LIKE's
# wildcards, a backslash escape and PostgreSQL's dollar quoting.
PAYLOADS = (
    "x'); DROP TABLE residents; --",
    'x" OR "1"="1',
    "x' OR '1'='1' --",
    "%' OR 1=1 /*",
    "_%\\'; DELETE FROM statuses; --",
    "$$; DROP TABLE audit_entries; $$",
)


def _tables(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(sa.inspect(connection).get_table_names())


def _count(engine: Engine, model: Any) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(sa.select(sa.func.count()).select_from(model)))


def _csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def _import(engine: Engine, kind: str, path: Path) -> Any:
    return import_feed(
        engine,
        kind,
        path,
        now=NOW,
        zone=ZONE,
        future_skew=timedelta(minutes=5),
        skip_bad=True,
        recolor=recolor_residents,
    )


# SQL injection through the importer.


def test_every_text_field_of_the_feeds_is_stored_as_text(
    engine: Engine, tmp_path: Path
) -> None:
    tables = _tables(engine)
    number = "610113199001011230"
    identities = _csv(
        tmp_path / "identities.csv",
        [
            "record_id",
            "doc_number",
            "name",
            "region_code",
            "street",
            "outcome",
            "confirmed_at",
        ],
        [
            [
                f"PS-{i}",
                number if i == 0 else payload,
                payload,
                "610113",
                payload,
                "confirmed",
                "2026-03-01T09:00:00",
            ]
            for i, payload in enumerate(PAYLOADS)
        ],
    )
    labs = _csv(
        tmp_path / "labs.csv",
        ["record_id", "doc_number", "sampled_at", "method", "result", "lab"],
        [
            [payload, number, "2026-03-09T08:00:00", "pcr", "negative", payload]
            for payload in PAYLOADS
        ],
    )
    vaccinations = _csv(
        tmp_path / "vaccinations.csv",
        ["record_id", "doc_number", "administered_at", "product", "dose_number"],
        [
            [payload, number, "2021-05-11T10:00:00", payload, "1"]
            for payload in PAYLOADS
        ],
    )
    declarations = _csv(
        tmp_path / "declarations.csv",
        [
            "record_id",
            "doc_number",
            "declared_at",
            "fever",
            "respiratory",
            "visited_code",
            "visited_place",
            "visited_from",
            "visited_to",
        ],
        [
            [
                payload,
                number,
                "2026-03-09T08:00:00",
                "no",
                "no",
                "410105",
                payload,
                "2026-03-08T06:30:00",
                "2026-03-08T07:12:00",
            ]
            for payload in PAYLOADS
        ],
    )
    areas = _csv(
        tmp_path / "areas.csv",
        ["record_id", "code", "name", "level", "starts_at"],
        [
            [payload, "610113", payload, "medium", "2026-03-06T00:00:00"]
            for payload in PAYLOADS
        ],
    )

    reports = [
        _import(engine, "identities", identities),
        _import(engine, "lab-results", labs),
        _import(engine, "vaccinations", vaccinations),
        _import(engine, "declarations", declarations),
        _import(engine, "risk-areas", areas),
    ]

    with Session(engine) as session:
        resident = session.scalars(sa.select(Resident)).one()
        labs_stored = session.scalars(sa.select(LabResult.lab)).all()
        products = session.scalars(sa.select(Vaccination.product)).all()
        places = session.scalars(sa.select(Declaration.visited_place)).all()
        area_names = session.scalars(sa.select(RiskArea.name)).all()
    assert all(report.committed for report in reports)
    assert _tables(engine) == tables
    assert resident.name == PAYLOADS[0]
    assert resident.street == PAYLOADS[0]
    assert sorted(labs_stored) == sorted(PAYLOADS)
    assert sorted(products) == sorted(PAYLOADS)
    assert sorted(places) == sorted(PAYLOADS)
    assert sorted(area_names) == sorted(PAYLOADS)


@pytest.mark.parametrize("payload", ["%", "_", "%%", "' OR '1'='1", "\\"])
def test_a_name_search_with_wildcards_or_quotes_finds_nobody(
    engine: Engine, tmp_path: Path, payload: str
) -> None:
    people = _csv(
        tmp_path / "identities.csv",
        ["record_id", "doc_number", "name", "region_code", "outcome", "confirmed_at"],
        [
            [
                "PS-1",
                "610113199001011230",
                "周慧敏",
                "610113",
                "confirmed",
                "2026-03-01T09:00",
            ],
            [
                "PS-2",
                "61011319550202121X",
                "Anna Schmidt",
                "610113",
                "confirmed",
                "2026-03-01T09:00",
            ],
        ],
    )
    _import(engine, "identities", people)

    with Session(engine) as session:
        found = search_by_name(session, payload)

    assert found == []
    assert _count(engine, Resident) == 2


# SQL injection through the API.


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> Iterator[tuple[Any, Any, Any]]:
    with service(engine, tmp_path) as running:
        yield running


def test_every_text_field_of_the_api_is_stored_as_text(
    client: tuple[Any, Any, Any], engine: Engine
) -> None:
    http, outbox, clock = client
    tables = _tables(engine)
    me = sign_in(http, outbox, "13912345678")
    name = "O'Brien-Smith"
    registered = http.post(
        "/v1/residents/me",
        json={
            "document": {"kind": "cn-id", "number": "610113199001011230"},
            "name": name,
        },
        headers=me,
    )
    answers = []
    for payload in PAYLOADS:
        answers.append(
            http.post("/v1/residents/me/appeals", json={"message": payload}, headers=me)
        )
        answers.append(
            http.post(
                "/v1/residents/me/declarations",
                json={
                    "fever": False,
                    "respiratory": False,
                    "visited": {"code": "410105", "place": payload},
                },
                headers=me,
            )
        )
        answers.append(
            http.post(
                "/v1/dependents",
                json={
                    "document": {"kind": "cn-id", "number": payload},
                    "name": payload,
                },
                headers=me,
            )
        )
    official = sign_in_official(engine, http, "searcher", "health-official", clock.now)
    searches = [
        http.post(
            "/v1/officials/search",
            json={"name": payload, "purpose": f"tracing {payload}"},
            headers=official,
        )
        for payload in PAYLOADS
    ]
    lookups = [
        http.get(
            f"/v1/officials/residents/{payload}",
            params={"purpose": "reviewing an appeal"},
            headers=official,
        )
        for payload in ("1 OR 1=1", "1; DROP TABLE residents")
    ]

    with Session(engine) as session:
        messages = session.scalars(sa.select(Appeal.message)).all()
        places = session.scalars(sa.select(Declaration.visited_place)).all()
        stored_name = session.scalars(sa.select(Resident.name)).one()
    assert registered.status_code == 201, registered.text
    assert _tables(engine) == tables
    assert stored_name == name
    appeals, declared, dependents = answers[0::3], answers[1::3], answers[2::3]
    assert appeals[0].status_code == 201
    assert {answer.status_code for answer in declared} == {201}
    assert messages == [PAYLOADS[0]]
    assert sorted(places) == sorted(PAYLOADS)
    assert {answer.status_code for answer in dependents} == {422}
    assert {s.status_code for s in searches} == {200}
    assert all(s.json() == [] for s in searches)
    assert {r.status_code for r in lookups} == {422}
    assert _count(engine, Resident) == 1


# Sessions.


def test_a_session_token_set_before_sign_in_is_never_adopted(
    client: tuple[Any, Any, Any],
) -> None:
    http, outbox, _ = client
    planted = "A" * 43
    http.cookies.set("healthcode_session", planted)
    http.post("/v1/sign-in/code", json={"phone": "13912345678"})

    answer = http.post(
        "/v1/sign-in",
        json={
            "phone": "13912345678",
            "code": outbox.last("13912345678"),
            "client": "page",
        },
    )

    issued = answer.cookies.get("healthcode_session")
    http.cookies.clear()
    http.cookies.set("healthcode_session", planted)
    with_planted = http.get("/v1/sign-in/me")
    http.cookies.clear()
    http.cookies.set("healthcode_session", issued)
    with_issued = http.get("/v1/sign-in/me")
    assert answer.status_code == 200, answer.text
    assert issued and issued != planted
    assert with_planted.status_code == 401
    assert with_issued.status_code == 200


# Every form, every page.


def _page_routes(app: Any) -> list[Any]:
    """Every page route of the app, through the routers it includes."""
    from healthcode.web.pages import PageRoute

    found = []
    pending = list(app.routes)
    while pending:
        route = pending.pop()
        included = getattr(route, "original_router", None)
        if included is not None:
            pending.extend(included.routes)
        elif isinstance(route, PageRoute):
            found.append(route)
    return sorted(found, key=lambda route: route.path)


def _filled(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path).replace("/1/1", "/1/approve")


def test_every_form_refuses_a_post_without_its_token(
    client: tuple[Any, Any, Any],
) -> None:
    http, sent, _ = client
    forms = [
        route
        for route in _page_routes(http.app)
        if "POST" in route.methods and getattr(route.endpoint, "csrf", True)
    ]
    http.get("/app/sign-in")

    answers = {
        route.path: http.post(_filled(route.path), data={"x": "1"}).status_code
        for route in forms
    }

    assert len(forms) >= 15
    assert answers == {route.path: 403 for route in forms}
    assert sent.sent == {}


def test_every_page_carries_the_security_headers(
    client: tuple[Any, Any, Any],
) -> None:
    http, _, _ = client
    # Pages, that is: answers of JSON endpoints for our own scripts are
    # not rendered, and carry no policy when they are errors.
    pages = [
        route.path
        for route in _page_routes(http.app)
        if "GET" in route.methods
        and "{" not in route.path
        and not getattr(route.endpoint, "json_errors", False)
    ]

    missing = {}
    for path in pages:
        answer = http.get(path, follow_redirects=False)
        policy = answer.headers.get("content-security-policy", "")
        if (
            "frame-ancestors 'none'" not in policy
            or "nosniff" not in answer.headers.get("x-content-type-options", "")
        ):
            missing[path] = answer.status_code

    assert len(pages) >= 10
    assert missing == {}


def test_answers_over_tls_carry_strict_transport_security(
    client: tuple[Any, Any, Any],
) -> None:
    http, _, _ = client

    page = http.get("/app/sign-in")
    api = http.get("/v1/health")

    assert "max-age=" in page.headers.get("strict-transport-security", "")
    assert "max-age=" in api.headers.get("strict-transport-security", "")


# Secrets.

_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----\s+[A-Za-z0-9+/=\s]{40,}-----END"
)
_API_KEY = re.compile(r"hck_[A-Za-z0-9_-]{40,}")
_SECRET_FILES = re.compile(
    r"(^|/)(\.env|[^/]+\.(key|subject|pem|p12|pfx|db|sqlite))$"
    r"|(^|/)(data-keys|keys)/|sign-in-codes\.ndjson$"
)


def _tracked() -> list[str]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"],
            cwd=REPO,
            capture_output=True,
            check=True,
            timeout=60,
        )
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git cannot list the repository's files here.")
    return [name for name in listed.stdout.decode().split("\0") if name]


def test_no_key_file_or_database_is_in_the_repository() -> None:
    files = _tracked()

    found = [name for name in files if _SECRET_FILES.search(name)]

    assert len(files) > 100
    assert found == []


def test_no_private_key_or_api_key_is_written_in_a_tracked_file() -> None:
    found = []
    for name in _tracked():
        path = REPO / name
        if not path.is_file() or path.stat().st_size > 5_000_000:
            continue
        text = path.read_bytes().decode("utf-8", errors="ignore")
        if _PRIVATE_KEY.search(text) or _API_KEY.search(text):
            found.append(name)

    assert found == []


def test_the_patterns_find_what_they_look_for() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )

    assert _PRIVATE_KEY.search(pem.decode())
    assert _API_KEY.search("key: hck_" + "x" * 43)
    assert _SECRET_FILES.search("deploy/data-keys/seal/current")
    assert _SECRET_FILES.search("keys/610100-1a2b3c4d.key")
    assert not _SECRET_FILES.search("src/healthcode/codes/keys.py")
