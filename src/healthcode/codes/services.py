"""Issuing residents' codes from their stored statuses, and the daily status list.

The format, keys and verifiers in this package know nothing of residents;
this module joins them to the database. A screen code shows the colour that
:func:`healthcode.status.services.current_status` gives at the moment of
issue, with the name masked by :func:`healthcode.identity.names.mask_name`.
A paper code shows no colour; its status list index is the resident's id,
and :meth:`CodeService.status_list` signs the day's list of every resident
of the region who is not green.

The issuing region is the one the service is configured with, or else the
prefecture of the resident's place of residence (a Xi'an district's codes
are issued by Xi'an, 610100). Keys come from a :class:`KeyStore`; a region
that has never had a code key gets one on its first code, with a log line
that names the key and the directory and nothing of the key itself.
"""

from __future__ import annotations

import os
import unicodedata
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session

from healthcode.codes.card import CardContent
from healthcode.codes.errors import NoIssuingRegion, RegionNotServed
from healthcode.codes.format import (
    DEFAULT_DAILY_EXPIRY,
    DEFAULT_PAPER_TTL,
    DEFAULT_SCREEN_TTL,
    DEFAULT_ZONE,
    MAX_NAME_BYTES,
    CodeContent,
    Colour,
    Issuer,
    Purpose,
    SubjectSealer,
    parse_code,
)
from healthcode.codes.keys import (
    KeyRecord,
    KeyRole,
    KeyStore,
    SigningKey,
    check_instant,
)
from healthcode.codes.statuslist import build_status_list
from healthcode.codes.trust import Verifier
from healthcode.identity import divisions
from healthcode.identity.errors import UnknownResident
from healthcode.identity.models import Resident
from healthcode.identity.names import mask_name
from healthcode.status.models import Status
from healthcode.status.services import current_status, recolor_residents

__all__ = [
    "DEFAULT_KEY_DIR",
    "KEY_DIR_ENV",
    "CodeService",
    "IssuedCode",
    "issuing_region_of",
    "key_directory",
    "local_verifier",
]

log = structlog.get_logger(__name__)

KEY_DIR_ENV = "HEALTHCODE_KEY_DIR"
DEFAULT_KEY_DIR = Path("keys")


def key_directory(directory: Path | str | None = None) -> Path:
    """Return the key store directory: as given, else ``$HEALTHCODE_KEY_DIR``."""
    if directory is not None:
        return Path(directory)
    return Path(os.environ.get(KEY_DIR_ENV) or DEFAULT_KEY_DIR)


def local_verifier(store: KeyStore) -> Verifier:
    """Return a verifier holding the public records of the store's code keys.

    This is the trust material a machine holds when it issues codes itself;
    a checkpoint elsewhere loads a signed trust list instead. The private
    keys the store still holds go with it, so that the codes this machine
    issued are checked by signing them again, which costs about a third of
    verifying them (see :class:`Verifier`).
    """
    records = tuple(r for r in store.records() if r.role is KeyRole.CODE)
    held = _verifiers.get(store)
    if held is not None and held[0] == records:
        return held[1]
    verifier = Verifier(records, signers=store.held_signing_keys(KeyRole.CODE))
    _verifiers[store] = (records, verifier)
    return verifier


# The verifier last made for each key store, with the records it was made
# from: a checkpoint's online verify asks for one on every request, and the
# records rarely change.
_verifiers: weakref.WeakKeyDictionary[KeyStore, tuple[tuple[KeyRecord, ...], Verifier]]
_verifiers = weakref.WeakKeyDictionary()


