"""Signing keys: their public records and a key store kept in a directory.

Every key belongs to one region (a GB/T 2260 code) and has one role: a
``code`` key signs that region's health codes and status lists; a
``trust-list`` key signs the trust list that publishes every region's code
keys; a ``peer`` key signs the requests and answers that one region's
instance exchanges with another's, and is published in the trust list so
that the other side can check them. A key is named by its region and a key
id, the first four bytes of the SHA-256 digest of its raw public key, e.g.
``310000-1a2b3c4d``.

A key's life has three instants besides its start. ``sign_until`` ends the
period in which it may sign; ``accept_until`` ends the period in which codes
it signed are still accepted (the rotation overlap); ``revoked_at`` rejects
everything it ever signed from that instant on.

The store keeps, per key, a public record ``<name>.json`` and, while the key
may still sign, its private key ``<name>.key`` in PKCS #8 PEM form with mode
0600. Per region it also keeps the 32-byte secret that seals subject
references, ``<region>.subject``, mode 0600. Private material is never
written to a database or a log line.
"""

from __future__ import annotations

import base64
import enum
import errno
import hashlib
import json
import os
import re
import stat
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nacl.bindings
import nacl.exceptions
import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from healthcode.codes.errors import (
    CodeParameterError,
    KeyConfigurationError,
    KeyStoreError,
)

log = structlog.get_logger(__name__)

KEY_ID_SIZE = 4
SUBJECT_SECRET_SIZE = 32
DEFAULT_OVERLAP = timedelta(days=14)

_REGION = re.compile(r"[1-9][0-9]{5}")


class KeyRole(enum.StrEnum):
    """What a key may sign."""

    CODE = "code"
    TRUST_LIST = "trust-list"
    PEER = "peer"


class KeyState(enum.StrEnum):
    """Where a key stands at a given instant."""

    PENDING = "pending"
    ACTIVE = "active"
    OVERLAP = "overlap"
    RETIRED = "retired"
    REVOKED = "revoked"


def check_region(region: str) -> str:
    """Return ``region`` if it has the shape of a GB/T 2260 code, else raise.

    Only the shape is checked (six digits, no leading zero); whether the
    division exists is for the caller, who holds the division list.
    """
    if not isinstance(region, str) or not _REGION.fullmatch(region):
        raise CodeParameterError(
            f"The region {region!r} is not a six-digit GB/T 2260 division code."
        )
    return region


def check_instant(at: datetime, what: str = "time") -> datetime:
    """Return ``at`` in UTC, refusing a naive datetime whose zone is a guess."""
    if not isinstance(at, datetime) or at.utcoffset() is None:
        raise CodeParameterError(
            f"The {what} must be a timezone-aware datetime, not {at!r}."
        )
    return at.astimezone(UTC)


def whole_second(at: datetime, what: str = "time") -> datetime:
    """Return ``at`` in UTC cut to the second, the precision every format keeps."""
    return check_instant(at, what).replace(microsecond=0)


def key_id_for(public_key: bytes) -> bytes:
    """Return the key id of a raw 32-byte Ed25519 public key."""
    return hashlib.sha256(public_key).digest()[:KEY_ID_SIZE]


def key_name(region: str, key_id: bytes) -> str:
    """Return the printable name of a key, ``<region>-<key id in hex>``."""
    return f"{region}-{key_id.hex()}"


def raw_public_key(private_key: Ed25519PrivateKey) -> bytes:
    """Return the raw 32 bytes of the public half of ``private_key``."""
    return private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


