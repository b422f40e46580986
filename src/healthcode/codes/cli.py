"""Command line for keys, residents' codes and the size and speed of codes.

``keys_app`` is a typer application (``healthcode keys ...``) that manages
the key store; ``code_command``, ``card_command`` and ``verify_command``
issue a resident's code, print a paper code's card and check a code offline;
``bench_codes`` prints how large our codes are beside the EU DCC test
payloads and how fast they are issued and verified. The clock is read here,
at the edge, and handed to the domain code as a parameter.
"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import time as clock
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import cryptography
import typer
from cryptography.hazmat.backends.openssl.backend import backend as openssl_backend
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from healthcode.codes import qr
from healthcode.codes.card import (
    find_cjk_font,
    render_card,
    write_card_pdf,
    write_card_png,
)
from healthcode.codes.errors import CodeError, NoCodeInImage, RegionNotServed
from healthcode.codes.format import PREFIX, Colour, Issuer, Purpose
from healthcode.codes.keys import KeyRecord, KeyRole, KeyStore, SigningKey
from healthcode.codes.services import (
    KEY_DIR_ENV,
    CodeService,
    IssuedCode,
    local_verifier,
)
from healthcode.codes.statuslist import (
    StatusList,
    build_status_list,
    check_paper_code,
    load_status_list,
)
from healthcode.codes.trust import (
    DEFAULT_TRUST_LIST_TTL,
    Verifier,
    load_trust_list,
    sign_trust_list,
)
from healthcode.config import get_settings
from healthcode.db import open_database
from healthcode.errors import HealthcodeError
from healthcode.identity import divisions
from healthcode.identity.documents import parse_document
from healthcode.identity.services import get_resident
from healthcode.regions.services import instance_verifier, peer_store

_T = TypeVar("_T")

keys_app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Generate, list, rotate, retire and revoke signing keys.",
)

KeyDir = Annotated[
    Path,
    typer.Option(
        "--dir",
        envvar=KEY_DIR_ENV,
        help=f"Key store directory (default: ${KEY_DIR_ENV}, else ./keys).",
        file_okay=False,
    ),
]
Role = Annotated[KeyRole, typer.Option("--role", help="What the key signs.")]


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _fail(exc: HealthcodeError) -> typer.Exit:
    typer.echo(f"error [{exc.code}]: {exc}", err=True)
    return typer.Exit(1)


def _show(record: KeyRecord, at: datetime) -> str:
    return f"{record.name}  {record.role.value}  {record.state(at).value}"


@keys_app.command("generate")
def generate(
    region: Annotated[str, typer.Argument(help="GB/T 2260 code of the region.")],
    directory: KeyDir = Path("keys"),
    role: Role = KeyRole.CODE,
) -> None:
    """Create the first key of a region (and its subject secret)."""
    at = _now()
    try:
        record = KeyStore(directory).generate(region, at, role)
    except HealthcodeError as exc:
        raise _fail(exc) from None
    typer.echo(f"generated {_show(record, at)}")


@keys_app.command("list")
def list_keys(
    directory: KeyDir = Path("keys"),
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the public records as JSON.")
    ] = False,
) -> None:
    """List every key with its state now; never prints private material."""
    at = _now()
    try:
        records = KeyStore(directory).records()
    except HealthcodeError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in records], indent=2))
        return
    table = Table("key", "role", "state", "valid from", "signs until", "accepted until")
    for record in records:
        accepted = _when(record.accept_until)
        if record.revoked_at is not None:
            accepted = f"revoked {_when(record.revoked_at)}"
        table.add_row(
            record.name,
            record.role.value,
            record.state(at).value,
            _when(record.valid_from),
            _when(record.sign_until),
            accepted,
        )
    Console().print(table)


@keys_app.command("rotate")
def rotate(
    region: Annotated[str, typer.Argument(help="GB/T 2260 code of the region.")],
    directory: KeyDir = Path("keys"),
    role: Role = KeyRole.CODE,
    overlap_days: Annotated[
        float, typer.Option(help="Days the old key's codes stay accepted.")
    ] = 14.0,
    lead_hours: Annotated[
        float,
        typer.Option(help="Hours before the new key signs, to publish it first."),
    ] = 0.0,
) -> None:
    """Replace a region's signing key, keeping the old one accepted a while."""
    at = _now()
    try:
        record = KeyStore(directory).rotate(
            region,
            at,
            role,
            overlap=timedelta(days=overlap_days),
            lead=timedelta(hours=lead_hours),
        )
    except HealthcodeError as exc:
        raise _fail(exc) from None
    typer.echo(
        f"rotated to {_show(record, at)}, signing from {_when(record.valid_from)}"
    )


