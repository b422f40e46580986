"""Signed seals of the audit log's head, and checking the log with them.

The audit log's hash chain finds an entry that was changed or removed, but
not a chain rewritten from some entry to its end with every hash made anew.
A seal closes that gap: it signs, with an Ed25519 key kept in the data key
directory (outside the database), that entry ``last_id`` had hash
``last_hash``. A head seal is made every day and on every export; copied
somewhere the database's owner cannot write, it lets anyone check later
that the log still holds that entry with that hash.

Purging old entries by retention goes through a purge seal of the newest
entry purged. The chain that remains is then checked from that seal as it
would be from the beginning: the first entry left must link to the sealed
hash. Deleting entries is possible only behind a purge seal: the database
refuses the deletion otherwise.

The seal key lives in ``<data key dir>/seal/``: ``<key id>.key`` (PKCS #8
PEM, mode 0600) signs, ``<key id>.pub`` (the raw public key, hex) checks,
and ``current`` names the key that signs now. A rotated key keeps its public
file, so old seals still verify.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy.orm import Session

from healthcode.audit.errors import AuditHeadMissing
from healthcode.audit.models import AuditEntry, AuditHead
from healthcode.audit.services import GENESIS, VerifyReport, verify_log
from healthcode.privacy.errors import AuditSealInvalid, DataKeyError
from healthcode.privacy.keyfiles import (
    ensure_directory,
    read_private,
    replace_private,
    write_private,
)
from healthcode.privacy.models import AuditSeal

__all__ = [
    "HEAD_FORMAT",
    "SealKeys",
    "head_document",
    "seal",
    "seal_head",
    "seal_message",
    "verify_audit",
    "verify_head_document",
]

log = structlog.get_logger(__name__)

#: The name and version of an exported head, and the prefix of what is signed.
HEAD_FORMAT = "healthcode-audit-head/1"


class SealKeys:
    """The seal keys in ``<data key dir>/seal``; nothing here reads the clock."""

    def __init__(self, data_key_dir: Path | str) -> None:
        self.directory = Path(data_key_dir) / "seal"

    def signing_key(self) -> tuple[str, Ed25519PrivateKey]:
        """The key that signs now, made on first use; its id and private key."""
        current = self.directory / "current"
        if not current.exists():
            return self.rotate()
        key_id = current.read_text("ascii").strip()
        pem = read_private(self.directory / f"{key_id}.key", f"Seal key {key_id}")
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError):
            key = None
        if not isinstance(key, Ed25519PrivateKey) or _key_id(key) != key_id:
            raise DataKeyError(
                f"The seal key file of {key_id} in {self.directory} is not the"
                " Ed25519 key its name says."
            )
        return key_id, key

    def rotate(self) -> tuple[str, Ed25519PrivateKey]:
        """Make a new seal key the one that signs; the old one only verifies."""
        ensure_directory(self.directory)
        key = Ed25519PrivateKey.generate()
        key_id = _key_id(key)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private(self.directory / f"{key_id}.key", pem)
        (self.directory / f"{key_id}.pub").write_text(_raw(key).hex() + "\n", "ascii")
        previous = self.directory / "current"
        old = previous.read_text("ascii").strip() if previous.exists() else None
        replace_private(previous, key_id.encode("ascii"))
        if old and old != key_id:
            # A key that will never sign again need not exist to be stolen.
            (self.directory / f"{old}.key").unlink(missing_ok=True)
        log.info("seal_key_generated", key_id=key_id, directory=str(self.directory))
        return key_id, key

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        """Every seal key's public half, current and rotated, by key id."""
        found = {}
        if not self.directory.is_dir():
            return found
        for path in sorted(self.directory.glob("*.pub")):
            try:
                raw = bytes.fromhex(path.read_text("ascii").strip())
                key = Ed25519PublicKey.from_public_bytes(raw)
            except ValueError:
                raise DataKeyError(
                    f"The public seal key file {path} is not 32 bytes in hex."
                ) from None
            found[path.stem] = key
        return found


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def _key_id(key: Ed25519PrivateKey) -> str:
    return hashlib.sha256(_raw(key)).hexdigest()[:16]


