"""Peers: the other regions whose trust lists this instance has imported.

A peer is another instance of healthcode, serving one region (a GB/T 2260
code such as 440100 for Guangzhou). It is added from its *card*, a small
JSON file its operator hands over by a channel the two operators trust::

    {"format": "healthcode-peer-card/1", "region": "440100",
     "url": "https://healthcode.example.gz",
     "anchors": [<the peer's trust-list key records>],
     "trustList": "<the peer's signed trust list>"}

The anchors are pinned when the peer is added: every trust list of the
peer, at the add and at each refresh from its URL, must be signed by one of
them, be valid at the moment it is loaded and be no older than the one held,
or it is refused with the reason. A peer vouches only for its own region:
of the keys its list names, only those of divisions within its region are
taken (its list also names the keys of its own peers, which this instance
trusts, or not, by importing their lists itself), so no peer can slip in
keys for this instance's region or a third one.

Peers are kept as files beside the key store, ``<key dir>/peers/<region>.json``:
public material only (anchors, the signed list as received, times), which
every worker reads, so that a command line change reaches a running server
without a restart. Nothing here reads the clock: each call takes its instant.
"""

from __future__ import annotations

import ipaddress
import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import structlog

from healthcode.codes.errors import InvalidTrustList
from healthcode.codes.keys import KeyRecord, KeyRole, check_instant
from healthcode.codes.trust import TrustList, load_trust_list
from healthcode.errors import HealthcodeError
from healthcode.identity import divisions
from healthcode.regions.errors import PeerConfigurationError, PeerNotConfigured

__all__ = ["CARD_FORMAT", "PEER_FORMAT", "Peer", "PeerStore", "make_card"]

log = structlog.get_logger(__name__)

CARD_FORMAT = "healthcode-peer-card/1"
PEER_FORMAT = "healthcode-peer/1"


@dataclass(frozen=True)
class Peer:
    """A peer region with its pinned anchors and the trust list last accepted."""

    region: str
    url: str
    anchors: tuple[KeyRecord, ...]
    document: bytes
    listed: TrustList
    added_at: datetime
    refreshed_at: datetime

    @property
    def name(self) -> str:
        return region_name(self.region)

    def valid_at(self, at: datetime) -> bool:
        return check_instant(at) < self.listed.valid_until

    @property
    def code_keys(self) -> tuple[KeyRecord, ...]:
        """The code keys of the peer's own region that its list names."""
        return tuple(r for r in self.listed.code_keys if within(r.region, self.region))

    @property
    def peer_keys(self) -> tuple[KeyRecord, ...]:
        """The keys with which the peer signs its requests and answers."""
        return tuple(r for r in self.listed.peer_keys if within(r.region, self.region))

    def peer_key(self, key_id: bytes) -> KeyRecord | None:
        return next((r for r in self.peer_keys if r.key_id == key_id), None)

    def to_json(self) -> dict[str, object]:
        return {
            "format": PEER_FORMAT,
            "region": self.region,
            "url": self.url,
            "anchors": [record.to_json() for record in self.anchors],
            "trustList": self.document.decode("utf-8"),
            "addedAt": _iso(self.added_at),
            "refreshedAt": _iso(self.refreshed_at),
        }


def within(code: str, region: str) -> bool:
    """Tell whether the division ``code`` lies in ``region`` (or is it)."""
    try:
        return divisions.within(code, region)
    except HealthcodeError:
        return False


def region_name(region: str) -> str:
    """The division's full name, or nothing for a code the table does not hold."""
    try:
        return divisions.full_name(region)
    except HealthcodeError:
        return ""