@keys_app.command("retire")
def retire(
    region: Annotated[str, typer.Argument(help="GB/T 2260 code of the region.")],
    key_id: Annotated[str, typer.Argument(help="Key id, eight hex digits.")],
    directory: KeyDir = Path("keys"),
    overlap_hours: Annotated[
        float, typer.Option(help="Hours its codes stay accepted after now.")
    ] = 0.0,
) -> None:
    """Stop a key signing now and accepting its codes after the overlap."""
    at = _now()
    try:
        record = KeyStore(directory).retire(
            region, key_id, at, overlap=timedelta(hours=overlap_hours)
        )
    except HealthcodeError as exc:
        raise _fail(exc) from None
    typer.echo(f"retired {_show(record, at)}")


@keys_app.command("revoke")
def revoke(
    region: Annotated[str, typer.Argument(help="GB/T 2260 code of the region.")],
    key_id: Annotated[str, typer.Argument(help="Key id, eight hex digits.")],
    directory: KeyDir = Path("keys"),
) -> None:
    """Reject every code a key ever signed, from now on, and delete the key."""
    at = _now()
    try:
        record = KeyStore(directory).revoke(region, key_id, at)
    except HealthcodeError as exc:
        raise _fail(exc) from None
    typer.echo(f"revoked {_show(record, at)}")


@keys_app.command("trust-list")
def trust_list(
    signer: Annotated[
        str, typer.Option(help="Region whose trust-list key signs the list.")
    ],
    out: Annotated[Path, typer.Option(help="File to write the trust list to.")],
    directory: KeyDir = Path("keys"),
    add: Annotated[
        list[Path] | None,
        typer.Option(
            help="JSON file of other regions' key records (keys list --json)."
        ),
    ] = None,
    valid_days: Annotated[
        float, typer.Option(help="Days the trust list stays valid.")
    ] = DEFAULT_TRUST_LIST_TTL.days,
) -> None:
    """Sign a trust list of this store's code and peer keys and any records added."""
    at = _now()
    store = KeyStore(directory)
    try:
        records = [r for r in store.records() if r.role in (KeyRole.CODE, KeyRole.PEER)]
        for path in add or []:
            records += _read_records(path)
        signing_key = store.signing_key(signer, at, KeyRole.TRUST_LIST)
        document = sign_trust_list(
            records, signing_key, at, at + timedelta(days=valid_days)
        )
    except HealthcodeError as exc:
        raise _fail(exc) from None
    out.write_bytes(document)
    typer.echo(f"wrote a trust list of {len(records)} key records to {out}")


def _read_records(path: Path) -> list[KeyRecord]:
    try:
        data = json.loads(path.read_text("utf-8"))
        items = data if isinstance(data, list) else [data]
        return [KeyRecord.from_json(item) for item in items]
    except (OSError, ValueError) as exc:
        raise CodeError(f"The key records in {path} cannot be read: {exc}") from None


def _when(at: datetime | None) -> str:
    if at is None:
        return "-"
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


# Benchmark

BENCH_REGION = "310000"
BENCH_NAMES = {
    "screen, 3-char name masked (张**)": "张**",
    "screen, 3-char name in full (张三丰)": "张三丰",
    "screen, 3 chars outside the BMP": "𠅤𠀀𠀁",
}