def _instant(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def seal_message(
    kind: str, last_id: int, last_hash: str, sealed_at: datetime, key_id: str
) -> bytes:
    """The exact bytes a seal's signature covers."""
    body = orjson.dumps(
        {
            "kind": kind,
            "lastId": last_id,
            "lastHash": last_hash,
            "sealedAt": _instant(sealed_at),
            "keyId": key_id,
        },
        option=orjson.OPT_SORT_KEYS,
    )
    return HEAD_FORMAT.encode("ascii") + b"\n" + body


def seal(
    session: Session,
    kind: str,
    last_id: int,
    last_hash: str,
    now: datetime,
    keys: SealKeys,
) -> AuditSeal:
    """Sign that entry ``last_id`` has ``last_hash`` and store the seal."""
    key_id, key = keys.signing_key()
    message = seal_message(kind, last_id, last_hash, now, key_id)
    row = AuditSeal(
        kind=kind,
        last_id=last_id,
        last_hash=last_hash,
        sealed_at=now,
        key_id=key_id,
        signature=key.sign(message).hex(),
    )
    session.add(row)
    session.flush()
    log.info("audit_sealed", seal_id=row.id, kind=kind, last_id=last_id)
    return row


def seal_head(session: Session, now: datetime, keys: SealKeys) -> AuditSeal:
    """Seal the audit log's newest entry as the head stands in this transaction."""
    head = session.get(AuditHead, 1)
    if head is None:
        raise AuditHeadMissing(
            "The audit log's head row is missing; run the database migrations."
        )
    return seal(session, "head", int(head.last_id), head.last_hash, now, keys)


def head_document(row: AuditSeal, keys: SealKeys) -> dict[str, Any]:
    """A seal as a document to keep outside the database, with its public key."""
    public = keys.public_keys().get(row.key_id)
    if public is None:
        raise DataKeyError(
            f"The seal key {row.key_id} is not in {keys.directory}; the seal"
            " cannot be exported with its key."
        )
    return {
        "format": HEAD_FORMAT,
        "kind": row.kind,
        "lastId": int(row.last_id),
        "lastHash": row.last_hash,
        "sealedAt": _instant(row.sealed_at),
        "keyId": row.key_id,
        "publicKey": public.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        ).hex(),
        "signature": row.signature,
    }


def _check_signature(
    trusted: Mapping[str, Ed25519PublicKey],
    kind: str,
    last_id: int,
    last_hash: str,
    sealed_at: datetime,
    key_id: str,
    signature: str,
) -> bool:
    public = trusted.get(key_id)
    if public is None:
        return False
    try:
        public.verify(
            bytes.fromhex(signature),
            seal_message(kind, last_id, last_hash, sealed_at, key_id),
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_head_document(
    document: Mapping[str, Any], trusted: Mapping[str, Ed25519PublicKey]
) -> tuple[int, str]:
    """Check an exported head's signature; return the entry id and hash it seals.

    ``trusted`` are the public seal keys the checker holds; the key in the
    document itself is only a hint, since a forger would put theirs there.
    Raises :class:`AuditSealInvalid`, with one opaque reason, when the
    document is not a head this platform signed or was altered.
    """
    refused = AuditSealInvalid(
        "The audit head does not verify: it was altered, or no trusted seal key"
        " signed it."
    )
    try:
        if document["format"] != HEAD_FORMAT:
            raise refused
        kind = str(document["kind"])
        last_id = int(document["lastId"])
        last_hash = str(document["lastHash"])
        sealed_at = datetime.fromisoformat(str(document["sealedAt"]))
        key_id = str(document["keyId"])
        signature = str(document["signature"])
    except (KeyError, TypeError, ValueError):
        raise refused from None
    if sealed_at.tzinfo is None or not _check_signature(
        trusted, kind, last_id, last_hash, sealed_at, key_id, signature
    ):
        raise refused
    return last_id, last_hash


def verify_audit(
    session: Session, keys: SealKeys, *, batch: int = 5000
) -> VerifyReport:
    """Check every seal's signature, then the chain from the newest purge seal.

    The chain is walked as :func:`healthcode.audit.services.verify_log`
    walks it, starting after the newest purge seal (or at entry 1 when
    nothing was purged). Each head seal of an entry still in the log must
    match that entry's hash: a chain rewritten after a head was sealed is
    found here even when every link of the new chain holds.
    """
    trusted = keys.public_keys()
    seals = session.scalars(sa.select(AuditSeal).order_by(AuditSeal.id)).all()
    for row in seals:
        if not _check_signature(
            trusted,
            row.kind,
            int(row.last_id),
            row.last_hash,
            row.sealed_at,
            row.key_id,
            row.signature,
        ):
            return VerifyReport(
                0,
                int(row.last_id),
                f"Seal {row.id} of entry {row.last_id} does not verify against"
                " any seal key: it was altered or forged.",
            )
    purges = [row for row in seals if row.kind == "purge"]
    start = max(purges, key=lambda row: row.last_id) if purges else None
    start_id = int(start.last_id) + 1 if start else 1
    start_prev = start.last_hash if start else GENESIS
    report = verify_log(session, batch=batch, start_id=start_id, start_prev=start_prev)
    if not report.intact:
        return report
    for row in seals:
        if row.kind != "head" or row.last_id < start_id:
            continue
        entry = session.get(AuditEntry, int(row.last_id))
        if entry is None or entry.hash != row.last_hash:
            return VerifyReport(
                report.entries,
                int(row.last_id),
                f"Entry {row.last_id} is not the entry that seal {row.id} signed:"
                " the log was rewritten from there on.",
            )
    return report
