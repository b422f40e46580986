"""Signed requests and answers between instances: every check, one at a time."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from healthcode.accounts.stores import MemoryStore
from healthcode.codes.keys import KeyRecord, KeyRole, SigningKey
from healthcode.regions.errors import (
    InvalidPeerAnswer,
    PeerUnauthenticated,
    ReplayedRequest,
    StaleRequest,
    UnknownPeer,
)
from healthcode.regions.signing import (
    DIGEST_HEADER,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIME_HEADER,
    check_answer,
    check_request,
    content_digest,
    sign_answer,
    sign_request,
)

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
PATH = "/v1/peers/status"
BODY = b'{"document":{"kind":"cn-id","number":"x"}}'
XIAN = SigningKey.from_seed(b"x" * 32, "610100", NOW - timedelta(days=1), KeyRole.PEER)
GUANGZHOU = SigningKey.from_seed(
    b"g" * 32, "440100", NOW - timedelta(days=1), KeyRole.PEER
)


def _keys(*records: KeyRecord):  # type: ignore[no-untyped-def]
    def lookup(region: str, key_id: bytes) -> KeyRecord:
        for record in records:
            if record.region == region and record.key_id == key_id:
                return record
        raise UnknownPeer(f"Region {region} is not a peer of this instance.")

    return lookup


def _check(headers: dict[str, str], store: MemoryStore | None = None, **kw):  # type: ignore[no-untyped-def]
    arguments = {
        "method": "POST",
        "path": PATH,
        "body": BODY,
        "here": "440100",
        "keys": _keys(XIAN.record),
        "nonces": store if store is not None else MemoryStore(),
        "now": NOW,
    }
    arguments.update(kw)
    return check_request(
        headers,
        arguments.pop("method"),
        arguments.pop("path"),
        arguments.pop("body"),
        **arguments,
    )


def test_a_signed_request_is_accepted_with_its_sender() -> None:
    headers = sign_request(XIAN, "440100", "POST", PATH, BODY, NOW)

    request = _check(headers)

    assert request.region == "610100"
    assert request.key == XIAN.record
    assert request.nonce == headers[NONCE_HEADER]
    assert headers[DIGEST_HEADER] == content_digest(BODY)
    assert (
        content_digest(b"") == "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"
    )


def test_the_same_nonce_twice_is_a_replay() -> None:
    store = MemoryStore()
    headers = sign_request(XIAN, "440100", "POST", PATH, BODY, NOW)
    _check(headers, store)

    with pytest.raises(ReplayedRequest, match="seen before"):
        _check(headers, store)


def test_a_forged_request_does_not_spend_the_nonce() -> None:
    store = MemoryStore()
    headers = sign_request(XIAN, "440100", "POST", PATH, BODY, NOW)
    forged = {**headers, SIGNATURE_HEADER: "A" + headers[SIGNATURE_HEADER][1:]}

    with pytest.raises(PeerUnauthenticated, match="does not verify"):
        _check(forged, store)
    assert _check(headers, store).region == "610100"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "GET"}, "does not verify"),
        ({"path": "/v1/peers/other"}, "does not verify"),
        ({"body": BODY + b" "}, "Content-Digest"),
        ({"here": "320100"}, "addressed to region 440100"),
    ],
)
def test_what_the_signature_covers_cannot_change(
    change: dict[str, object], message: str
) -> None:
    headers = sign_request(XIAN, "440100", "POST", PATH, BODY, NOW)

    with pytest.raises(PeerUnauthenticated, match=message):
        _check(headers, **change)


@pytest.mark.parametrize("offset", [timedelta(seconds=-61), timedelta(seconds=61)])
def test_a_request_outside_the_skew_is_stale(offset: timedelta) -> None:
    headers = sign_request(XIAN, "440100", "POST", PATH, BODY, NOW + offset)

    with pytest.raises(StaleRequest, match="more than 60 seconds"):
        _check(headers)


def test_a_request_within_the_skew_is_accepted() -> None:
    headers = sign_request(
        XIAN, "440100", "POST", PATH, BODY, NOW - timedelta(seconds=59)
    )

    assert _check(headers).region == "610100"


@pytest.mark.parametrize(
    "header",
    [SIGNATURE_HEADER, NONCE_HEADER, TIME_HEADER, DIGEST_HEADER, "Healthcode-Peer-Key"],
)
def test_a_missing_header_is_named(header: str) -> None:
    headers = sign_request(XIAN, "440100", "POST", PATH, BODY, NOW)
    del headers[header]

    with pytest.raises(PeerUnauthenticated, match=header):
        _check(headers)


def test_a_short_nonce_is_refused() -> None:
    headers = sign_request(XIAN, "440100", "POST", PATH, BODY, NOW, nonce="AAAA")

    with pytest.raises(PeerUnauthenticated, match="16 bytes"):
        _check(headers)


def test_an_unknown_region_is_no_peer() -> None:
    headers = sign_request(GUANGZHOU, "440100", "POST", PATH, BODY, NOW)

    with pytest.raises(UnknownPeer, match="440100"):
        _check(headers)


def test_a_revoked_or_retired_peer_key_is_refused() -> None:
    headers = sign_request(XIAN, "440100", "POST", PATH, BODY, NOW)
    revoked = replace(XIAN.record, revoked_at=NOW - timedelta(minutes=1))
    retired = replace(
        XIAN.record,
        sign_until=NOW - timedelta(hours=2),
        accept_until=NOW - timedelta(hours=1),
    )

    with pytest.raises(PeerUnauthenticated, match="which is revoked"):
        _check(headers, keys=_keys(revoked))
    with pytest.raises(PeerUnauthenticated, match="which is retired"):
        _check(headers, keys=_keys(retired))


def test_an_answer_is_bound_to_its_request() -> None:
    headers = sign_answer(GUANGZHOU, "610100", 200, "nonce-1", BODY, NOW)
    arguments = {
        "here": "610100",
        "peer_key": lambda key_id: (
            GUANGZHOU.record if key_id == GUANGZHOU.record.key_id else None
        ),
        "peer_region": "440100",
        "now": NOW,
    }

    check_answer(headers, 200, "nonce-1", BODY, **arguments)  # type: ignore[arg-type]
    with pytest.raises(InvalidPeerAnswer, match="does not verify"):
        check_answer(headers, 200, "nonce-2", BODY, **arguments)  # type: ignore[arg-type]
    with pytest.raises(InvalidPeerAnswer, match="Content-Digest"):
        check_answer(headers, 200, "nonce-1", b"{}", **arguments)  # type: ignore[arg-type]
    with pytest.raises(InvalidPeerAnswer, match="not signed"):
        check_answer({}, 200, "nonce-1", BODY, **arguments)  # type: ignore[arg-type]


def test_an_answer_signed_by_another_key_is_refused() -> None:
    headers = sign_answer(XIAN, "610100", 200, "nonce-1", BODY, NOW)

    with pytest.raises(InvalidPeerAnswer, match="does not name as a peer key"):
        check_answer(
            headers,
            200,
            "nonce-1",
            BODY,
            here="610100",
            peer_key=lambda key_id: None,
            peer_region="440100",
            now=NOW,
        )