def bench_codes(
    eu_dcc: Annotated[
        Path | None,
        typer.Option(help="Folder of the EU DCC test payloads (shared test data)."),
    ] = None,
    seconds: Annotated[
        float, typer.Option(help="Seconds to run each speed measurement.")
    ] = 1.0,
) -> None:
    """Print QR sizes of our codes beside the EU DCC payloads, and their speed."""
    console = Console()
    at = _now()
    signing_key = SigningKey.from_seed(os.urandom(32), BENCH_REGION, at)
    issuer = Issuer(signing_key, os.urandom(32))
    verifier = Verifier([signing_key.record])

    sizes = Table(title="QR size at error level M (version, modules per side)")
    for column in ("code", "payloads", "characters", "version", "modules"):
        sizes.add_column(column, justify="left" if column == "code" else "right")
    for label, name in BENCH_NAMES.items():
        text = issuer.screen_code(1, name, Colour.GREEN, at)
        version, width = qr.symbol_size(text)
        sizes.add_row(
            f"healthcode {label}", "1", str(len(text)), *_sizes([version], [width])
        )
    paper = issuer.paper_code(1, "张**", 12_345_678, at)
    version, width = qr.symbol_size(paper)
    sizes.add_row(
        "healthcode paper, 3-char name masked",
        "1",
        str(len(paper)),
        str(version),
        str(width),
    )

    directory = eu_dcc if eu_dcc is not None else _find_eu_dcc()
    note = None
    if directory is None or not directory.is_dir():
        note = (
            "The EU DCC test payloads were not found (looked for"
            " ../shared/testdata/eu-dcc); their rows are left out."
        )
    else:
        for country, (versions, widths, lengths) in sorted(
            _eu_sizes(directory).items()
        ):
            sizes.add_row(
                f"EU DCC {country}",
                str(len(versions)),
                f"{min(lengths)}-{max(lengths)}",
                *_sizes(versions, widths),
            )
    console.print(sizes)
    if note:
        console.print(note)

    console.print(_speed_table(signing_key, issuer, verifier, at, seconds))
    console.print(_status_list_table(signing_key, verifier, at))


def _sizes(versions: list[int], widths: list[int]) -> tuple[str, str]:
    if min(versions) == max(versions):
        return str(versions[0]), str(widths[0])
    return (
        f"{min(versions)}-{max(versions)} (median {statistics.median(versions):g})",
        f"{min(widths)}-{max(widths)}",
    )


def _find_eu_dcc() -> Path | None:
    # The package is installed from the repository in place, so the shared
    # data sits beside the repository root; from elsewhere, try the working
    # directory's parent as the tests do.
    repo_root = Path(__file__).resolve().parents[3]
    for base in (repo_root, Path.cwd()):
        candidate = (base / ".." / "shared" / "testdata" / "eu-dcc").resolve()
        if candidate.is_dir():
            return candidate
    return None


def _eu_sizes(directory: Path) -> dict[str, tuple[list[int], list[int], list[int]]]:
    found: dict[str, tuple[list[int], list[int], list[int]]] = defaultdict(
        lambda: ([], [], [])
    )
    for path in sorted(directory.rglob("*.json")):
        try:
            text = json.loads(path.read_text("utf-8")).get("PREFIX")
        except (OSError, ValueError, AttributeError):
            continue
        if not isinstance(text, str) or not text:
            continue
        version, width = qr.symbol_size(text)
        country = path.relative_to(directory).parts[0]
        versions, widths, lengths = found[country]
        versions.append(version)
        widths.append(width)
        lengths.append(len(text))
    return dict(found)


def _rate(action: Callable[[], object], seconds: float) -> float:
    count = 0
    start = clock.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(64):
            action()
        count += 64
        now = clock.perf_counter()
        if now >= deadline:
            return count / (now - start)