@dataclass(frozen=True)
class KeyRecord:
    """The public facts about one key, as the store and the trust list hold them."""

    region: str
    key_id: bytes
    role: KeyRole
    public_key: bytes
    valid_from: datetime
    sign_until: datetime | None = None
    accept_until: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def name(self) -> str:
        return key_name(self.region, self.key_id)

    def verifying_key(self) -> Ed25519PublicKey:
        """Return the key as a ``cryptography`` public key object."""
        # Made once per record: loading the point costs about as much as
        # half a verification, and a record never changes once made.
        loaded = self.__dict__.get("_verifying_key")
        if loaded is None:
            loaded = Ed25519PublicKey.from_public_bytes(self.public_key)
            object.__setattr__(self, "_verifying_key", loaded)
        return loaded  # type: ignore[no-any-return]

    def check_code_signature(self, signature: bytes, data: bytes) -> None:
        """Raise :class:`InvalidSignature` unless ``signature`` signs ``data``.

        Codes are checked at every door, so this path goes through libsodium,
        which verifies Ed25519 in about half the time ``cryptography`` takes;
        both implement RFC 8032, and libsodium refuses a non-canonical
        signature or a small-order key as well. The rest of the package,
        whose signatures are few, keeps :meth:`verifying_key`.
        """
        if len(signature) != 64:
            raise InvalidSignature()
        try:
            nacl.bindings.crypto_sign_open(signature + data, self.public_key)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
            raise InvalidSignature() from None

    def state(self, at: datetime) -> KeyState:
        """Return where the key stands at ``at``."""
        if self.revoked_at is not None and at >= self.revoked_at:
            return KeyState.REVOKED
        if self.accept_until is not None and at > self.accept_until:
            return KeyState.RETIRED
        if self.sign_until is not None and at >= self.sign_until:
            return KeyState.OVERLAP
        if at < self.valid_from:
            return KeyState.PENDING
        return KeyState.ACTIVE

    def may_sign(self, at: datetime) -> bool:
        """Whether the key may sign something dated ``at``."""
        return self.state(at) is KeyState.ACTIVE

    def to_json(self) -> dict[str, object]:
        """Return the record as a JSON-ready mapping (times in UTC, ``Z``)."""
        return {
            "region": self.region,
            "key_id": self.key_id.hex(),
            "role": self.role.value,
            "public_key": _b64(self.public_key),
            "valid_from": _iso(self.valid_from),
            "sign_until": _iso(self.sign_until),
            "accept_until": _iso(self.accept_until),
            "revoked_at": _iso(self.revoked_at),
        }

    @classmethod
    def from_json(cls, data: object) -> KeyRecord:
        """Read a record written by :meth:`to_json`; raise ``ValueError`` if bad."""
        if not isinstance(data, dict):
            raise ValueError("A key record must be a JSON object.")
        try:
            public_key = base64.urlsafe_b64decode(_padded(data["public_key"]))
            key_id = bytes.fromhex(data["key_id"])
            record = cls(
                region=check_region(data["region"]),
                key_id=key_id,
                role=KeyRole(data["role"]),
                public_key=public_key,
                valid_from=_parse_iso(data["valid_from"]),
                sign_until=_parse_optional_iso(data.get("sign_until")),
                accept_until=_parse_optional_iso(data.get("accept_until")),
                revoked_at=_parse_optional_iso(data.get("revoked_at")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"A key record is malformed: {exc}.") from None
        if len(public_key) != 32:
            raise ValueError(f"Key {record.name} has a public key of the wrong size.")
        if key_id_for(public_key) != key_id:
            raise ValueError(f"Key {record.name} does not match its public key.")
        return record


@dataclass(frozen=True)
class SigningKey:
    """A key record together with its private key, for signing."""

    record: KeyRecord
    private_key: Ed25519PrivateKey = field(repr=False)

    @classmethod
    def from_seed(
        cls,
        seed: bytes,
        region: str,
        valid_from: datetime,
        role: KeyRole = KeyRole.CODE,
    ) -> SigningKey:
        """Make a signing key from a 32-byte seed: for test vectors and fixtures."""
        private_key = Ed25519PrivateKey.from_private_bytes(seed)
        public_key = raw_public_key(private_key)
        record = KeyRecord(
            region=check_region(region),
            key_id=key_id_for(public_key),
            role=role,
            public_key=public_key,
            valid_from=whole_second(valid_from, "key start"),
        )
        return cls(record, private_key)

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data)

    def code_signature(self, data: bytes) -> bytes:
        """Sign ``data`` through libsodium; the same 64 bytes as :meth:`sign`.

        Ed25519 signatures are deterministic (RFC 8032), so libsodium and
        ``cryptography`` give identical bytes for one key and message; codes
        are signed at every refresh and re-signed at every door, and
        libsodium takes about two thirds of the time.
        """
        secret = self.__dict__.get("_sodium_secret")
        if secret is None:
            seed = self.private_key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            _, secret = nacl.bindings.crypto_sign_seed_keypair(seed)
            object.__setattr__(self, "_sodium_secret", secret)
        return nacl.bindings.crypto_sign(data, secret)[:64]

    def holds_its_record(self) -> bool:
        """Whether the private key is the one the public record names."""
        return raw_public_key(self.private_key) == self.record.public_key

    def check_usable(self, at: datetime, role: KeyRole) -> None:
        """Raise :class:`KeyConfigurationError` unless the key may sign at ``at``."""
        record = self.record
        if record.role is not role:
            raise KeyConfigurationError(
                f"Key {record.name} is a {record.role.value} key and cannot sign"
                f" as a {role.value} key."
            )
        state = record.state(at)
        if state is not KeyState.ACTIVE:
            raise KeyConfigurationError(
                f"Key {record.name} is {state.value} at {_iso(at)} and may not sign."
            )


