from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from healthcode.codes.errors import (
    InvalidCode,
    InvalidTrustList,
    KeyConfigurationError,
    RetiredKeyCode,
    RevokedKeyCode,
    UnknownKeyCode,
)
from healthcode.codes.format import Colour, Issuer
from healthcode.codes.keys import KeyRole, KeyStore
from healthcode.codes.trust import (
    Verifier,
    load_trust_list,
    sign_trust_list,
)

from .support import NOW, code_key, seed, trust_key


def test_trust_list_round_trip() -> None:
    anchor = trust_key()
    keys = [code_key("310000").record, code_key("420100").record]

    document = sign_trust_list(keys, anchor, NOW)
    trust_list = load_trust_list(document, [anchor.record], NOW)

    assert trust_list.keys == tuple(keys)
    assert trust_list.issued_at == NOW
    assert trust_list.valid_until == NOW + timedelta(days=7)
    assert trust_list.signer == anchor.record
    assert json.loads(document)["format"] == "healthcode-trust-list/1"


def test_verifier_recognises_every_listed_region() -> None:
    anchor = trust_key()
    shanghai, wuhan = code_key("310000"), code_key("420100")
    document = sign_trust_list([shanghai.record, wuhan.record], anchor, NOW)
    verifier = Verifier.from_trust_list(document, [anchor.record], NOW)

    codes = [
        Issuer(key, seed(key.record.region)).screen_code(7, "张**", Colour.GREEN, NOW)
        for key in (shanghai, wuhan)
    ]

    assert [verifier.verify(text, NOW).content.region for text in codes] == [
        "310000",
        "420100",
    ]
    assert verifier.regions == {"310000", "420100"}


def test_region_left_out_of_the_list_is_unknown() -> None:
    anchor = trust_key()
    document = sign_trust_list([code_key("310000").record], anchor, NOW)
    verifier = Verifier.from_trust_list(document, [anchor.record], NOW)
    text = Issuer(code_key("420100"), seed("x")).screen_code(7, "张**", Colour.RED, NOW)

    with pytest.raises(UnknownKeyCode):
        verifier.verify(text, NOW)


def test_signature_by_a_key_that_is_not_an_anchor_is_refused() -> None:
    document = sign_trust_list([code_key().record], trust_key("100000"), NOW)

    with pytest.raises(InvalidTrustList, match="not a trust anchor"):
        load_trust_list(document, [trust_key("110000").record], NOW)


def test_code_key_posing_as_anchor_is_refused() -> None:
    impostor = code_key("100000")
    document = sign_trust_list([code_key().record], trust_key(), NOW)
    outer = json.loads(document)
    outer["signer"]["key_id"] = impostor.record.key_id.hex()

    with pytest.raises(InvalidTrustList, match="not a trust anchor"):
        load_trust_list(json.dumps(outer), [impostor.record], NOW)


def test_payload_changed_after_signing_is_refused() -> None:
    anchor = trust_key()
    outer = json.loads(sign_trust_list([code_key().record], anchor, NOW))
    payload = json.loads(base64.urlsafe_b64decode(outer["payload"] + "=="))
    payload["valid_until"] = "2099-01-01T00:00:00Z"
    outer["payload"] = (
        base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    )

    with pytest.raises(InvalidTrustList, match="signature"):
        load_trust_list(json.dumps(outer), [anchor.record], NOW)


@pytest.mark.parametrize(
    "document",
    [b"", b"[]", b"{}", b'{"format": "healthcode-trust-list/1"}', b"\xff\xfe"],
)
def test_malformed_documents_are_refused(document: bytes) -> None:
    with pytest.raises(InvalidTrustList):
        load_trust_list(document, [trust_key().record], NOW)


def test_expired_trust_list_is_refused() -> None:
    anchor = trust_key()
    document = sign_trust_list([code_key().record], anchor, NOW)

    with pytest.raises(InvalidTrustList, match="expired"):
        load_trust_list(document, [anchor.record], NOW + timedelta(days=7))


def test_trust_list_from_the_future_is_refused() -> None:
    anchor = trust_key()
    document = sign_trust_list([code_key().record], anchor, NOW + timedelta(hours=1))

    with pytest.raises(InvalidTrustList, match="later than"):
        load_trust_list(document, [anchor.record], NOW)


def test_revoked_anchor_is_refused() -> None:
    anchor = trust_key()
    document = sign_trust_list([code_key().record], anchor, NOW)
    revoked = replace(anchor.record, revoked_at=NOW)

    with pytest.raises(InvalidTrustList, match="revoked"):
        load_trust_list(document, [revoked], NOW)