def _speed_table(
    signing_key: SigningKey,
    issuer: Issuer,
    verifier: Verifier,
    at: datetime,
    seconds: float,
) -> Table:
    message = os.urandom(100)
    signature = signing_key.sign(message)
    public_key = signing_key.record.verifying_key()
    text = issuer.screen_code(1, "张**", Colour.GREEN, at)

    # Other work on the machine slows some measurements more than others, so
    # the four run in turn for several short rounds and each keeps its best:
    # the ratios then compare like with like.
    actions: dict[str, Callable[[], object]] = {
        "raw_sign": lambda: signing_key.private_key.sign(message),
        "raw_verify": lambda: public_key.verify(signature, message),
        "issue": lambda: issuer.screen_code(1, "张**", Colour.GREEN, at),
        "verify": lambda: verifier.verify(text, at),
    }
    best = dict.fromkeys(actions, 0.0)
    rounds = 5
    for _ in range(rounds):
        for label, action in actions.items():
            best[label] = max(best[label], _rate(action, seconds / rounds))
    raw_sign, raw_verify = best["raw_sign"], best["raw_verify"]
    issue, verify = best["issue"], best["verify"]

    library = (
        f"cryptography {cryptography.__version__},"
        f" {openssl_backend.openssl_version_text()}, Python {platform.python_version()}"
    )
    table = Table(title=f"Ed25519 per second, one core ({library})")
    for column in ("operation", "per second", "ratio to raw"):
        table.add_column(column, justify="left" if column == "operation" else "right")
    table.add_row("raw Ed25519 sign (100 bytes)", f"{raw_sign:,.0f}", "1.00")
    table.add_row("raw Ed25519 verify (100 bytes)", f"{raw_verify:,.0f}", "1.00")
    table.add_row(
        "issue a screen code (build, seal, sign, encode)",
        f"{issue:,.0f}",
        f"{issue / raw_sign:.2f}",
    )
    table.add_row(
        "verify a screen code (decode, check, verify)",
        f"{verify:,.0f}",
        f"{verify / raw_verify:.2f}",
    )
    return table


def _status_list_table(
    signing_key: SigningKey, verifier: Verifier, at: datetime
) -> Table:
    residents = 20_000_000
    table = Table(title=f"Status list for {residents:,} residents")
    for column in ("not green", "bytes", "bytes per resident"):
        table.add_column(column, justify="right")
    rng = random.Random(2260)
    colours = (Colour.YELLOW, Colour.RED, Colour.GREY)
    for share in (0.001, 0.01, 0.05):
        listed = rng.sample(range(residents), int(residents * share))
        document = build_status_list(
            {index: rng.choice(colours) for index in listed},
            residents,
            signing_key,
            at,
        )
        size = load_status_list(document, verifier, at).size
        table.add_row(f"{share:.1%}", f"{size:,}", f"{size / residents:.4f}")
    return table


# Residents' codes: issue, verify, print a card

REGION_ENV = "HEALTHCODE_REGION"

IssuingRegion = Annotated[
    str | None,
    typer.Option(
        "--region",
        envvar=REGION_ENV,
        help=f"GB/T 2260 code of the issuing region (default: ${REGION_ENV}, else"
        " the prefecture of the resident's residence).",
    ),
]
DocumentKindOption = Annotated[
    str, typer.Option("--kind", help="Document kind: cn-id, passport, ...")
]
CountryOption = Annotated[
    str, typer.Option("--country", help="Issuing country (ISO alpha-3), for passports.")
]

_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp"})

COLOUR_WORDS = {
    Colour.GREEN: "绿码 green",
    Colour.YELLOW: "黄码 yellow",
    Colour.RED: "红码 red",
    Colour.GREY: "灰码 grey",
}
_COLOUR_FG = {
    Colour.GREEN: typer.colors.GREEN,
    Colour.YELLOW: typer.colors.YELLOW,
    Colour.RED: typer.colors.RED,
    Colour.GREY: typer.colors.WHITE,
}


def _colour_word(colour: Colour) -> str:
    return typer.style(COLOUR_WORDS[colour], fg=_COLOUR_FG[colour], bold=True)


def _local_time(at: datetime) -> str:
    settings = get_settings()
    return f"{at.astimezone(settings.tz):%Y-%m-%d %H:%M:%S} {settings.zone}"