class KeyStore:
    """Signing keys in a directory, one public record and one private file each.

    Every method that changes a key takes the instant it happens at; nothing
    here reads the clock. The store is meant for one operator at a time: it
    takes no lock, so two commands run at the same moment on one directory
    can lose one of their changes.
    """

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        # Files read before, by path, with the identity of the file they came
        # from (inode, modification time in nanoseconds, size). Every write
        # here replaces a file by renaming a new one over it, so a file that
        # still has the same identity still has the same content, and a
        # change made by another process is seen on the next read.
        self._read: dict[Path, tuple[tuple[int, int, int], Any]] = {}
        self._listing: tuple[tuple[int, int, int], tuple[KeyRecord, ...]] | None = None

    # Reading

    def records(self) -> list[KeyRecord]:
        """Return every key record, by region, role and start.

        The records are listed again only when the folder changes: every
        record is written by renaming a new file into place, which changes
        the folder. A listing taken within a second of the folder's change
        is not kept, since a second change in the same tick of its clock
        would not show. A record rewritten in place by hand shows when the
        folder next changes.
        """
        try:
            folder = self.directory.stat()
        except FileNotFoundError:
            return []
        if not stat.S_ISDIR(folder.st_mode):
            return []
        identity = _identity(folder)
        held = self._listing
        if held is not None and held[0] == identity:
            return list(held[1])
        records = [self._read_record(path) for path in self.directory.glob("*.json")]
        records.sort(key=lambda r: (r.region, r.role, r.valid_from))
        if time.time_ns() - folder.st_mtime_ns > _SETTLED_NS:
            self._listing = (identity, tuple(records))
        return records

    def record(self, region: str, key_id: bytes | str) -> KeyRecord:
        """Return the record of one key; raise :class:`KeyStoreError` if absent."""
        key_id = _key_id_bytes(key_id)
        path = self._record_path(region, key_id)
        # One look at the file tells both whether it is there and whether the
        # copy read before still holds; code refreshes ask on every code.
        try:
            status = path.stat()
        except OSError as exc:
            if not _missing(exc):
                raise
            raise KeyStoreError(
                f"No key {key_name(region, key_id)} in the key store {self.directory}."
            ) from None
        return self._read_record(path, status)

    def signing_key(
        self, region: str, at: datetime, role: KeyRole = KeyRole.CODE
    ) -> SigningKey:
        """Return the key of ``region`` and ``role`` that signs at ``at``."""
        at = check_instant(at)
        candidates = [
            r
            for r in self.records()
            if r.region == region and r.role is role and r.may_sign(at)
        ]
        if not candidates:
            raise KeyConfigurationError(
                f"The key store {self.directory} holds no {role.value} key for"
                f" region {region} that may sign at {_iso(at)}."
            )
        if len(candidates) > 1:
            names = ", ".join(r.name for r in candidates)
            raise KeyConfigurationError(
                f"Keys {names} may all sign for region {region} at {_iso(at)};"
                " retire all but one."
            )
        return self._load_signing_key(candidates[0])

    def held_signing_keys(self, role: KeyRole = KeyRole.CODE) -> list[SigningKey]:
        """Return every key of ``role`` whose private key the store still holds.

        A key whose private file cannot be used is left out with a log line
        that names it: the callers re-sign to check what these keys signed,
        and a key left out is checked by its public half instead.
        """
        held = []
        for record in self.records():
            if record.role is not role:
                continue
            if not self._private_path(record.region, record.key_id).exists():
                continue
            try:
                held.append(self._load_signing_key(record))
            except KeyConfigurationError as exc:
                log.warning("private_key_unusable", key=record.name, reason=str(exc))
            except OSError as exc:
                # A file this process may not read (another user's, say)
                # leaves the key to be checked by its public half.
                log.warning(
                    "private_key_unusable", key=record.name, reason=exc.strerror
                )
        return held

    def subject_secret(self, region: str) -> bytes:
        """Return the secret that seals the subject references of ``region``."""
        path = self.directory / f"{check_region(region)}.subject"
        what = f"The subject secret of region {region}"
        try:
            identity = _check_private_mode(path, what)
        except OSError as exc:
            if not _missing(exc):
                raise
            raise KeyConfigurationError(
                f"The key store {self.directory} holds no subject secret for"
                f" region {region}; generate a code key for the region first."
            ) from None
        held = self._read.get(path)
        if held is not None and held[0] == identity:
            return held[1]  # type: ignore[no-any-return]
        secret = path.read_bytes()
        if len(secret) != SUBJECT_SECRET_SIZE:
            raise KeyConfigurationError(
                f"The subject secret of region {region} at {path} is"
                f" {len(secret)} bytes long; it must be {SUBJECT_SECRET_SIZE}."
            )
        self._read[path] = (identity, secret)
        return secret

    # Changing

    def generate(
        self,
        region: str,
        at: datetime,
        role: KeyRole = KeyRole.CODE,
        *,
        valid_from: datetime | None = None,
    ) -> KeyRecord:
        """Create a key for ``region`` that signs from ``valid_from`` (``at``).

        A region has one key of each role that signs at a time, so a region
        that already has one is refused: rotate that key instead.
        """
        at = whole_second(at)
        start = whole_second(valid_from, "key start") if valid_from else at
        check_region(region)
        for existing in self.records():
            if existing.region != region or existing.role is not role:
                continue
            ends = existing.sign_until
            if existing.state(at) is not KeyState.REVOKED and (
                ends is None or ends > start
            ):
                raise KeyStoreError(
                    f"Region {region} already has the {role.value} key"
                    f" {existing.name}, which may still sign; rotate it instead."
                )
        return self._create(region, role, start)

    def rotate(
        self,
        region: str,
        at: datetime,
        role: KeyRole = KeyRole.CODE,
        *,
        overlap: timedelta = DEFAULT_OVERLAP,
        lead: timedelta = timedelta(0),
    ) -> KeyRecord:
        """Replace the signing key of ``region``; return the new key's record.

        The new key is created at once and takes over ``lead`` after ``at``,
        so that it can be published in a trust list before its first code
        reaches a checkpoint. The old key stops signing then and its codes
        are still accepted for ``overlap`` more (by default the lifetime of
        a paper code, so that none issued just before goes bad).
        """
        at = whole_second(at)
        if overlap < timedelta(0) or lead < timedelta(0):
            raise CodeParameterError(
                "A rotation's overlap and lead cannot be negative."
            )
        current = self.signing_key(region, at, role).record
        handover = at + lead
        self._write_record(
            replace(current, sign_until=handover, accept_until=handover + overlap)
        )
        new = self._create(region, role, handover)
        log.info(
            "key_rotated",
            region=region,
            role=role.value,
            old_key=current.name,
            new_key=new.name,
            handover=_iso(handover),
        )
        self._prune(at)
        return new

    def retire(
        self,
        region: str,
        key_id: bytes | str,
        at: datetime,
        *,
        overlap: timedelta = timedelta(0),
    ) -> KeyRecord:
        """Stop a key signing at ``at`` and stop accepting it ``overlap`` later."""
        at = whole_second(at)
        if overlap < timedelta(0):
            raise CodeParameterError("A retirement's overlap cannot be negative.")
        record = self.record(region, key_id)
        state = record.state(at)
        if state in (KeyState.RETIRED, KeyState.REVOKED):
            raise KeyStoreError(f"Key {record.name} is already {state.value}.")
        sign_until = min(record.sign_until or at, at)
        accept_until = at + overlap
        if record.accept_until is not None:
            accept_until = min(accept_until, record.accept_until)
        record = replace(record, sign_until=sign_until, accept_until=accept_until)
        self._write_record(record)
        log.info("key_retired", key=record.name, accept_until=_iso(accept_until))
        self._prune(at)
        return record

    def revoke(self, region: str, key_id: bytes | str, at: datetime) -> KeyRecord:
        """Reject everything the key signed, from ``at`` on, and delete it."""
        at = whole_second(at)
        record = self.record(region, key_id)
        if record.revoked_at is not None:
            raise KeyStoreError(f"Key {record.name} is already revoked.")
        record = replace(
            record, sign_until=min(record.sign_until or at, at), revoked_at=at
        )
        self._write_record(record)
        log.warning("key_revoked", key=record.name, revoked_at=_iso(at))
        self._prune(at)
        return record

    # Inside

    def _create(self, region: str, role: KeyRole, start: datetime) -> KeyRecord:
        self._ensure_directory()
        private_key = Ed25519PrivateKey.generate()
        public_key = raw_public_key(private_key)
        record = KeyRecord(
            region=region,
            key_id=key_id_for(public_key),
            role=role,
            public_key=public_key,
            valid_from=start,
        )
        if self._record_path(region, record.key_id).exists():
            # Four bytes of digest collide about once in four thousand million
            # keys; a fresh key is cheaper than handling two keys of one name.
            return self._create(region, role, start)
        pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_private(self._private_path(region, record.key_id), pem)
        if role is KeyRole.CODE:
            secret_path = self.directory / f"{region}.subject"
            if not secret_path.exists():
                _write_private(secret_path, os.urandom(SUBJECT_SECRET_SIZE))
        self._write_record(record)
        log.info("key_generated", key=record.name, role=role.value)
        return record

    def _prune(self, at: datetime) -> None:
        """Delete the private key of every key that will never sign again."""
        for record in self.records():
            path = self._private_path(record.region, record.key_id)
            retired = record.sign_until is not None and record.sign_until <= at
            if retired and path.exists():
                path.unlink()
                log.info("private_key_deleted", key=record.name)

    def _load_signing_key(self, record: KeyRecord) -> SigningKey:
        path = self._private_path(record.region, record.key_id)
        if not path.exists():
            raise KeyConfigurationError(
                f"Key {record.name} has no private key file at {path}."
            )
        _check_private_mode(path, f"The private key of {record.name}")
        try:
            private_key = serialization.load_pem_private_key(
                path.read_bytes(), password=None
            )
        except (ValueError, TypeError):
            raise KeyConfigurationError(
                f"The private key file of {record.name} at {path} cannot be read"
                " as an unencrypted PKCS #8 PEM key."
            ) from None
        if not isinstance(private_key, Ed25519PrivateKey):
            raise KeyConfigurationError(
                f"The private key file of {record.name} at {path} is not Ed25519."
            )
        if raw_public_key(private_key) != record.public_key:
            raise KeyConfigurationError(
                f"The private key file of {record.name} at {path} does not match"
                " the key's public record."
            )
        return SigningKey(record, private_key)

    def _read_record(
        self, path: Path, status: os.stat_result | None = None
    ) -> KeyRecord:
        try:
            identity = _identity(path.stat() if status is None else status)
            held = self._read.get(path)
            if held is not None and held[0] == identity:
                return held[1]  # type: ignore[no-any-return]
            record = KeyRecord.from_json(json.loads(path.read_text("utf-8")))
        except (OSError, ValueError) as exc:
            raise KeyConfigurationError(
                f"The key record {path} cannot be read: {exc}"
            ) from None
        if path.name != f"{record.name}.json":
            raise KeyConfigurationError(
                f"The key record {path} describes key {record.name}; its file"
                " name must match."
            )
        self._read[path] = (identity, record)
        return record

    def _write_record(self, record: KeyRecord) -> None:
        self._ensure_directory()
        path = self._record_path(record.region, record.key_id)
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(
            json.dumps(record.to_json(), indent=2, sort_keys=True) + "\n", "utf-8"
        )
        os.replace(temporary, path)

    def _ensure_directory(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _record_path(self, region: str, key_id: bytes) -> Path:
        return self.directory / f"{key_name(region, key_id)}.json"

    def _private_path(self, region: str, key_id: bytes) -> Path:
        return self.directory / f"{key_name(region, key_id)}.key"


def _write_private(path: Path, data: bytes) -> None:
    # The file is created with its final mode, so there is no moment in which
    # another user could open it; O_EXCL refuses to reuse an existing file.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


# How long after a folder's change its listing is trusted to stay: longer
# than the coarsest clock tick a file system here keeps times in.
_SETTLED_NS = 1_000_000_000


def _missing(error: OSError) -> bool:
    """Whether ``error`` says a file is not there, as ``Path.exists`` reads it.

    A path through something that is not a folder, or through a loop of
    links, holds no file either.
    """
    return error.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EBADF)


