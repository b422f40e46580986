"""Residents' codes issued from their stored statuses, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session
from structlog.testing import capture_logs

from healthcode.codes.errors import (
    ExpiredCode,
    KeyConfigurationError,
    NoIssuingRegion,
    RegionNotServed,
)
from healthcode.codes.format import MAX_NAME_BYTES, Colour, Purpose
from healthcode.codes.keys import KeyStore
from healthcode.codes.services import (
    CodeService,
    issuing_region_of,
    key_directory,
    local_verifier,
)
from healthcode.codes.statuslist import check_paper_code, load_status_list
from healthcode.feeds.services import import_feed
from healthcode.identity.documents import parse_document
from healthcode.identity.services import get_resident, register_resident
from healthcode.status.services import recolor_residents

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Noon in Shanghai.
NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
GREEN_CARD = "610113196702282566"
YELLOW_CARD = "610112198005121233"
BEIJING_CARD = "110101199003070011"
PASSPORT = "C01X00T47"


def _feed(tmp_path: Path, name: str, header: str, *lines: str) -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def _import(engine, kind: str, path: Path) -> None:
    report = import_feed(
        engine,
        kind,
        path,
        now=NOW,
        zone=SHANGHAI,
        future_skew=timedelta(minutes=5),
        recolor=recolor_residents,
    )
    assert report.committed, report.errors


@pytest.fixture
def residents(engine, tmp_path: Path) -> dict[str, int]:
    """A green and a yellow Xi'an resident, a grey Beijing one, a grey visitor."""
    _import(
        engine,
        "identities",
        _feed(
            tmp_path,
            "identities.csv",
            "record_id,doc_kind,doc_number,doc_country,name,region_code,outcome,"
            "confirmed_at",
            f"PS-1,cn-id,{GREEN_CARD},,张三丰,610113,confirmed,2026-03-01T09:00:00",
            f"PS-2,cn-id,{YELLOW_CARD},,李四,610112,confirmed,2026-03-01T09:00:00",
        ),
    )
    _import(
        engine,
        "declarations",
        _feed(
            tmp_path,
            "declarations.csv",
            "record_id,doc_number,declared_at,fever,respiratory",
            f"D-1,{YELLOW_CARD},2026-03-10T09:00:00,true,false",
        ),
    )
    with Session(engine) as session, session.begin():
        beijing = register_resident(
            session,
            parse_document("cn-id", BEIJING_CARD, today=NOW.date()),
            "王五",
            NOW - timedelta(hours=1),
            region_code="110101",
        )
        visitor = register_resident(
            session,
            parse_document("passport", PASSPORT, "DEU", today=NOW.date()),
            "Anna Müller",
            NOW - timedelta(hours=1),
        )
        ids = {"beijing": beijing.id, "visitor": visitor.id}
        for label, number in (("green", GREEN_CARD), ("yellow", YELLOW_CARD)):
            document = parse_document("cn-id", number, today=NOW.date())
            ids[label] = get_resident(session, document).id
    return ids


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys")


def _issue(engine, service: CodeService, resident_id: int, *, paper=False, at=NOW):
    with Session(engine) as session, session.begin():
        if paper:
            return service.paper_code(session, resident_id, at)
        return service.screen_code(session, resident_id, at)


def test_a_screen_code_shows_the_stored_colour_and_the_masked_name(
    engine, residents, store
):
    service = CodeService(store)

    green = _issue(engine, service, residents["green"])
    yellow = _issue(engine, service, residents["yellow"])
    verified = local_verifier(store).verify(green.text, NOW + timedelta(minutes=1))

    assert (green.colour, green.masked_name) == (Colour.GREEN, "张**")
    assert (yellow.colour, yellow.masked_name) == (Colour.YELLOW, "李*")
    assert (green.region, green.region_name) == ("610100", "陕西省西安市")
    assert green.valid_until == NOW + timedelta(minutes=5)
    assert verified.colour is Colour.GREEN
    assert verified.masked_name == "张**"
    assert verified.content.region == "610100"
    assert service.resolve(green.text) == residents["green"]


