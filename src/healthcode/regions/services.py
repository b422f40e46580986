"""What this instance publishes to, and accepts from, the regions it peers with.

:func:`published_trust_list` signs the one trust list this instance hands
out, at ``/v1/trust-list`` and inside the checkpoint material: its own code
keys, its own peer key, and the code keys of each peer whose list is valid,
so that a checkpoint holding this instance's anchor accepts every trusted
region's codes offline. A peer's keys are republished with the state its
own list gave them (a revoked key stays revoked), and the republished list
ends no later than the peer's own, so that a checkpoint never trusts a
peer's keys for longer than the peer vouched for them.

:func:`instance_verifier` is the same trust as a verifier, for the command
line and the online verify endpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import structlog

from healthcode.codes.errors import KeyConfigurationError, UnknownKeyCode
from healthcode.codes.keys import KeyRecord, KeyRole, KeyStore, SigningKey, key_name
from healthcode.codes.trust import DEFAULT_TRUST_LIST_TTL, Verifier, sign_trust_list
from healthcode.errors import HealthcodeError
from healthcode.regions.calls import fetch_trust_list
from healthcode.regions.errors import (
    PeerConfigurationError,
    PeerUnauthenticated,
    UnknownPeer,
)
from healthcode.regions.peers import Peer, PeerStore, region_name, within
from healthcode.regions.signing import KeyLookup

__all__ = [
    "NATIONAL_REGION",
    "RegionVerifier",
    "ensure_key",
    "instance_verifier",
    "own_peer_key",
    "peer_key_lookup",
    "peer_store",
    "published_trust_list",
    "refresh_peers",
    "trust_list_signer",
]

log = structlog.get_logger(__name__)

#: The region whose trust-list key signs, when no region is configured.
NATIONAL_REGION = "100000"


def peer_store(key_dir: Path | str) -> PeerStore:
    """The peers kept beside the key store in ``key_dir``."""
    return PeerStore(Path(key_dir) / "peers")


def ensure_key(store: KeyStore, region: str, role: KeyRole, at: datetime) -> SigningKey:
    """The key of ``role`` that signs for ``region`` at ``at``, made on first use.

    Only a store that has never held a key of that role for the region gets
    one here, with a log line naming it; one whose keys were all retired or
    revoked gets none without an operator, and signing then fails.
    """
    held = any(r.region == region and r.role is role for r in store.records())
    if not held:
        record = store.generate(region, at, role)
        log.warning(
            "key_generated_on_first_use",
            region=region,
            role=role.value,
            key=record.name,
            directory=str(store.directory),
        )
    return store.signing_key(region, at, role)


def trust_list_signer(store: KeyStore, at: datetime, region: str | None) -> SigningKey:
    """The trust-list key that signs this instance's trust list at ``at``."""
    for record in store.records():
        if record.role is KeyRole.TRUST_LIST and record.may_sign(at):
            return store.signing_key(record.region, at, KeyRole.TRUST_LIST)
    return ensure_key(store, region or NATIONAL_REGION, KeyRole.TRUST_LIST, at)


def _own_keys(store: KeyStore) -> list[KeyRecord]:
    return [r for r in store.records() if r.role in (KeyRole.CODE, KeyRole.PEER)]


def _trusted_peers(peers: PeerStore, at: datetime) -> list[Peer]:
    return [peer for peer in peers.peers(skip_unreadable=True) if peer.valid_at(at)]


def published_trust_list(
    store: KeyStore, peers: PeerStore, at: datetime, region: str | None
) -> bytes:
    """Sign this instance's trust list: its own keys and its peers' code keys."""
    signer = trust_list_signer(store, at, region)
    records = {(r.region, r.key_id): r for r in _own_keys(store)}
    valid_until = at.replace(microsecond=0) + DEFAULT_TRUST_LIST_TTL
    for peer in _trusted_peers(peers, at):
        for record in peer.code_keys:
            # The store's own record of a key wins: a peer cannot restate
            # the keys of this instance.
            records.setdefault((record.region, record.key_id), record)
        valid_until = min(valid_until, peer.listed.valid_until)
    return sign_trust_list(records.values(), signer, at, valid_until)