def _issue(
    document: str,
    kind: str,
    country: str,
    directory: Path,
    region: str | None,
    make: Callable[[CodeService, Session, int, datetime], _T],
) -> _T:
    """Find the resident and issue with ``make`` in one committed transaction."""
    settings = get_settings()
    at = _now()
    doc = parse_document(
        kind, document, country, today=at.astimezone(settings.tz).date()
    )
    service = CodeService(KeyStore(directory), region=region, zone=settings.tz)
    # --region names the instance's region where HEALTHCODE_REGION is unset;
    # it cannot make an instance configured for one region sign for another.
    if settings.region is not None and service.region != settings.region:
        raise RegionNotServed(
            f"This instance issues codes for region {settings.region}"
            f" (${REGION_ENV}), so it issues none for --region {service.region}."
        )
    engine = open_database()
    try:
        with Session(engine) as session, session.begin():
            resident = get_resident(session, doc)
            return make(service, session, resident.id, at)
    finally:
        engine.dispose()


def _echo_issued(issued: IssuedCode) -> None:
    if issued.colour is not None:
        what = f"screen code  {_colour_word(issued.colour)}"
    else:
        what = "paper code (colour read from the day's status list)"
    version, width = qr.symbol_size(issued.text)
    typer.echo(f"{what}  {issued.masked_name}")
    typer.echo(
        f"issued by {issued.region} {issued.region_name}, key {issued.key_name};"
        f" valid until {_local_time(issued.valid_until)}"
    )
    typer.echo(
        f"QR version {version}, {width} x {width} modules,"
        f" {len(issued.text)} characters"
    )
    typer.echo(issued.text)


def code_command(
    document: Annotated[str, typer.Argument(help="The identity document number.")],
    kind: DocumentKindOption = "cn-id",
    country: CountryOption = "",
    png: Annotated[
        Path | None, typer.Option(dir_okay=False, help="Write the QR code as PNG.")
    ] = None,
    svg: Annotated[
        Path | None, typer.Option(dir_okay=False, help="Write the QR code as SVG.")
    ] = None,
    paper: Annotated[
        bool,
        typer.Option(
            "--paper", help="Issue a paper code (no colour, lives 14 days) instead."
        ),
    ] = False,
    directory: KeyDir = Path("keys"),
    region: IssuingRegion = None,
) -> None:
    """Issue a resident's current code, print its text and render it.

    A screen code shows the colour of the resident's status now, and its QR
    code is drawn in that colour; a paper code carries none.
    """

    def make(
        service: CodeService, session: Session, resident_id: int, at: datetime
    ) -> IssuedCode:
        if paper:
            return service.paper_code(session, resident_id, at)
        return service.screen_code(session, resident_id, at)

    try:
        issued = _issue(document, kind, country, directory, region, make)
    except HealthcodeError as exc:
        raise _fail(exc) from None
    _echo_issued(issued)
    if png is not None:
        qr.write_png(issued.text, png, issued.colour)
        typer.echo(f"wrote {png}")
    if svg is not None:
        qr.write_svg(issued.text, svg, issued.colour)
        typer.echo(f"wrote {svg}")


def card_command(
    document: Annotated[str, typer.Argument(help="The identity document number.")],
    kind: DocumentKindOption = "cn-id",
    country: CountryOption = "",
    png: Annotated[
        Path | None, typer.Option(dir_okay=False, help="Write the card as PNG.")
    ] = None,
    pdf: Annotated[
        Path | None, typer.Option(dir_okay=False, help="Write the card as PDF.")
    ] = None,
    directory: KeyDir = Path("keys"),
    region: IssuingRegion = None,
) -> None:
    """Issue a paper code and render its printable card (A6, large print)."""
    if png is None and pdf is None:
        typer.echo("error: give --png FILE, --pdf FILE or both.", err=True)
        raise typer.Exit(2)
    try:
        # The font is looked for first, so that a machine that cannot print
        # the card says so before a code is issued for nothing.
        font = find_cjk_font()
        issued, content = _issue(
            document,
            kind,
            country,
            directory,
            region,
            lambda service, session, resident_id, at: service.paper_card(
                session, resident_id, at
            ),
        )
    except HealthcodeError as exc:
        raise _fail(exc) from None
    image = render_card(content, font)
    _echo_issued(issued)
    if png is not None:
        write_card_png(image, png)
        typer.echo(f"wrote {png}")
    if pdf is not None:
        write_card_pdf(image, pdf)
        typer.echo(f"wrote {pdf}")