def test_a_screen_code_expires_after_five_minutes(engine, residents, store):
    service = CodeService(store)
    issued = _issue(engine, service, residents["green"])

    with pytest.raises(ExpiredCode):
        local_verifier(store).verify(issued.text, NOW + timedelta(minutes=5))


def test_the_first_code_of_a_region_generates_its_key_and_says_so(
    engine, residents, store
):
    service = CodeService(store)

    with capture_logs() as logs:
        issued = _issue(engine, service, residents["green"])
        _issue(engine, service, residents["yellow"])

    [record] = store.records()
    assert record.name == issued.key_name
    generated = [e for e in logs if e["event"] == "code_key_generated_on_first_use"]
    assert len(generated) == 1
    assert generated[0]["key"] == record.name
    assert generated[0]["directory"] == str(store.directory)
    shown = repr(logs)
    assert record.public_key.hex() not in shown
    assert "PRIVATE" not in shown
    assert (store.directory / "610100.subject").read_bytes().hex() not in shown


def test_a_region_whose_keys_were_retired_gets_no_new_key_silently(
    engine, residents, store
):
    service = CodeService(store)
    first = _issue(engine, service, residents["green"])
    store.retire("610100", store.records()[0].key_id, NOW + timedelta(minutes=1))

    with pytest.raises(KeyConfigurationError) as raised:
        _issue(engine, service, residents["green"], at=NOW + timedelta(minutes=2))

    assert "610100" in str(raised.value)
    assert [r.name for r in store.records()] == [first.key_name]


def test_codes_follow_a_rotation_made_behind_the_services_back(
    engine, residents, store
):
    service = CodeService(store)
    before = _issue(engine, service, residents["green"])
    new = store.rotate("610100", NOW + timedelta(minutes=1))

    after = _issue(engine, service, residents["green"], at=NOW + timedelta(minutes=2))

    assert before.key_name != after.key_name
    assert after.key_name == new.name
    verifier = local_verifier(store)
    assert verifier.verify(before.text, NOW + timedelta(minutes=3)).colour is (
        Colour.GREEN
    )
    assert verifier.verify(after.text, NOW + timedelta(minutes=3)).colour is (
        Colour.GREEN
    )


def test_a_configured_region_issues_everyone_s_codes(engine, residents, store):
    service = CodeService(store, region="610000")

    xian = _issue(engine, service, residents["green"])
    visitor = _issue(engine, service, residents["visitor"])

    assert (xian.region, xian.region_name) == ("610000", "陕西省")
    assert (visitor.region, visitor.colour) == ("610000", Colour.GREY)
    assert visitor.masked_name == "A*** M*****"


def test_without_a_region_on_record_or_configured_no_code_is_issued(
    engine, residents, store
):
    service = CodeService(store)

    with pytest.raises(NoIssuingRegion) as raised:
        _issue(engine, service, residents["visitor"])

    assert "Müller" not in str(raised.value)
    assert store.records() == []


def test_the_issuing_region_is_the_prefecture_or_the_province_above_it():
    assert issuing_region_of("610113", None) == "610100"
    assert issuing_region_of("610100", None) == "610100"
    # Beijing's districts sit under a grouping entry, so Beijing issues.
    assert issuing_region_of("110101", None) == "110000"
    assert issuing_region_of("110101", "610100") == "610100"


def test_a_long_masked_name_is_cut_to_what_a_code_holds(engine, store):
    name = " ".join(["Ωα"] * 21)
    with Session(engine) as session, session.begin():
        resident = register_resident(
            session,
            parse_document("passport", "X1234567", "GRC", today=NOW.date()),
            name,
            NOW,
            region_code="610113",
        )
        issued = CodeService(store).screen_code(session, resident.id, NOW)

    assert len(issued.masked_name.encode("utf-8")) <= MAX_NAME_BYTES
    assert issued.masked_name.startswith("Ω* Ω* Ω*")
    assert "α" not in issued.masked_name