def test_only_code_and_peer_keys_are_listed() -> None:
    with pytest.raises(KeyConfigurationError, match="code and peer keys only"):
        sign_trust_list([trust_key("110000").record], trust_key(), NOW)


def test_code_key_cannot_sign_a_trust_list() -> None:
    with pytest.raises(KeyConfigurationError, match="code key"):
        sign_trust_list([code_key().record], code_key("100000"), NOW)


def test_two_records_of_one_key_are_refused() -> None:
    record = code_key().record

    with pytest.raises(KeyConfigurationError, match=record.name):
        sign_trust_list([record, replace(record, revoked_at=NOW)], trust_key(), NOW)
    with pytest.raises(KeyConfigurationError, match=record.name):
        Verifier([record, replace(record, revoked_at=NOW)])


def test_verifier_holds_code_keys_only() -> None:
    with pytest.raises(KeyConfigurationError, match="code keys only"):
        Verifier([trust_key().record])


# Rotation, retirement and revocation, end to end through a key store


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    store = KeyStore(tmp_path / "keys")
    store.generate("310000", NOW)
    store.generate("100000", NOW, KeyRole.TRUST_LIST)
    return store


def _verifier(store: KeyStore, at) -> Verifier:
    anchor = store.signing_key("100000", at, KeyRole.TRUST_LIST)
    code_keys = [r for r in store.records() if r.role is KeyRole.CODE]
    document = sign_trust_list(code_keys, anchor, at)
    return Verifier.from_trust_list(document, [anchor.record], at)


def _issue(store: KeyStore, at, *, paper: bool = False) -> str:
    issuer = Issuer(store.signing_key("310000", at), store.subject_secret("310000"))
    if paper:
        return issuer.paper_code(7, "张**", 99, at)
    return issuer.screen_code(7, "张**", Colour.GREEN, at)


def test_previous_key_is_accepted_during_the_overlap(store: KeyStore) -> None:
    before = _issue(store, NOW, paper=True)
    rotated_at = NOW + timedelta(hours=1)
    store.rotate("310000", rotated_at)
    after = _issue(store, rotated_at)

    verifier = _verifier(store, rotated_at)

    assert verifier.verify(after, rotated_at).colour is Colour.GREEN
    assert (
        verifier.verify(before, rotated_at + timedelta(days=13)).content.status_index
        == 99
    )
    with pytest.raises(RetiredKeyCode):
        verifier.verify(before, rotated_at + timedelta(days=14, seconds=1))


def test_code_signed_by_the_old_key_after_handover_is_refused(
    store: KeyStore,
) -> None:
    old = store.signing_key("310000", NOW)
    store.rotate("310000", NOW)
    verifier = _verifier(store, NOW)
    # Someone kept a copy of the old private key and signs with it later.
    late = Issuer(replace(old, record=replace(old.record, sign_until=None)), seed("x"))
    text = late.screen_code(7, "张**", Colour.GREEN, NOW + timedelta(hours=1))

    with pytest.raises(RetiredKeyCode):
        verifier.verify(text, NOW + timedelta(hours=1))


def test_retired_key_is_left_out_of_later_lists(store: KeyStore) -> None:
    text = _issue(store, NOW)
    record = store.signing_key("310000", NOW).record
    store.retire("310000", record.key_id, NOW + timedelta(minutes=1))
    store.generate("310000", NOW + timedelta(minutes=1))

    verifier = _verifier(store, NOW + timedelta(minutes=2))

    assert record.key_id not in {r.key_id for r in verifier.keys}
    with pytest.raises(UnknownKeyCode):
        verifier.verify(text, NOW + timedelta(minutes=2))


def test_revoked_key_stays_listed_and_its_codes_are_refused(store: KeyStore) -> None:
    text = _issue(store, NOW, paper=True)
    record = store.signing_key("310000", NOW).record
    store.revoke("310000", record.key_id, NOW + timedelta(hours=1))

    verifier = _verifier(store, NOW + timedelta(hours=1))

    assert record.key_id in {r.key_id for r in verifier.keys}
    with pytest.raises(RevokedKeyCode, match=record.name) as caught:
        verifier.verify(text, NOW + timedelta(hours=1))
    assert caught.value.code == "revoked_key"
    assert isinstance(caught.value, InvalidCode)


def test_code_dated_before_its_key_existed_is_invalid(store: KeyStore) -> None:
    key = store.signing_key("310000", NOW)
    early = replace(key, record=replace(key.record, valid_from=NOW - timedelta(days=9)))
    text = Issuer(early, seed("x")).screen_code(
        7, "张**", Colour.GREEN, NOW - timedelta(days=1)
    )

    with pytest.raises(InvalidCode) as caught:
        _verifier(store, NOW).verify(text, NOW - timedelta(days=1))

    assert type(caught.value) is InvalidCode
