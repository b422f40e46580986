"""Command line for keys and for the size and speed of codes.

``keys_app`` is a typer application (``healthcode keys ...``) that manages
the key store; ``bench_codes`` prints how large our codes are beside the EU
DCC test payloads and how fast they are issued and verified. The clock is
read here, at the edge, and handed to the domain code as a parameter.
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
from typing import Annotated

import cryptography
import typer
from cryptography.hazmat.backends.openssl.backend import backend as openssl_backend
from rich.console import Console
from rich.table import Table

from healthcode.codes import qr
from healthcode.codes.errors import CodeError
from healthcode.codes.format import Colour, Issuer
from healthcode.codes.keys import KeyRecord, KeyRole, KeyStore, SigningKey
from healthcode.codes.statuslist import build_status_list, load_status_list
from healthcode.codes.trust import DEFAULT_TRUST_LIST_TTL, Verifier, sign_trust_list
from healthcode.errors import HealthcodeError

KEY_DIR_ENV = "HEALTHCODE_KEY_DIR"

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
    """Sign a trust list of this store's code keys and any records added."""
    at = _now()
    store = KeyStore(directory)
    try:
        records = [r for r in store.records() if r.role is KeyRole.CODE]
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