def test_a_paper_code_has_no_colour_and_the_resident_id_as_its_index(
    engine, residents, store
):
    service = CodeService(store)

    issued = _issue(engine, service, residents["yellow"], paper=True)

    assert issued.purpose is Purpose.PAPER
    assert issued.colour is None
    assert issued.status_index == residents["yellow"]
    assert issued.valid_until == NOW + timedelta(days=14)


def test_paper_codes_take_their_colour_from_the_day_s_status_list(
    engine, residents, store
):
    service = CodeService(store)
    green = _issue(engine, service, residents["green"], paper=True)
    yellow = _issue(engine, service, residents["yellow"], paper=True)
    with Session(engine) as session, session.begin():
        document = service.status_list(session, "610100", NOW)
    verifier = local_verifier(store)
    later = NOW + timedelta(hours=2)

    held = load_status_list(document, verifier, later)
    checks = {
        label: check_paper_code(code.text, verifier, {"610100": held}, later)
        for label, code in (("green", green), ("yellow", yellow))
    }

    assert checks["green"].colour is Colour.GREEN
    assert checks["yellow"].colour is Colour.YELLOW
    assert checks["yellow"].list_age == timedelta(hours=2)
    # Beijing's grey resident is on Beijing's list, not on Xi'an's.
    assert held.colour_of(residents["beijing"]) is Colour.GREEN
    assert held.count(Colour.YELLOW) == 1
    assert held.count(Colour.GREY) == 0
    assert held.index_space == max(residents.values()) + 1


def test_the_status_list_never_carries_a_colour_that_time_has_changed(
    engine, residents, store
):
    # The fever declared at 09:00 yellows the resident for 24 hours only.
    service = CodeService(store)
    next_day = NOW + timedelta(hours=22)

    with Session(engine) as session, session.begin():
        document = service.status_list(session, "610100", next_day)

    held = load_status_list(document, local_verifier(store), next_day)
    assert held.colour_of(residents["yellow"]) is Colour.GREEN
    assert held.count(Colour.YELLOW) == 0


def test_another_region_s_list_lists_its_own_residents(engine, residents, store):
    service = CodeService(store)

    with Session(engine) as session, session.begin():
        document = service.status_list(session, "110000", NOW)

    held = load_status_list(document, local_verifier(store), NOW)
    assert held.region == "110000"
    assert held.colour_of(residents["beijing"]) is Colour.GREY
    assert held.colour_of(residents["yellow"]) is Colour.GREEN


def test_a_service_configured_for_one_region_signs_no_list_for_another(
    engine, residents, store
):
    service = CodeService(store, region="610100")

    with (
        pytest.raises(RegionNotServed),
        Session(engine) as session,
        session.begin(),
    ):
        service.status_list(session, "110000", NOW)


def test_the_key_directory_comes_from_the_environment_else_keys(monkeypatch):
    monkeypatch.setenv("HEALTHCODE_KEY_DIR", "/srv/healthcode/keys")
    from_env = key_directory()
    monkeypatch.delenv("HEALTHCODE_KEY_DIR")

    default = key_directory()
    given = key_directory("elsewhere")

    assert from_env == Path("/srv/healthcode/keys")
    assert default == Path("keys")
    assert given == Path("elsewhere")


def test_a_code_signed_from_ingredients_reads_back_as_it_was_described(
    store: KeyStore,
) -> None:
    service = CodeService(store, region="610100")
    at = datetime(2026, 3, 2, 9, 15, 30, 400_000, tzinfo=UTC)

    issued = service.screen_code_with(42, "\u0041\u030a*", "610100", Colour.YELLOW, at)
    read_back = service._issued(issued.text, service._issuer("610100", at))

    assert issued == read_back
    assert issued.masked_name == "\u00c5*"
    assert issued.issued_at == datetime(2026, 3, 2, 9, 15, 30, tzinfo=UTC)