def _identity(status: os.stat_result) -> tuple[int, int, int]:
    return (status.st_ino, status.st_mtime_ns, status.st_size)


def _check_private_mode(path: Path, what: str) -> tuple[int, int, int]:
    """Refuse a file others may read; return the file's identity."""
    status = path.stat()
    mode = stat.S_IMODE(status.st_mode)
    if mode & 0o077:
        raise KeyConfigurationError(
            f"{what} at {path} has mode {mode:04o}; it must be readable by its"
            " owner alone (0600)."
        )
    return _identity(status)


def _key_id_bytes(key_id: bytes | str) -> bytes:
    if isinstance(key_id, bytes):
        return key_id
    try:
        value = bytes.fromhex(key_id)
    except ValueError:
        value = b""
    if len(value) != KEY_ID_SIZE:
        raise CodeParameterError(
            f"The key id {key_id!r} is not {KEY_ID_SIZE * 2} hexadecimal digits."
        )
    return value


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _padded(text: str) -> str:
    return text + "=" * (-len(text) % 4)


def _iso(at: datetime | None) -> str | None:
    if at is None:
        return None
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.utcoffset() is None:
        raise ValueError(f"the time {text!r} has no offset")
    return value.astimezone(UTC)


def _parse_optional_iso(text: str | None) -> datetime | None:
    return None if text is None else _parse_iso(text)