class RegionVerifier(Verifier):
    """A verifier that says which region a refused code came from, and why."""

    def __init__(self, keys: list[KeyRecord], peers: list[Peer]) -> None:
        super().__init__(keys)
        self._peers = peers

    def resolve(self, region: str, key_id: bytes) -> KeyRecord:
        try:
            return super().resolve(region, key_id)
        except UnknownKeyCode:
            if region in self.regions:
                raise
        named = f"region {region}"
        if name := region_name(region):
            named += f" ({name})"
        named += f" with key {key_name(region, key_id)}"
        for peer in self._peers:
            if within(region, peer.region):
                raise UnknownKeyCode(
                    f"The code was issued by {named}; that region's trust list"
                    " held here has expired: refresh it with `healthcode peers"
                    " refresh`."
                ) from None
        raise UnknownKeyCode(
            f"The code was issued by {named}; that region is not trusted"
            " here: no trust list held here lists its keys."
        ) from None


def instance_verifier(store: KeyStore, peers: PeerStore, at: datetime) -> Verifier:
    """Verify codes of this instance's regions and of every trusted peer."""
    records = {
        (r.region, r.key_id): r for r in store.records() if r.role is KeyRole.CODE
    }
    every = peers.peers(skip_unreadable=True)
    for peer in every:
        if peer.valid_at(at):
            for record in peer.code_keys:
                records.setdefault((record.region, record.key_id), record)
    return RegionVerifier(list(records.values()), every)


def own_peer_key(store: KeyStore, region: str | None, at: datetime) -> SigningKey:
    """The key this instance signs its peer requests and answers with."""
    if region is None:
        raise PeerConfigurationError(
            "This instance has no region configured (HEALTHCODE_REGION), so it"
            " can neither call peers nor answer them."
        )
    try:
        return store.signing_key(region, at, KeyRole.PEER)
    except KeyConfigurationError as exc:
        raise PeerConfigurationError(
            f"This instance holds no peer key of region {region} that signs now;"
            f" `healthcode peers card` makes one. ({exc})"
        ) from None


def peer_key_lookup(peers: PeerStore, at: datetime) -> KeyLookup:
    """Find the key that signed a peer request among the peers' trust lists."""

    def lookup(region: str, key_id: bytes) -> KeyRecord:
        peer = peers.peer_of(region)
        if peer is None:
            raise UnknownPeer(f"Region {region} is not a peer of this instance.")
        if not peer.valid_at(at):
            raise UnknownPeer(
                f"The trust list of region {peer.region} held here has expired, so"
                " its requests are refused until it is refreshed."
            )
        record = peer.peer_key(key_id)
        if record is None or record.region != region:
            raise PeerUnauthenticated(
                f"Key {key_name(region, key_id)} is not a peer key in the trust"
                f" list of region {peer.region} held here."
            )
        return record

    return lookup


def refresh_peers(
    peers: PeerStore,
    at: datetime,
    fetch: Callable[[Peer], bytes] = fetch_trust_list,
) -> dict[str, str]:
    """Fetch and check every peer's published trust list; say how each went.

    A peer whose list cannot be fetched or is refused keeps the one held,
    and its outcome is the error's code; the others are ``refreshed``.
    """
    outcomes = {}
    for peer in peers.peers(skip_unreadable=True):
        try:
            peers.refresh(peer.region, fetch(peer), at)
        except HealthcodeError as exc:
            log.warning("peer_refresh_failed", region=peer.region, code=exc.code)
            outcomes[peer.region] = exc.code
        else:
            outcomes[peer.region] = "refreshed"
    return outcomes