def make_card(
    region: str, url: str, anchors: list[KeyRecord], document: bytes
) -> bytes:
    """Return the card of this instance, for the operators of other regions."""
    card = {
        "format": CARD_FORMAT,
        "region": region,
        "url": check_url(url),
        "anchors": [record.to_json() for record in anchors],
        "trustList": document.decode("utf-8"),
    }
    return (json.dumps(card, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def check_url(url: str) -> str:
    """Return the peer's base URL without a trailing slash, or raise."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or parts.username
        or parts.password
    ):
        raise PeerConfigurationError(
            f"The peer URL {url!r} is not an http:// or https:// address of a host"
            " (without user, query or fragment)."
        )
    _check_host(url, parts.hostname)
    return url.rstrip("/")


# Names of the metadata services of cloud machines, which answer on the
# machine itself; no peer instance is ever there.
_METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal"})


def _check_host(url: str, host: str) -> None:
    """Refuse a peer URL at an address no other region's instance can have.

    The server calls a peer's URL by itself every day, so a card naming a
    link-local address (where cloud metadata services answer) would make it
    fetch from there. Only literal addresses can be checked here; a name is
    resolved when it is called, which is why an operator reads the URL of a
    card before adding it (docs/regions.md).
    """
    if host.rstrip(".").lower() in _METADATA_HOSTS:
        raise PeerConfigurationError(
            f"The peer URL {url!r} names a cloud metadata service, not a peer."
        )
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_link_local:
        raise PeerConfigurationError(
            f"The peer URL {url!r} is at a link-local address, where no peer"
            " instance is and cloud metadata services answer."
        )
    if address.is_unspecified or address.is_multicast:
        raise PeerConfigurationError(
            f"The peer URL {url!r} is at an address of no single host."
        )


class PeerStore:
    """The peers of this instance, one file each in ``directory``.

    The store is meant for one operator at a time, like the key store;
    readers (every request that meets a peer's code or call) see each file
    either before or after a change, never half-written.
    """

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._read: dict[str, tuple[int, int, Peer]] = {}

    # Reading

    def peers(self, *, skip_unreadable: bool = False) -> list[Peer]:
        """Every peer, by region.

        A peer file that cannot be read or whose list its anchors do not
        vouch for raises, unless ``skip_unreadable``: then it is left out
        with a log line, so that one damaged file costs the trust in that
        peer and not the publication of this instance's own keys.
        """
        if not self.directory.is_dir():
            return []
        found = []
        for entry in sorted(os.scandir(self.directory), key=lambda e: e.name):
            if not (entry.name.endswith(".json") and entry.is_file()):
                continue
            try:
                found.append(self._load(Path(entry.path)))
            except PeerConfigurationError as exc:
                if not skip_unreadable:
                    raise
                log.error("peer_file_unusable", file=entry.name, reason=str(exc))
        return found

    def get(self, region: str) -> Peer | None:
        path = self._path(region)
        return self._load(path) if path.is_file() else None

    def require(self, region: str) -> Peer:
        peer = self.get(region)
        if peer is None:
            raise PeerNotConfigured(
                f"Region {region} is not a peer of this instance; an operator adds"
                " it with `healthcode peers add CARD`."
            )
        return peer

    def peer_of(self, code_region: str) -> Peer | None:
        """The peer whose region holds the division ``code_region``, if any."""
        return next((p for p in self.peers() if within(code_region, p.region)), None)

    # Changing

    def add(
        self,
        card: bytes | str,
        at: datetime,
        *,
        own_region: str | None,
        url: str | None = None,
        replace: bool = False,
    ) -> Peer:
        """Add the peer that ``card`` describes, pinning its anchors."""
        at = check_instant(at)
        own = _own_region(own_region)
        try:
            data = json.loads(card)
            if not isinstance(data, dict) or data.get("format") != CARD_FORMAT:
                raise ValueError(f"it does not declare the format {CARD_FORMAT}")
            region = data["region"]
            if not isinstance(region, str):
                raise ValueError("its region is not text")
            anchors = tuple(KeyRecord.from_json(item) for item in data["anchors"])
            document = str(data["trustList"]).encode("utf-8")
            address = check_url(url if url is not None else data["url"])
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise PeerConfigurationError(
                f"The peer card is malformed: {exc}."
            ) from None
        if not divisions.is_known(region):
            raise PeerConfigurationError(
                f"The peer card names region {region!r}, which is not a GB/T 2260"
                " division code."
            )
        if within(region, own) or within(own, region):
            raise PeerConfigurationError(
                f"The peer card names region {region}, which overlaps this"
                f" instance's own region {own}; a peer serves another region."
            )
        if not anchors or any(r.role is not KeyRole.TRUST_LIST for r in anchors):
            raise PeerConfigurationError(
                "The peer card's anchors must be one or more trust-list keys."
            )
        existing = self.get(region)
        if existing is not None and not replace:
            raise PeerConfigurationError(
                f"Region {region} is already a peer; `peers refresh {region}`"
                " updates its trust list, and `peers add --replace` pins the"
                " anchors of a new card."
            )
        listed = _checked(document, anchors, at, region)
        peer = Peer(
            region=region,
            url=address,
            anchors=anchors,
            document=document,
            listed=listed,
            added_at=existing.added_at if existing is not None else at,
            refreshed_at=at,
        )
        self._write(peer)
        log.info(
            "peer_added",
            region=region,
            anchors=[r.name for r in anchors],
            keys=len(peer.code_keys),
            replaced=existing is not None,
        )
        return peer

    def refresh(self, region: str, document: bytes, at: datetime) -> Peer:
        """Replace a peer's trust list with ``document``, checked as on adding."""
        at = check_instant(at)
        peer = self.require(region)
        listed = _checked(document, peer.anchors, at, region)
        if listed.issued_at < peer.listed.issued_at:
            raise InvalidTrustList(
                f"The trust list offered for region {region} was issued at"
                f" {_iso(listed.issued_at)}, before the one held"
                f" ({_iso(peer.listed.issued_at)}); an older list is refused."
            )
        fresh = Peer(
            region=region,
            url=peer.url,
            anchors=peer.anchors,
            document=document,
            listed=listed,
            added_at=peer.added_at,
            refreshed_at=at,
        )
        self._write(fresh)
        log.info(
            "peer_refreshed",
            region=region,
            issued_at=_iso(listed.issued_at),
            keys=len(fresh.code_keys),
        )
        return fresh

    def remove(self, region: str) -> Peer:
        peer = self.require(region)
        self._path(region).unlink()
        log.info("peer_removed", region=region)
        return peer

    # Inside

    def _path(self, region: str) -> Path:
        if not isinstance(region, str) or not (region.isascii() and region.isdigit()):
            raise PeerConfigurationError(
                f"The region {region!r} is not a six-digit GB/T 2260 division code."
            )
        return self.directory / f"{region}.json"

    def _load(self, path: Path) -> Peer:
        stat = path.stat()
        with self._lock:
            kept = self._read.get(str(path))
        if kept is not None and kept[:2] == (stat.st_mtime_ns, stat.st_size):
            return kept[2]
        try:
            data = json.loads(path.read_text("utf-8"))
            if data.get("format") != PEER_FORMAT:
                raise ValueError(f"it does not declare the format {PEER_FORMAT}")
            region = data["region"]
            anchors = tuple(KeyRecord.from_json(item) for item in data["anchors"])
            document = data["trustList"].encode("utf-8")
            refreshed_at = _parse_iso(data["refreshedAt"])
            # The list was valid when it was accepted; whether it still is
            # is asked at each use, with the instant of that use.
            listed = load_trust_list(document, anchors, refreshed_at)
            peer = Peer(
                region=region,
                url=check_url(data["url"]),
                anchors=anchors,
                document=document,
                listed=listed,
                added_at=_parse_iso(data["addedAt"]),
                refreshed_at=refreshed_at,
            )
        except (
            OSError,
            ValueError,
            KeyError,
            TypeError,
            AttributeError,
            RecursionError,
        ) as exc:
            raise PeerConfigurationError(
                f"The peer file {path} cannot be read: {exc}"
            ) from None
        except HealthcodeError as exc:
            raise PeerConfigurationError(
                f"The peer file {path} does not hold a trust list its anchors"
                f" vouch for: {exc}"
            ) from None
        if path.name != f"{region}.json":
            raise PeerConfigurationError(
                f"The peer file {path} describes region {region}; its name must match."
            )
        with self._lock:
            self._read[str(path)] = (stat.st_mtime_ns, stat.st_size, peer)
        return peer

    def _write(self, peer: Peer) -> None:
        self.directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        path = self._path(peer.region)
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(
            json.dumps(peer.to_json(), indent=2, ensure_ascii=False) + "\n", "utf-8"
        )
        os.replace(temporary, path)


def _own_region(region: str | None) -> str:
    if region is None or not divisions.is_known(region):
        raise PeerConfigurationError(
            "Peers need the region this instance serves: set HEALTHCODE_REGION"
            f" (or give --region) to its GB/T 2260 code, not {region!r}."
        )
    return region


def _checked(
    document: bytes, anchors: tuple[KeyRecord, ...], at: datetime, region: str
) -> TrustList:
    listed = load_trust_list(document, anchors, at)
    if not any(within(r.region, region) for r in listed.code_keys):
        raise InvalidTrustList(
            f"The trust list offered for region {region} names no code key of"
            " that region."
        )
    return listed


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: object) -> datetime:
    if not isinstance(text, str):
        raise ValueError("a time is not a string")
    value = datetime.fromisoformat(text)
    if value.utcoffset() is None:
        raise ValueError(f"the time {text!r} has no offset")
    return value.astimezone(UTC)