def issuing_region_of(region_code: str | None, configured: str | None) -> str:
    """Return the region that issues codes for someone living in ``region_code``.

    The configured region wins. Otherwise a county's codes are issued by
    the prefecture above it (or by the province, where the county sits under
    no prefecture, as in the municipalities), and a prefecture or province
    of residence issues its own.
    """
    if configured is not None:
        return divisions.division(configured).code
    if region_code is None:
        raise NoIssuingRegion(
            "The resident has no region of residence on record and no issuing"
            " region is configured, so no region can issue their code."
        )
    place = divisions.division(region_code)
    if place.level != "county":
        return place.code
    above = divisions.parent(region_code)
    if above is None:
        raise NoIssuingRegion(
            f"The region of residence {region_code} has no division above it to"
            " issue codes."
        )
    return above.code


@dataclass(frozen=True)
class IssuedCode:
    """A code just issued, with what a screen or a card shows beside it."""

    text: str
    purpose: Purpose
    colour: Colour | None
    masked_name: str
    region: str
    region_name: str
    key_name: str
    issued_at: datetime
    valid_until: datetime
    status_index: int | None = None


class CodeService:
    """Issues the codes of residents and signs the daily status lists.

    ``region`` is the region this service issues for, when it is configured
    with one; without it each resident's code comes from the prefecture of
    their residence. The zone and daily expiry bound a screen code's life.
    Every method takes the instant it acts at; nothing here reads the clock.
    """

    def __init__(
        self,
        store: KeyStore,
        *,
        region: str | None = None,
        zone: ZoneInfo = DEFAULT_ZONE,
        daily_expiry: time = DEFAULT_DAILY_EXPIRY,
        screen_ttl: timedelta = DEFAULT_SCREEN_TTL,
        paper_ttl: timedelta = DEFAULT_PAPER_TTL,
    ) -> None:
        self.store = store
        self.region = None if region is None else divisions.division(region).code
        self.zone = zone
        self.daily_expiry = daily_expiry
        self.screen_ttl = screen_ttl
        self.paper_ttl = paper_ttl
        self._issuers: dict[str, Issuer] = {}
        self._region_names: dict[str, str] = {}
        self._sealers: dict[str, tuple[bytes, SubjectSealer]] = {}

    # Issuing

    def screen_code(
        self, session: Session, resident_id: int, at: datetime
    ) -> IssuedCode:
        """Issue the resident's screen code in the colour of their status at ``at``.

        The status is read through :func:`current_status`, which recolours
        a status that has gone stale, so the call belongs in a transaction
        that commits.
        """
        at = check_instant(at, "issue time")
        resident = self._resident(session, resident_id)
        view = current_status(session, resident_id, at)
        colour = Colour(view.colour)
        issuer = self._issuer(self._region_for(resident), at)
        masked = _code_name(mask_name(resident.name))
        text = issuer.screen_code(resident_id, masked, colour, at)
        return self._issued(text, issuer)

    def ingredients(self, session: Session, resident_id: int) -> tuple[str, str]:
        """Return what a resident's codes carry besides the colour.

        That is the masked name, shortened to fit a code, and the issuing
        region. A busy service keeps them between refreshes and signs with
        :meth:`screen_code_with`.
        """
        return self.ingredients_of(self._resident(session, resident_id))

    def ingredients_of(self, resident: Resident) -> tuple[str, str]:
        """:meth:`ingredients` of a resident already read."""
        return _code_name(mask_name(resident.name)), self._region_for(resident)

    def screen_code_with(
        self,
        resident_id: int,
        masked_name: str,
        region: str,
        colour: Colour,
        at: datetime,
    ) -> IssuedCode:
        """Issue a screen code from ingredients the caller already holds.

        ``masked_name`` and ``region`` come from :meth:`ingredients` and
        ``colour`` from the resident's current status; the code is the one
        :meth:`screen_code` gives for the same status at ``at``, signed
        without a read of the database.
        """
        at = check_instant(at, "issue time")
        issuer = self._issuer(region, at)
        text, issued, until = issuer.screen_code_and_times(
            resident_id, masked_name, colour, at
        )
        # Everything the answer shows is known here; reading it back from
        # the text, as _issued does, cost a refresh a tenth of its time.
        return IssuedCode(
            text=text,
            purpose=Purpose.SCREEN,
            colour=colour,
            masked_name=unicodedata.normalize("NFC", masked_name),
            region=issuer.region,
            region_name=self._region_name(issuer.region),
            key_name=issuer.signing_key.record.name,
            issued_at=issued,
            valid_until=until,
        )

    def _region_name(self, region: str) -> str:
        name = self._region_names.get(region)
        if name is None:
            name = self._region_names[region] = divisions.full_name(region)
        return name

    def paper_code(
        self, session: Session, resident_id: int, at: datetime
    ) -> IssuedCode:
        """Issue the resident's paper code; its status list index is their id."""
        at = check_instant(at, "issue time")
        resident = self._resident(session, resident_id)
        issuer = self._issuer(self._region_for(resident), at)
        masked = _code_name(mask_name(resident.name))
        # The index is the resident id, which the database counts up in order
        # of registration. The status list is public, so an index tells
        # roughly when its holder registered and who registered near them;
        # a random index per resident, drawn once and stored with them, would
        # not (it wants a column of its own and a migration).
        text = issuer.paper_code(resident_id, masked, resident_id, at)
        return self._issued(text, issuer)

    def paper_card(
        self, session: Session, resident_id: int, at: datetime
    ) -> tuple[IssuedCode, CardContent]:
        """Issue a paper code and return it with what its printed card shows."""
        issued = self.paper_code(session, resident_id, at)
        resident = self._resident(session, resident_id)
        content = CardContent(
            text=issued.text,
            masked_name=issued.masked_name,
            document_tail=resident.doc_number[-4:],
            region_name=issued.region_name,
            valid_until=issued.valid_until,
            zone=self.zone,
        )
        return issued, content

    def resolve(self, text: str) -> int:
        """Return the resident id behind a code issued here (for tracing).

        Only the subject reference is opened; call it on a code that a
        verifier has accepted.
        """
        content, _, _ = parse_code(text)
        return self.holder(content)

    def holder(self, content: CodeContent) -> int:
        """Return the resident id behind the content of a code issued here.

        For a code a verifier has just accepted, this spares decoding its
        text a second time.
        """
        return self._sealer(content.region).open(content.subject_reference)

    def holders(self) -> Callable[[CodeContent], int]:
        """Return :meth:`holder` for the many codes of one upload.

        Each region's secret is read from the store once, on its first code,
        rather than once per code; the function is meant to live as long as
        the request that asked for it, so a secret changed in the store is
        seen by the next one.
        """
        sealers: dict[str, SubjectSealer] = {}

        def holder(content: CodeContent) -> int:
            sealer = sealers.get(content.region)
            if sealer is None:
                sealer = sealers[content.region] = self._sealer(content.region)
            return sealer.open(content.subject_reference)

        return holder

    def _sealer(self, region: str) -> SubjectSealer:
        # The sealer is kept with the secret it was made from: making one
        # sets up a cipher, which costs more than opening a reference.
        secret = self.store.subject_secret(region)
        held = self._sealers.get(region)
        if held is None or held[0] != secret:
            held = self._sealers[region] = (secret, SubjectSealer(secret))
        return held[1]

    # The status list

    def status_list(
        self,
        session: Session,
        region: str,
        at: datetime,
        *,
        valid_until: datetime | None = None,
    ) -> bytes:
        """Sign the status list of ``region``'s residents who are not green at ``at``.

        Statuses whose ``recheck_at`` has passed are recoloured first, in
        this session, so that the list never carries a colour that time has
        already changed; call it in a transaction that commits. The index
        space runs to the highest resident id, so that a checkpoint can tell
        an index it has never seen from a green one.
        """
        at = check_instant(at, "status list issue time")
        region = divisions.division(region).code
        if self.region is not None and region != self.region:
            raise RegionNotServed(
                f"This service issues codes for region {self.region}, so it signs"
                f" no status list for region {region}."
            )
        due = list(
            session.scalars(
                sa.select(Status.resident_id).where(Status.recheck_at <= at)
            )
        )
        if due:
            recolor_residents(session, due, at, "time", records_changed=False)
            session.flush()

        highest = session.scalar(sa.select(sa.func.max(Resident.id))) or 0
        rows = session.execute(
            sa.select(Status.resident_id, Status.colour, Resident.region_code)
            .join(Resident, Resident.id == Status.resident_id)
            .where(Status.colour != Colour.GREEN.value)
        )
        regions: dict[str | None, str | None] = {}
        colours: dict[int, Colour] = {}
        for resident_id, colour, region_code in rows:
            if region_code not in regions:
                regions[region_code] = self._region_or_none(region_code)
            if regions[region_code] == region:
                colours[resident_id] = Colour(colour)
        signer = self._signing_key(region, at)
        document = build_status_list(
            colours, highest + 1, signer, at, valid_until=valid_until
        )
        log.info(
            "status_list_signed",
            region=region,
            key=signer.record.name,
            listed=len(colours),
            index_space=highest + 1,
            size=len(document),
        )
        return document

    # Inside

    def _resident(self, session: Session, resident_id: int) -> Resident:
        resident = session.get(Resident, resident_id)
        if resident is None:
            raise UnknownResident("No resident has that identity document.")
        return resident

    def _region_for(self, resident: Resident) -> str:
        return issuing_region_of(resident.region_code, self.region)

    def _region_or_none(self, region_code: str | None) -> str | None:
        try:
            return issuing_region_of(region_code, self.region)
        except NoIssuingRegion:
            return None

    def _issued(self, text: str, issuer: Issuer) -> IssuedCode:
        content, _, _ = parse_code(text)
        return IssuedCode(
            text=text,
            purpose=content.purpose,
            colour=content.colour,
            masked_name=content.masked_name,
            region=content.region,
            region_name=divisions.full_name(content.region),
            key_name=content.key_name,
            issued_at=content.issued_at,
            valid_until=content.valid_until,
            status_index=content.status_index,
        )

    def _issuer(self, region: str, at: datetime) -> Issuer:
        issuer = self._issuers.get(region)
        if issuer is not None:
            # The key's record is read again on every code: a rotation or a
            # retirement made by another process writes it, and an issuer
            # that kept its copy would go on signing with a key that has
            # stopped. One small file costs far less than the signature.
            record = issuer.signing_key.record
            if self.store.record(region, record.key_id) == record and (
                record.may_sign(at)
            ):
                return issuer
        issuer = Issuer(
            self._signing_key(region, at),
            self.store.subject_secret(region),
            screen_ttl=self.screen_ttl,
            paper_ttl=self.paper_ttl,
            daily_expiry=self.daily_expiry,
            zone=self.zone,
        )
        self._issuers[region] = issuer
        return issuer

    def _signing_key(self, region: str, at: datetime) -> SigningKey:
        held = any(
            r.region == region and r.role is KeyRole.CODE for r in self.store.records()
        )
        if not held:
            # Only a region that has never had a code key gets one here. A
            # region whose keys have all been retired or revoked stays
            # without one until an operator acts: minting a key silently
            # would undo their decision.
            record = self.store.generate(region, at)
            log.warning(
                "code_key_generated_on_first_use",
                region=region,
                key=record.name,
                directory=str(self.store.directory),
                note="publish the key in the trust list before codes reach doors",
            )
        return self.store.signing_key(region, at)


def _code_name(masked: str) -> str:
    # A masked name keeps every code point of the stored name, and a stored
    # name may have up to 64 of them, which in UTF-8 can exceed the 64 bytes a
    # code carries. The tail of a mask is stars and spaces, so cutting it
    # shortens only the masking.
    data = masked.encode("utf-8")
    if len(data) <= MAX_NAME_BYTES:
        return masked
    return data[:MAX_NAME_BYTES].decode("utf-8", "ignore").rstrip(" ·")