def status_list_command(
    out: Annotated[
        Path, typer.Option(dir_okay=False, help="File to write the status list to.")
    ],
    region: Annotated[
        str | None,
        typer.Option(
            "--region",
            envvar=REGION_ENV,
            help=f"GB/T 2260 code of the region (default: ${REGION_ENV}).",
        ),
    ] = None,
    directory: KeyDir = Path("keys"),
) -> None:
    """Sign today's status list of a region: its residents who are not green."""
    if region is None:
        typer.echo(f"error: give --region or set ${REGION_ENV}.", err=True)
        raise typer.Exit(2)
    settings = get_settings()
    at = _now()
    try:
        configured = os.environ.get(REGION_ENV) or None
        service = CodeService(KeyStore(directory), region=configured, zone=settings.tz)
        engine = open_database()
        try:
            with Session(engine) as session, session.begin():
                document = service.status_list(session, region, at)
        finally:
            engine.dispose()
        held = load_status_list(document, local_verifier(service.store), at)
    except HealthcodeError as exc:
        raise _fail(exc) from None
    out.write_bytes(document)
    listed = sum(held.count(c) for c in (Colour.YELLOW, Colour.RED, Colour.GREY))
    typer.echo(
        f"wrote the status list of region {held.region} to {out}: {listed} not"
        f" green of {held.index_space} indices, {held.size} bytes, valid until"
        f" {_local_time(held.valid_until)}"
    )


def verify_command(
    text: Annotated[
        str | None,
        typer.Argument(help="The code's text, or the path of an image of it."),
    ] = None,
    image: Annotated[
        Path | None,
        typer.Option(
            "--image", exists=True, dir_okay=False, help="An image holding the code."
        ),
    ] = None,
    directory: KeyDir = Path("keys"),
    trust_list: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="A signed trust list, to accept the codes of the regions it lists.",
        ),
    ] = None,
    anchors: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="JSON records of the trust anchors (keys list --json);"
            " default: the trust-list keys in the key store.",
        ),
    ] = None,
    status_list: Annotated[
        list[Path] | None,
        typer.Option(
            "--status-list",
            exists=True,
            dir_okay=False,
            help="A region's signed status list, for paper codes; repeatable.",
        ),
    ] = None,
    now: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"],
            help="The moment of the check, with its offset (default: now).",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the verdict as JSON.")
    ] = False,
) -> None:
    """Verify a code offline against the trust material held here.

    The keys are the public records in the key store, those of the peer
    regions imported into it, and those of a trust list if one is given; a
    paper code takes its colour from the status list of its region. Exits 0
    when the code is accepted, 1 when it is refused, 2 when the trust
    material itself cannot be used.
    """
    moment = _now() if now is None else now.astimezone(UTC)
    if (text is None) == (image is None):
        typer.echo("error: give the code's text or --image FILE, not both.", err=True)
        raise typer.Exit(2)
    if text is not None and not text.startswith(PREFIX):
        if Path(text).is_file():
            image, text = Path(text), None
        elif Path(text).suffix.lower() in _IMAGE_SUFFIXES:
            typer.echo(f"error: there is no image file at {text}.", err=True)
            raise typer.Exit(2)
    try:
        verifier = _checkpoint_verifier(directory, trust_list, anchors, moment)
        lists = {}
        for path in status_list or []:
            held = load_status_list(path.read_bytes(), verifier, moment)
            lists[held.region] = held
    except (HealthcodeError, OSError) as exc:
        code = getattr(exc, "code", "unreadable_file")
        typer.echo(f"error [{code}]: {exc}", err=True)
        raise typer.Exit(2) from None

    verdict = _verdict(text, image, verifier, lists, moment)
    if as_json:
        typer.echo(json.dumps(verdict, ensure_ascii=False, indent=2))
    elif verdict["accepted"]:
        colour = Colour(verdict["colour"])
        purpose = verdict["purpose"]
        typer.echo(
            f"accepted  {_colour_word(colour)}  {verdict['masked_name']}"
            f"  {purpose} code of region {verdict['region']}"
            f" {verdict['region_name']}"
        )
        line = f"valid until {_local_time(_parse_when(verdict['valid_until']))}"
        if verdict.get("status_list_issued_at"):
            issued = _parse_when(verdict["status_list_issued_at"])
            age = _age(verdict["status_list_age_seconds"])
            line += f"; colour from the status list of {_local_time(issued)} ({age})"
        typer.echo(line)
    else:
        typer.echo(f"refused [{verdict['code']}]  {verdict['message']}")
    if not verdict["accepted"]:
        raise typer.Exit(1)


