"""``healthcode peers``: this instance's card, and the peer regions it trusts.

The clock is read here, at the edge, and handed to the domain as a
parameter. Peers live beside the key store (``--dir``, by default
``$HEALTHCODE_KEY_DIR``), where ``healthcode verify`` and the server find
them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from healthcode.codes.cli import KeyDir
from healthcode.codes.keys import KeyRole, KeyStore
from healthcode.errors import HealthcodeError
from healthcode.regions.calls import fetch_trust_list
from healthcode.regions.errors import PeerConfigurationError
from healthcode.regions.peers import Peer, make_card
from healthcode.regions.services import (
    ensure_key,
    peer_store,
    published_trust_list,
    trust_list_signer,
)

peers_app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Exchange trust lists with the instances of other regions.",
)

REGION_ENV = "HEALTHCODE_REGION"
OwnRegion = Annotated[
    str | None,
    typer.Option(
        "--region",
        envvar=REGION_ENV,
        help=f"GB/T 2260 code of the region this instance serves (${REGION_ENV}).",
    ),
]


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _fail(exc: HealthcodeError) -> typer.Exit:
    typer.echo(f"error [{exc.code}]: {exc}", err=True)
    return typer.Exit(1)


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _describe(peer: Peer) -> str:
    anchors = ", ".join(r.name for r in peer.anchors)
    return (
        f"region {peer.region} {peer.name}, {len(peer.code_keys)} code keys and"
        f" {len(peer.peer_keys)} peer keys, trust list valid until"
        f" {_when(peer.listed.valid_until)}; anchors {anchors}"
    )


@peers_app.command("card")
def card(
    url: Annotated[
        str, typer.Option(help="The address other regions reach this instance at.")
    ],
    out: Annotated[Path, typer.Option(dir_okay=False, help="File to write it to.")],
    directory: KeyDir = Path("keys"),
    region: OwnRegion = None,
) -> None:
    """Write this instance's card: region, address, anchors and trust list.

    Makes the region's peer key (and trust-list key) on first use. Hand
    the card to the other region's operator by a channel you both trust,
    and compare the anchor names it prints by another.
    """
    at = _now()
    store = KeyStore(directory)
    try:
        if region is None:
            raise PeerConfigurationError(
                f"Give --region or set ${REGION_ENV}: a card names its region."
            )
        for role in (KeyRole.CODE, KeyRole.PEER):
            ensure_key(store, region, role, at)
        signer = trust_list_signer(store, at, region)
        document = published_trust_list(store, peer_store(directory), at, region)
        anchors = [r for r in store.records() if r.role is KeyRole.TRUST_LIST]
        out.write_bytes(make_card(region, url, anchors, document))
    except HealthcodeError as exc:
        raise _fail(exc) from None
    typer.echo(
        f"wrote the card of region {region} to {out}; its trust list is signed by"
        f" {signer.record.name}"
    )


@peers_app.command("add")
def add(
    card_file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, help="The peer's card (peers card)."
        ),
    ],
    directory: KeyDir = Path("keys"),
    region: OwnRegion = None,
    url: Annotated[
        str | None, typer.Option(help="Reach the peer here instead of its card's URL.")
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Pin a new card of a peer held.")
    ] = False,
) -> None:
    """Trust a peer region: check its card's trust list and pin its anchors."""
    at = _now()
    store = KeyStore(directory)
    try:
        peer = peer_store(directory).add(
            card_file.read_bytes(), at, own_region=region, url=url, replace=replace
        )
        if region is not None:
            # This instance signs its calls to the peer with its peer key.
            ensure_key(store, region, KeyRole.PEER, at)
    except HealthcodeError as exc:
        raise _fail(exc) from None
    typer.echo(f"added {_describe(peer)}")


@peers_app.command("list")
def list_peers(
    directory: KeyDir = Path("keys"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the peer regions with the state of their trust lists now."""
    at = _now()
    try:
        peers = peer_store(directory).peers()
    except HealthcodeError as exc:
        raise _fail(exc) from None
    if as_json:
        rows = [
            {
                "region": peer.region,
                "name": peer.name,
                "url": peer.url,
                "anchors": [r.name for r in peer.anchors],
                "codeKeys": [r.name for r in peer.code_keys],
                "peerKeys": [r.name for r in peer.peer_keys],
                "issuedAt": peer.listed.issued_at.isoformat(),
                "validUntil": peer.listed.valid_until.isoformat(),
                "state": "valid" if peer.valid_at(at) else "expired",
            }
            for peer in peers
        ]
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table("region", "name", "url", "code keys", "list issued", "valid until")
    for peer in peers:
        until = _when(peer.listed.valid_until)
        table.add_row(
            peer.region,
            peer.name,
            peer.url,
            str(len(peer.code_keys)),
            _when(peer.listed.issued_at),
            until if peer.valid_at(at) else f"expired {until}",
        )
    Console().print(table)


@peers_app.command("refresh")
def refresh(
    regions: Annotated[
        list[str] | None,
        typer.Argument(help="Peer regions to refresh (default: every peer)."),
    ] = None,
    directory: KeyDir = Path("keys"),
    trust_list: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="Read the trust list from this file instead of the peer's URL.",
        ),
    ] = None,
) -> None:
    """Fetch each peer's published trust list and check it against its anchors.

    A list signed by another key, altered, expired or older than the one
    held is refused with the reason, and the one held stays.
    """
    at = _now()
    store = peer_store(directory)
    failed = False
    try:
        chosen = regions or [peer.region for peer in store.peers()]
        if trust_list is not None and len(chosen) != 1:
            raise PeerConfigurationError(
                "--trust-list refreshes one peer: name its region."
            )
    except HealthcodeError as exc:
        raise _fail(exc) from None
    for region in chosen:
        try:
            peer = store.require(region)
            document = (
                trust_list.read_bytes()
                if trust_list is not None
                else fetch_trust_list(peer)
            )
            fresh = store.refresh(region, document, at)
        except HealthcodeError as exc:
            typer.echo(f"refused region {region} [{exc.code}]: {exc}", err=True)
            failed = True
            continue
        typer.echo(f"refreshed {_describe(fresh)}")
    if failed:
        raise typer.Exit(1)


@peers_app.command("remove")
def remove(
    region: Annotated[str, typer.Argument(help="The peer region to stop trusting.")],
    directory: KeyDir = Path("keys"),
) -> None:
    """Stop trusting a peer region: its codes and calls are refused from now on."""
    try:
        peer = peer_store(directory).remove(region)
    except HealthcodeError as exc:
        raise _fail(exc) from None
    typer.echo(f"removed region {peer.region} {peer.name}")
