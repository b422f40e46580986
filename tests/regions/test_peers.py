"""Peers: adding a card, refreshing a list, and what a checkpoint then trusts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from healthcode.codes.errors import (
    InvalidTrustList,
    RetiredKeyCode,
    RevokedKeyCode,
    UnknownKeyCode,
)
from healthcode.codes.format import Colour, Issuer
from healthcode.codes.keys import KeyRole, KeyStore, SigningKey
from healthcode.codes.trust import load_trust_list, sign_trust_list
from healthcode.regions.errors import (
    PeerConfigurationError,
    PeerNotConfigured,
    PeerUnreachable,
)
from healthcode.regions.peers import Peer, PeerStore, make_card
from healthcode.regions.services import (
    ensure_key,
    instance_verifier,
    peer_store,
    published_trust_list,
    refresh_peers,
    trust_list_signer,
)

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
XIAN, GUANGZHOU = "610100", "440100"


@dataclass
class Instance:
    region: str
    keys: KeyStore
    peers: PeerStore

    def card(self, at: datetime = NOW) -> bytes:
        document = published_trust_list(self.keys, self.peers, at, self.region)
        anchors = [r for r in self.keys.records() if r.role is KeyRole.TRUST_LIST]
        return make_card(self.region, "http://127.0.0.1:7299/", anchors, document)

    def code(self, at: datetime = NOW) -> str:
        signer = self.keys.signing_key(self.region, at)
        issuer = Issuer(signer, self.keys.subject_secret(self.region))
        return issuer.screen_code(1, "林**", Colour.GREEN, at)


def _instance(folder: Path, region: str) -> Instance:
    keys = KeyStore(folder / "keys")
    for role in (KeyRole.CODE, KeyRole.TRUST_LIST, KeyRole.PEER):
        ensure_key(keys, region, role, NOW - timedelta(days=1))
    return Instance(region, keys, peer_store(folder / "keys"))


@pytest.fixture
def xian(tmp_path: Path) -> Instance:
    return _instance(tmp_path / "xian", XIAN)


@pytest.fixture
def guangzhou(tmp_path: Path) -> Instance:
    return _instance(tmp_path / "guangzhou", GUANGZHOU)


def test_a_peers_code_verifies_here_once_its_card_is_added(
    xian: Instance, guangzhou: Instance
) -> None:
    code = guangzhou.code()
    with pytest.raises(UnknownKeyCode, match=r"region 440100 \(广东省广州市\)"):
        instance_verifier(xian.keys, xian.peers, NOW).verify(code, NOW)

    peer = xian.peers.add(guangzhou.card(), NOW, own_region=XIAN)
    verified = instance_verifier(xian.keys, xian.peers, NOW).verify(code, NOW)

    assert peer.url == "http://127.0.0.1:7299"
    assert [r.region for r in peer.code_keys] == [GUANGZHOU]
    assert [r.region for r in peer.peer_keys] == [GUANGZHOU]
    assert verified.content.region == GUANGZHOU
    assert verified.colour is Colour.GREEN


def test_the_published_list_carries_the_peers_code_keys_not_its_peer_keys(
    xian: Instance, guangzhou: Instance
) -> None:
    xian.peers.add(guangzhou.card(), NOW, own_region=XIAN)

    document = published_trust_list(xian.keys, xian.peers, NOW, XIAN)

    anchors = [r for r in xian.keys.records() if r.role is KeyRole.TRUST_LIST]
    listed = load_trust_list(document, anchors, NOW)
    assert {(r.region, r.role) for r in listed.keys} == {
        (XIAN, KeyRole.CODE),
        (XIAN, KeyRole.PEER),
        (GUANGZHOU, KeyRole.CODE),
    }
    peer_until = xian.peers.require(GUANGZHOU).listed.valid_until
    assert listed.valid_until <= peer_until


def test_a_peer_cannot_vouch_for_keys_of_another_region(
    xian: Instance, guangzhou: Instance, tmp_path: Path
) -> None:
    # Guangzhou's list names a key it made for Xi'an's region: a peer that
    # could do so could forge Xi'an's own codes at Xi'an's doors.
    rogue = KeyStore(tmp_path / "rogue")
    rogue.generate(XIAN, NOW - timedelta(days=1))
    records = [r for r in guangzhou.keys.records() if r.role is not KeyRole.TRUST_LIST]
    signer = trust_list_signer(guangzhou.keys, NOW, GUANGZHOU)
    document = sign_trust_list(records + rogue.records(), signer, NOW)
    anchors = [r for r in guangzhou.keys.records() if r.role is KeyRole.TRUST_LIST]
    card = make_card(GUANGZHOU, "http://127.0.0.1:7299", anchors, document)
    forged = Issuer(
        rogue.signing_key(XIAN, NOW), rogue.subject_secret(XIAN)
    ).screen_code(1, "张*", Colour.GREEN, NOW)

    peer = xian.peers.add(card, NOW, own_region=XIAN)

    assert {r.region for r in peer.code_keys} == {GUANGZHOU}
    with pytest.raises(UnknownKeyCode):
        instance_verifier(xian.keys, xian.peers, NOW).verify(forged, NOW)


@pytest.mark.parametrize("own", [GUANGZHOU, "440000", "440106"])
def test_a_card_of_a_region_overlapping_this_one_is_refused(
    guangzhou: Instance, tmp_path: Path, own: str
) -> None:
    store = PeerStore(tmp_path / "peers")

    with pytest.raises(PeerConfigurationError, match="overlaps"):
        store.add(guangzhou.card(), NOW, own_region=own)


def test_peers_need_this_instances_region(guangzhou: Instance, tmp_path: Path) -> None:
    with pytest.raises(PeerConfigurationError, match="HEALTHCODE_REGION"):
        PeerStore(tmp_path / "peers").add(guangzhou.card(), NOW, own_region=None)


def test_an_altered_card_is_refused(xian: Instance, guangzhou: Instance) -> None:
    card = json.loads(guangzhou.card())
    outer = json.loads(card["trustList"])
    outer["signature"] = "A" + outer["signature"][1:]
    card["trustList"] = json.dumps(outer)

    with pytest.raises(InvalidTrustList, match="does not verify"):
        xian.peers.add(json.dumps(card), NOW, own_region=XIAN)
    assert xian.peers.peers() == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "other/1"}, "malformed"),
        ({"region": "999999"}, "not a GB/T 2260"),
        ({"url": "ftp://127.0.0.1/"}, "not an http"),
        ({"url": "http://user:pw@127.0.0.1/"}, "not an http"),
        ({"url": "http://169.254.169.254/latest"}, "link-local"),
        ({"url": "http://[fe80::1]:8080"}, "link-local"),
        ({"url": "http://[::ffff:169.254.169.254]/"}, "link-local"),
        ({"url": "http://metadata.google.internal/"}, "metadata"),
        ({"url": "http://0.0.0.0:8080"}, "no single host"),
        ({"url": "http://224.0.0.1/"}, "no single host"),
        ({"anchors": []}, "trust-list keys"),
    ],
)
def test_a_malformed_card_is_refused_with_the_reason(
    xian: Instance, guangzhou: Instance, change: dict[str, object], message: str
) -> None:
    card = {**json.loads(guangzhou.card()), **change}

    with pytest.raises(PeerConfigurationError, match=message):
        xian.peers.add(json.dumps(card), NOW, own_region=XIAN)


def test_a_peer_is_added_once_unless_replaced(
    xian: Instance, guangzhou: Instance
) -> None:
    xian.peers.add(guangzhou.card(), NOW, own_region=XIAN)

    with pytest.raises(PeerConfigurationError, match="already a peer"):
        xian.peers.add(guangzhou.card(), NOW, own_region=XIAN)
    again = xian.peers.add(
        guangzhou.card(), NOW, own_region=XIAN, replace=True, url="https://gz.example"
    )
    assert again.url == "https://gz.example"
    assert again.added_at == NOW


def test_a_refresh_takes_a_newer_list_and_refuses_an_older_one(
    xian: Instance, guangzhou: Instance
) -> None:
    xian.peers.add(guangzhou.card(NOW), NOW, own_region=XIAN)
    later = NOW + timedelta(hours=1)
    signer = trust_list_signer(guangzhou.keys, later, GUANGZHOU)
    codes = [r for r in guangzhou.keys.records() if r.role is KeyRole.CODE]
    newer = sign_trust_list(codes, signer, later)
    older = sign_trust_list(codes, signer, NOW - timedelta(hours=1))

    fresh = xian.peers.refresh(GUANGZHOU, newer, later)

    assert fresh.listed.issued_at == later
    with pytest.raises(InvalidTrustList, match="before the one held"):
        xian.peers.refresh(GUANGZHOU, older, later)
    assert xian.peers.require(GUANGZHOU).listed.issued_at == later


def test_a_revoked_peer_key_refuses_its_codes_after_a_refresh(
    xian: Instance, guangzhou: Instance
) -> None:
    code = guangzhou.code()
    xian.peers.add(guangzhou.card(), NOW, own_region=XIAN)
    key = guangzhou.keys.signing_key(GUANGZHOU, NOW).record
    later = NOW + timedelta(minutes=10)
    guangzhou.keys.revoke(GUANGZHOU, key.key_id, later)

    xian.peers.refresh(
        GUANGZHOU,
        published_trust_list(guangzhou.keys, guangzhou.peers, later, None),
        later,
    )

    with pytest.raises(RevokedKeyCode, match=key.name):
        instance_verifier(xian.keys, xian.peers, later).verify(code, later)


def test_a_peer_whose_list_expired_is_trusted_no_longer(
    xian: Instance, guangzhou: Instance
) -> None:
    code = guangzhou.code(NOW + timedelta(days=8))
    xian.peers.add(guangzhou.card(), NOW, own_region=XIAN)
    after = NOW + timedelta(days=8)

    document = published_trust_list(xian.keys, xian.peers, after, XIAN)

    anchors = [r for r in xian.keys.records() if r.role is KeyRole.TRUST_LIST]
    assert {r.region for r in load_trust_list(document, anchors, after).keys} == {XIAN}
    with pytest.raises(UnknownKeyCode, match="has expired"):
        instance_verifier(xian.keys, xian.peers, after).verify(code, after)


def test_a_removed_peer_is_no_longer_trusted(
    xian: Instance, guangzhou: Instance
) -> None:
    xian.peers.add(guangzhou.card(), NOW, own_region=XIAN)

    xian.peers.remove(GUANGZHOU)

    with pytest.raises(UnknownKeyCode, match="not trusted here"):
        instance_verifier(xian.keys, xian.peers, NOW).verify(guangzhou.code(), NOW)
    with pytest.raises(PeerNotConfigured, match="peers add"):
        xian.peers.remove(GUANGZHOU)


def test_a_tampered_peer_file_is_a_configuration_error(
    xian: Instance, guangzhou: Instance
) -> None:
    xian.peers.add(guangzhou.card(), NOW, own_region=XIAN)
    path = xian.peers.directory / f"{GUANGZHOU}.json"
    data = json.loads(path.read_text("utf-8"))
    data["anchors"] = [
        SigningKey.from_seed(
            b"t" * 32, GUANGZHOU, NOW, KeyRole.TRUST_LIST
        ).record.to_json()
    ]
    path.write_text(json.dumps(data), "utf-8")

    with pytest.raises(PeerConfigurationError, match="anchors vouch for"):
        xian.peers.peers()
    # This instance still publishes its own keys, and trusts no more than them.
    document = published_trust_list(xian.keys, xian.peers, NOW, XIAN)
    anchors = [r for r in xian.keys.records() if r.role is KeyRole.TRUST_LIST]
    assert {r.region for r in load_trust_list(document, anchors, NOW).keys} == {XIAN}
    with pytest.raises(UnknownKeyCode, match="not trusted here"):
        instance_verifier(xian.keys, xian.peers, NOW).verify(guangzhou.code(), NOW)


def test_refreshing_every_peer_says_how_each_went(
    xian: Instance, guangzhou: Instance, tmp_path: Path
) -> None:
    chengdu = _instance(tmp_path / "chengdu", "510100")
    xian.peers.add(guangzhou.card(), NOW, own_region=XIAN)
    xian.peers.add(chengdu.card(), NOW, own_region=XIAN)
    later = NOW + timedelta(hours=1)

    def fetch(peer: Peer) -> bytes:
        if peer.region == "510100":
            raise PeerUnreachable("Region 510100 cannot be reached.")
        return published_trust_list(guangzhou.keys, guangzhou.peers, later, None)

    outcomes = refresh_peers(xian.peers, later, fetch)

    assert outcomes == {GUANGZHOU: "refreshed", "510100": "peer_unreachable"}
    assert xian.peers.require(GUANGZHOU).listed.issued_at == later
    assert xian.peers.require("510100").listed.issued_at == NOW


def test_a_retired_peer_key_is_accepted_through_its_overlap_only(
    xian: Instance, guangzhou: Instance
) -> None:
    code = guangzhou.code()
    xian.peers.add(guangzhou.card(), NOW, own_region=XIAN)
    key = guangzhou.keys.signing_key(GUANGZHOU, NOW).record
    later = NOW + timedelta(minutes=1)
    guangzhou.keys.retire(GUANGZHOU, key.key_id, later, overlap=timedelta(minutes=2))
    listed = published_trust_list(guangzhou.keys, guangzhou.peers, later, None)
    xian.peers.refresh(GUANGZHOU, listed, later)

    during = NOW + timedelta(minutes=2)
    after = NOW + timedelta(minutes=4)
    accepted = instance_verifier(xian.keys, xian.peers, during).verify(code, during)

    assert accepted.content.region == GUANGZHOU
    with pytest.raises(RetiredKeyCode, match="no longer accepted"):
        instance_verifier(xian.keys, xian.peers, after).verify(code, after)


def test_a_peer_answering_deeply_nested_json_costs_only_its_own_refresh(
    xian: Instance, guangzhou: Instance, tmp_path: Path
) -> None:
    chengdu = _instance(tmp_path / "chengdu", "510100")
    xian.peers.add(chengdu.card(), NOW, own_region=XIAN)
    xian.peers.add(guangzhou.card(), NOW, own_region=XIAN)
    later = NOW + timedelta(hours=1)

    def fetch(peer: Peer) -> bytes:
        if peer.region == "510100":
            # Well under the bound on an answer's size.
            return b"[" * 200_000 + b"]" * 200_000
        return published_trust_list(guangzhou.keys, guangzhou.peers, later, None)

    outcomes = refresh_peers(xian.peers, later, fetch)

    assert outcomes == {GUANGZHOU: "refreshed", "510100": "invalid_trust_list"}
    assert xian.peers.require("510100").listed.issued_at == NOW


def test_a_deeply_nested_card_is_refused_as_malformed(xian: Instance) -> None:
    with pytest.raises(PeerConfigurationError, match="malformed"):
        xian.peers.add(b'{"a":' * 100_000 + b"1" + b"}" * 100_000, NOW, own_region=XIAN)