def _checkpoint_verifier(
    directory: Path, trust_list: Path | None, anchors: Path | None, at: datetime
) -> Verifier:
    # The key store's own code keys and those of every peer region whose
    # trust list was imported into it (``healthcode peers add``).
    store = KeyStore(directory)
    records = store.records()
    local = instance_verifier(store, peer_store(directory), at)
    if trust_list is None:
        return local
    held = {(r.region, r.key_id): r for r in local.keys}
    anchor_records = (
        _read_records(anchors)
        if anchors is not None
        else [r for r in records if r.role is KeyRole.TRUST_LIST]
    )
    listed = load_trust_list(trust_list.read_bytes(), anchor_records, at)
    for record in listed.code_keys:
        # The store's own record of a key is the newer word on it: a
        # retirement written here reaches the trust list only when the
        # next list is signed.
        held.setdefault((record.region, record.key_id), record)
    return Verifier(held.values())


def _verdict(
    text: str | None,
    image: Path | None,
    verifier: Verifier,
    lists: dict[str, StatusList],
    at: datetime,
) -> dict[str, object]:
    try:
        if image is not None:
            text = _text_in_image(image)
        code = verifier.verify(text, at)
        verdict: dict[str, object] = {}
        if code.purpose is Purpose.PAPER:
            check = check_paper_code(text, verifier, lists, at)
            colour = check.colour
            verdict["status_list_issued_at"] = _iso(check.list_issued_at)
            verdict["status_list_age_seconds"] = int(check.list_age.total_seconds())
        else:
            colour = code.colour
    except CodeError as exc:
        return {"accepted": False, "code": exc.code, "message": str(exc)}
    content = code.content
    return {
        "accepted": True,
        "code": "valid",
        "message": "The code is valid.",
        "purpose": content.purpose.name.lower(),
        "colour": str(colour),
        "masked_name": content.masked_name,
        "region": content.region,
        "region_name": _region_name(content.region),
        "key": content.key_name,
        "issued_at": _iso(content.issued_at),
        "valid_until": _iso(content.valid_until),
        **verdict,
    }


def _text_in_image(path: Path) -> str:
    try:
        texts = qr.read_texts(path)
    except (OSError, ValueError) as exc:
        raise NoCodeInImage(f"The image {path} cannot be read: {exc}") from None
    if len(texts) != 1:
        found = "no QR code" if not texts else f"{len(texts)} QR codes"
        raise NoCodeInImage(
            f"The image {path} holds {found}; it must hold exactly one."
        )
    return texts[0]


def _region_name(region: str) -> str:
    try:
        return divisions.full_name(region)
    except HealthcodeError:
        # A region of another country's scheme or a code retired from the
        # table still verifies; it is only shown by its number.
        return ""


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_when(text: object) -> datetime:
    return datetime.fromisoformat(str(text))


def _age(seconds: object) -> str:
    minutes = int(str(seconds)) // 60
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min old"
