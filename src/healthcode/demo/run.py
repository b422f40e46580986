"""The demo job: a synthetic Xi'an, two days of feeds, colours with reasons.

The job runs the main path of the platform on real-shaped input. It writes
the city's feeds as files, imports them through :func:`import_feed` exactly
as a department's upload would go, recolours, and shows what came out. Then
it imports a second day and shows who changed colour and why. Along the way
it checks the outcome against what the city was built to produce (every
role's expected colour, every planted bad row reported by line), so that
the demo is also a test of the whole: :attr:`DemoResult.ok` is false, and
the command exits non-zero, when anything came out otherwise.

After day two it issues screen codes for the residents it explained, writes
their PNGs under ``codes/``, reads each image back and verifies it offline
with nothing but the public key records, as a checkpoint would.

Day two is the moment the demo ends, ``now`` by default; day one is 24
hours earlier. Ending in the present means that ``healthcode status`` run
straight after the demo reads the same colours the demo printed.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich import box
from rich.console import Console
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthcode.codes import qr
from healthcode.codes.errors import CodeError
from healthcode.codes.keys import KeyStore
from healthcode.codes.services import CodeService, issuing_region_of, local_verifier
from healthcode.config import get_settings
from healthcode.db import open_database
from healthcode.demo.city import (
    CITY_CODE,
    COUNTY_DAY_TWO,
    EXPECTED,
    STREET_DISTRICT,
    STREET_NAME,
    City,
    Person,
    WrittenFeed,
    build_city,
    write_day_one,
    write_day_two,
)
from healthcode.demo.errors import DatabaseNotEmpty
from healthcode.demo.tracing import trace_reported_case
from healthcode.feeds.services import ImportReport, RowError, import_feed
from healthcode.identity import divisions
from healthcode.identity.documents import parse_document
from healthcode.identity.models import Resident
from healthcode.identity.names import mask_name
from healthcode.identity.services import register_resident
from healthcode.privacy.crypto import DataKeys
from healthcode.privacy.types import using_keys
from healthcode.status.models import Status, StatusEvent
from healthcode.status.services import (
    StatusView,
    colour_counts,
    current_status,
    recolor_all,
    recolor_due,
    recolor_residents,
)

__all__ = ["DEFAULT_DIRECTORY", "Change", "DemoCode", "DemoResult", "Step", "run_demo"]

#: Where the demo writes its feeds and, unless told otherwise, its database.
DEFAULT_DIRECTORY = Path("healthcode-demo")
# The demo's data keys, inside its directory (HEALTHCODE_DATA_KEY_DIR).
DATA_KEY_FOLDER = "data-keys"

COLOURS = ("green", "yellow", "red", "grey")
_STYLE = {"green": "green", "yellow": "yellow", "red": "red", "grey": "bright_black"}
_WORDS = {"green": "绿码", "yellow": "黄码", "red": "红码", "grey": "灰码"}


@dataclass(frozen=True, slots=True)
class Step:
    """One timed step of the demo."""

    name: str
    seconds: float


@dataclass(frozen=True, slots=True)
class Change:
    """A resident whose colour differs after day two, and why."""

    person: Person
    resident_id: int
    old: str
    new: str
    rules: tuple[str, ...]
    causes: tuple[str, ...]
    #: The risk areas named by the new colour's reasons, if any.
    places: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DemoCode:
    """A screen code the demo issued, and what reading its PNG back gave."""

    person: Person
    masked_name: str
    colour: str
    version: int
    path: Path
    #: "valid" when the image read back verified, else the refusal's code.
    outcome: str

    @property
    def verified(self) -> bool:
        return self.outcome == "valid"


@dataclass
class DemoResult:
    """Everything the demo did, for the command to report and tests to check."""

    directory: Path
    database_url: str
    city: City
    imports: list[tuple[int, WrittenFeed, ImportReport]] = field(default_factory=list)
    counts: dict[int, dict[str, int]] = field(default_factory=dict)
    colours: dict[int, dict[int, str]] = field(default_factory=dict)
    resident_ids: dict[int, int] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    documents: list[tuple[str, Person, str]] = field(default_factory=list)
    codes: list[DemoCode] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every import committed and every check held."""
        return not self.problems

    @property
    def rejected(self) -> list[tuple[WrittenFeed, RowError]]:
        """Every row an import refused, with the file it came from."""
        return [
            (feed, error) for _, feed, report in self.imports for error in report.errors
        ]

    def colour_of(self, person: Person, day: int) -> str | None:
        """The colour ``person`` had after ``day`` (1 or 2)."""
        resident_id = self.resident_ids.get(person.index)
        if resident_id is None:
            return None
        return self.colours.get(day, {}).get(resident_id)


def run_demo(
    *,
    residents: int = 20000,
    directory: Path = DEFAULT_DIRECTORY,
    database_url: str | None = None,
    now: datetime | None = None,
    seed: int = 7,
    console: Console,
) -> DemoResult:
    """Build the city, import two days of its feeds, print what came out.

    ``now`` is the moment of day two (the present when not given); it must
    be aware. Without ``database_url`` the demo uses a fresh SQLite file in
    ``directory``, replacing the one an earlier run left; a database named
    by URL must not hold residents yet. Its data keys are those in
    ``directory/data-keys`` and its code signing keys ``directory/keys``,
    wherever the demo is run from.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with using_keys(DataKeys(directory / DATA_KEY_FOLDER)):
        return _run_demo(
            residents=residents,
            directory=directory,
            database_url=database_url,
            now=now,
            seed=seed,
            console=console,
        )


def _run_demo(
    *,
    residents: int,
    directory: Path,
    database_url: str | None,
    now: datetime | None,
    seed: int,
    console: Console,
) -> DemoResult:
    if now is None:
        now = datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    settings = get_settings()
    zone = settings.tz
    if database_url is None:
        database_url = _fresh_sqlite(directory)
    timer = _Timer()

    with timer.step("build the city"):
        city = build_city(residents, now=now, seed=seed, zone=zone)
    result = DemoResult(directory, database_url, city)
    result.steps = timer.steps
    _print_header(console, city, directory, database_url)

    with timer.step("open the database"):
        engine = open_database(database_url)
    try:
        _check_empty(engine)
        with timer.step("write day-one feeds"):
            day_one_files = write_day_one(city, directory)
        with timer.step("register visitors"):
            _register_visitors(engine, city)

        console.rule("[bold]Day one")
        with timer.step("import day one"):
            _import_all(console, engine, result, 1, day_one_files, recolor=False)
        _print_imports(console, result, 1)
        _print_rejected(console, result)
        _check_rejected(result, day_one_files)

        with timer.step("recolour everyone (day one)"):
            _recolor_everyone(console, engine, city.day_one, residents)
        result.resident_ids = _resident_ids(engine, city)
        _snapshot(engine, result, 1)
        _print_counts(console, engine, result, 1)
        with timer.step("explain five residents"):
            _print_samples(console, engine, result)

        console.rule("[bold]Day two")
        with timer.step("write day-two feeds"):
            day_two_files = write_day_two(city, directory)
        before = _rules_by_resident(engine)
        with timer.step("import day two"):
            _import_all(console, engine, result, 2, day_two_files, recolor=True)
        _print_imports(console, result, 2)
        _check_rejected(result, day_two_files)
        with timer.step("recolour those due (day two)"):
            due = recolor_due(engine, city.day_two)
        console.print(
            f"Time-based check: {due.residents} residents were due for a new look"
            f" at {_local(city.day_two, city)}; {due.colour_changes} changed colour"
            " without any new record."
        )
        _snapshot(engine, result, 2)
        result.changes = _changes(engine, result, before)
        _print_changes(console, result)
        _print_counts(console, engine, result, 2)
        with timer.step("trace the reported case"):
            traced = trace_reported_case(
                console, engine, result.city, result.resident_ids
            )
        result.problems.extend(traced.problems)
        with timer.step("issue and verify codes"):
            result.codes = _issue_codes(engine, result)
        _print_codes(console, result)
    finally:
        engine.dispose()

    _check_colours(result)
    _print_steps(console, result)
    result.documents = _documents_to_try(result)
    _print_documents(console, result)
    _print_verdict(console, result)
    return result


# Set-up.


def _fresh_sqlite(directory: Path) -> str:
    path = directory / "healthcode.db"
    # Each run starts a new city, so the previous run's database goes; its
    # write-ahead log and shared-memory files with it.
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    for day in ("day-1", "day-2"):
        shutil.rmtree(directory / day, ignore_errors=True)
    return f"sqlite:///{path.resolve()}"


def _check_empty(engine: Engine) -> None:
    with engine.connect() as connection:
        count = connection.execute(sa.select(sa.func.count(Resident.id))).scalar_one()
    if count:
        raise DatabaseNotEmpty(
            f"The database already holds {count} residents; the demo builds its"
            " own city and needs an empty database."
        )


def _register_visitors(engine: Engine, city: City) -> None:
    """Register the foreign visitors, who are in no department's feed.

    A visitor registers in the app with a passport; no mainland registry
    confirms a passport, so the resident stays grey ("identity being
    confirmed") until an entry record or an official does. They go through
    the same registration service the app uses.
    """
    registered_at = city.day_one - timedelta(hours=30)
    with Session(engine) as session, session.begin():
        for person in city.people:
            if not person.is_visitor:
                continue
            document = parse_document(
                person.doc_kind,
                person.doc_number,
                person.doc_country,
                today=registered_at.date(),
            )
            resident = register_resident(
                session,
                document,
                person.name,
                registered_at,
                region_code=person.region_code,
            )
            resident.street = person.street


# Importing and recolouring.


def _import_all(
    console: Console,
    engine: Engine,
    result: DemoResult,
    day: int,
    files: list[WrittenFeed],
    *,
    recolor: bool,
) -> None:
    settings = get_settings()
    city = result.city
    moment = city.day_one if day == 1 else city.day_two
    # Files that carry planted bad rows are imported with skip-bad, so the
    # good rows go in and the bad ones are reported; every other file is
    # all-or-nothing, the importer's default.
    skipping = [f.path.name for f in files if f.planted]
    if skipping:
        console.print(
            f"{' and '.join(skipping)} hold rows the sender got wrong; they are"
            " imported with [bold]--skip-bad[/bold], so the good rows go in and"
            " the bad ones are reported. Every other file is all-or-nothing."
        )
    with Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        for feed in files:
            task = progress.add_task(feed.path.name, total=feed.path.stat().st_size)

            def advance(done: int, size: int, task: Any = task) -> None:
                progress.update(task, completed=done, total=size)

            report = import_feed(
                engine,
                feed.kind,
                feed.path,
                now=moment,
                zone=settings.tz,
                future_skew=settings.future_skew,
                skip_bad=bool(feed.planted),
                recolor=recolor_residents if recolor else None,
                progress=advance,
            )
            result.imports.append((day, feed, report))
            if not report.committed:
                result.problems.append(
                    f"Day {day}: {feed.path.name} was not imported"
                    f" ({report.rejected} rows rejected)."
                )


def _recolor_everyone(
    console: Console, engine: Engine, moment: datetime, total: int
) -> None:
    with Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("recolouring", total=total)
        report = recolor_all(
            engine, moment, progress=lambda n: progress.advance(task, n)
        )
    rate = report.residents / report.seconds if report.seconds else 0.0
    console.print(
        f"Recoloured {report.residents} residents in {report.seconds:.2f} s"
        f" ({rate:,.0f} a second); {report.rule_failures} rule failures."
    )


def _resident_ids(engine: Engine, city: City) -> dict[int, int]:
    wanted = {person.key: person.index for person in city.people}
    found: dict[int, int] = {}
    query = sa.select(
        Resident.id, Resident.doc_kind, Resident.doc_country, Resident.doc_number
    )
    with engine.connect() as connection:
        for rid, kind, country, number in connection.execute(query):
            index = wanted.get((kind, country, number))
            if index is not None:
                found[index] = rid
    return found


def _snapshot(engine: Engine, result: DemoResult, day: int) -> None:
    with engine.connect() as connection:
        result.colours[day] = dict(
            connection.execute(sa.select(Status.resident_id, Status.colour)).all()
        )
        result.counts[day] = colour_counts(connection)


def _rules_by_resident(engine: Engine) -> dict[int, tuple[str, tuple[str, ...]]]:
    with engine.connect() as connection:
        return {
            rid: (colour, tuple(sorted({r["rule"] for r in reasons or []})))
            for rid, colour, reasons in connection.execute(
                sa.select(Status.resident_id, Status.colour, Status.reasons)
            )
        }


def _changes(
    engine: Engine,
    result: DemoResult,
    before: dict[int, tuple[str, tuple[str, ...]]],
) -> list[Change]:
    """Residents whose colour after day two differs from day one's, with why."""
    city = result.city
    people = {rid: city.people[index] for index, rid in result.resident_ids.items()}
    kinds = {
        f"import:{report.import_id}": report.kind
        for day, _, report in result.imports
        if day == 2 and report.import_id is not None
    }
    after = result.colours[2]
    changed = {
        rid
        for rid, colour in after.items()
        if rid in before and before[rid][0] != colour
    }
    causes: dict[int, list[str]] = defaultdict(list)
    new_rules: dict[int, set[str]] = defaultdict(set)
    places: dict[int, list[str]] = defaultdict(list)
    with engine.connect() as connection:
        events = connection.execute(
            sa.select(StatusEvent.resident_id, StatusEvent.cause).where(
                StatusEvent.at >= city.day_two
            )
        )
        for rid, cause in events:
            if rid in changed:
                label = kinds.get(cause, cause)
                if label not in causes[rid]:
                    causes[rid].append(label)
        query = sa.select(Status.resident_id, Status.colour, Status.reasons)
        for rid, colour, reasons in connection.execute(query):
            if rid not in changed:
                continue
            holding = [r for r in reasons if r["colour"] == colour]
            new_rules[rid] = {r["rule"] for r in holding}
            for reason in holding:
                place = _area_name(reason.get("evidence") or {})
                if place and place not in places[rid]:
                    places[rid].append(place)
    changes = []
    for rid in sorted(changed):
        old_colour, old_rules = before[rid]
        new_colour = after[rid]
        if new_colour == "green" or _worse(old_colour, new_colour):
            # Better than before: what explains it is what stopped holding.
            rules = tuple(r for r in old_rules if r not in new_rules[rid])
        else:
            rules = tuple(sorted(new_rules[rid]))
        changes.append(
            Change(
                people[rid],
                rid,
                old_colour,
                new_colour,
                rules,
                tuple(causes.get(rid, ())),
                tuple(places.get(rid, ())),
            )
        )
    return changes


def _worse(old: str, new: str) -> bool:
    order = {"green": 0, "grey": 1, "yellow": 2, "red": 3}
    return order[old] > order[new]


# Codes.


def _issue_codes(engine: Engine, result: DemoResult) -> list[DemoCode]:
    """Issue the sample residents' screen codes, write them, read them back."""
    city = result.city
    folder = result.directory / "codes"
    keys = result.directory / "keys"
    # The demo's keys sign nothing but the demo's codes, and a run may be
    # dated before the last one's keys began; each run starts with its own,
    # as it starts with its own database.
    for stale in (folder, keys):
        shutil.rmtree(stale, ignore_errors=True)
    folder.mkdir(parents=True)
    people = _sample_people(city)
    store = KeyStore(keys)
    for region in sorted({issuing_region_of(p.region_code, None) for p in people}):
        store.generate(region, city.day_two)
    service = CodeService(store, zone=city.zone)
    issued = []
    with Session(engine) as session, session.begin():
        for number, person in enumerate(people, start=1):
            rid = result.resident_ids[person.index]
            issued.append(
                (number, person, service.screen_code(session, rid, city.day_two))
            )

    # The checkpoint holds the public records alone, read from the files.
    verifier = local_verifier(KeyStore(keys))
    codes = []
    for number, person, code in issued:
        path = folder / f"{number}-{person.role}.png"
        qr.write_png(code.text, path, code.colour)
        texts = qr.read_texts(path)
        try:
            if texts != [code.text]:
                raise CodeError("The image did not read back as the code written.")
            verifier.verify(texts[0], city.day_two)
            outcome = "valid"
        except CodeError as exc:
            outcome = exc.code
        version, _ = qr.symbol_size(code.text)
        colour = str(code.colour)
        codes.append(DemoCode(person, code.masked_name, colour, version, path, outcome))
        if outcome != "valid":
            result.problems.append(
                f"The screen code in {path.name} did not verify from its image"
                f" ({outcome})."
            )
        if colour != result.colour_of(person, 2):
            result.problems.append(
                f"The screen code in {path.name} shows {colour}, but the"
                f" resident is {result.colour_of(person, 2)}."
            )
    return codes


# Checks.


def _check_rejected(result: DemoResult, files: list[WrittenFeed]) -> None:
    for feed in files:
        report = next(r for _, f, r in result.imports if f is feed)
        reported = {error.line for error in report.errors}
        planted = {p.line for p in feed.planted}
        for missing in sorted(planted - reported):
            result.problems.append(
                f"{feed.path.name} line {missing}: the planted bad row was not"
                " reported."
            )
        for extra in sorted(reported - planted):
            result.problems.append(
                f"{feed.path.name} line {extra}: a row meant to be sound was rejected."
            )


def _check_colours(result: DemoResult) -> None:
    city = result.city
    for day in (1, 2):
        counts = result.counts.get(day, {})
        total = sum(counts.values())
        if total != len(city.people):
            result.problems.append(
                f"Day {day}: {total} statuses for {len(city.people)} residents."
            )
        wrong: Counter[tuple[str, str]] = Counter()
        for person in city.people:
            colour = result.colour_of(person, day)
            if colour != city.expected_colour(person, day):
                wrong[(person.role, str(colour))] += 1
        for (role, colour), count in sorted(wrong.items()):
            expected = EXPECTED[role][day - 1]
            result.problems.append(
                f"Day {day}: {count} residents in role {role!r} are {colour},"
                f" expected {expected}."
            )


# Output.


def _print_header(
    console: Console, city: City, directory: Path, database_url: str
) -> None:
    text = (
        f"A synthetic {divisions.full_name(CITY_CODE)} of"
        f" [bold]{len(city.people):,}[/bold] residents in"
        f" {len(city.districts)} districts and counties (seed {city.seed}).\n"
        f"Day one {_local(city.day_one, city)}, day two"
        f" {_local(city.day_two, city)} ({city.zone.key}).\n"
        f"Feeds in {directory}/day-1 and {directory}/day-2; database"
        f" {_safe_url(database_url)}."
    )
    console.print(Panel(text, title="healthcode demo", expand=False))


def _print_imports(console: Console, result: DemoResult, day: int) -> None:
    table = Table(
        title=f"Day {day} imports, in order",
        caption=(
            "* imported with --skip-bad, the others all-or-nothing. new: records"
            " added; same: held already, unchanged; bad: rows rejected; recol.:"
            " statuses changed by the import"
        ),
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("file", no_wrap=True)
    table.add_column("department", no_wrap=True)
    for column in ("read", "new", "same", "bad", "recol."):
        table.add_column(column, justify="right", no_wrap=True, min_width=len(column))
    for imported_day, feed, report in result.imports:
        if imported_day != day:
            continue
        table.add_row(
            feed.path.name + ("*" if report.mode == "skip-bad" else ""),
            report.department,
            str(report.read),
            str(report.imported + report.updated),
            str(report.unchanged),
            str(report.rejected),
            str(report.statuses_changed) if day == 2 else "-",
        )
    console.print(table)
    if day == 1:
        console.print(
            "Day one's imports leave colouring to one full recolour after the"
            " last file; day two's recolour the residents each file touches."
        )


def _print_rejected(console: Console, result: DemoResult) -> None:
    rows = result.rejected
    if not rows:
        return
    table = Table(title="Rejected rows (nothing of them was written)")
    table.add_column("file", no_wrap=True)
    table.add_column("line", justify="right")
    table.add_column("field", no_wrap=True)
    table.add_column("reason")
    for feed, error in rows:
        table.add_row(
            f"{feed.path.parent.name}/{feed.path.name}",
            str(error.line),
            error.field or "-",
            error.reason,
        )
    console.print(table)


def _print_counts(
    console: Console, engine: Engine, result: DemoResult, day: int
) -> None:
    city = result.city
    query = (
        sa.select(Resident.region_code, Status.colour, sa.func.count())
        .join(Status, Status.resident_id == Resident.id)
        .group_by(Resident.region_code, Status.colour)
    )
    by_district: dict[str, Counter[str]] = defaultdict(Counter)
    with engine.connect() as connection:
        for code, colour, count in connection.execute(query):
            by_district[code][colour] += count
    table = Table(title=f"Colours by district after day {day}")
    table.add_column("code")
    table.add_column("district")
    for colour in COLOURS:
        table.add_column(
            f"[{_STYLE[colour]}]{_WORDS[colour]} {colour}[/]", justify="right"
        )
    table.add_column("total", justify="right")
    totals: Counter[str] = Counter()
    for district in city.districts:
        counts = by_district.get(district.code, Counter())
        totals.update(counts)
        table.add_row(
            district.code,
            district.name,
            *(str(counts[c]) for c in COLOURS),
            str(sum(counts.values())),
        )
    table.add_section()
    table.add_row(
        "",
        "all",
        *(str(totals[c]) for c in COLOURS),
        str(sum(totals.values())),
    )
    console.print(table)
    if day == 2:
        first = result.counts.get(1, {})
        second = result.counts.get(2, {})
        line = ", ".join(
            f"{colour} {first.get(colour, 0)} -> {second.get(colour, 0)}"
            for colour in COLOURS
        )
        console.print(f"Day one to day two: {line}.")


def _sample_people(city: City) -> list[Person]:
    picks = [city.people[0]]
    for role in ("observation-ending", "high-stay", "visitor", "positive"):
        people = city.by_role(role)
        if people:
            picks.append(people[0])
    return picks


def _print_samples(console: Console, engine: Engine, result: DemoResult) -> None:
    city = result.city
    console.print("[bold]Five residents and why they have their colour")
    with Session(engine) as session, session.begin():
        for person in _sample_people(city):
            rid = result.resident_ids[person.index]
            view = current_status(session, rid, city.day_one)
            console.print(_status_panel(person, view, city))


def _status_panel(person: Person, view: StatusView, city: City) -> Panel:
    district = divisions.division(person.region_code).name
    lines = [
        f"[{_STYLE[view.colour]} bold]{_WORDS[view.colour]} {view.colour}[/]"
        f"   {mask_name(person.name)}   {_masked(person, city)}   {district}",
        f"as of {_local(view.as_of, city)}",
    ]
    for reason in view.reasons:
        until = reason.get("until")
        lines.append(
            f"- [{_STYLE[reason['colour']]}]{reason['rule']} {reason['version']}[/]:"
            f" {reason['text']['zh']} / {reason['text']['en']}"
        )
        lines.append(f"    evidence: {_evidence(reason)}")
        lines.append(
            "    holds until "
            + (_local(datetime.fromisoformat(until), city) if until else "a new record")
        )
    if not view.reasons:
        lines.append("No rule holds.")
    if view.changes_at is not None:
        lines.append(
            f"Next change: to {view.changes_to} at {_local(view.changes_at, city)},"
            " if nothing new arrives."
        )
    elif view.colour != "green":
        lines.append("Next change: only when a new record arrives.")
    return Panel("\n".join(lines), expand=False)


def _evidence(reason: dict[str, Any]) -> str:
    evidence = reason.get("evidence") or {}
    ref = evidence.get("ref") or {}
    if not ref:
        return "the resident's identity record"
    text = f"{ref.get('kind')} {ref.get('recordId')} from {ref.get('department')}"
    if "minutes" in evidence:
        place = _area_name(evidence)
        area = (evidence.get("areaRef") or {}).get("recordId")
        hours, minutes = divmod(int(evidence["minutes"]), 60)
        text += f"; {hours} h {minutes} min in {place} (risk area {area})"
        if evidence.get("via"):
            text += f", passing {', '.join(evidence['via'])}"
    return text


def _area_name(evidence: dict[str, Any]) -> str:
    """The full name of a risk stay's area, e.g. 陕西省西安市雁塔区小寨路街道."""
    code = evidence.get("areaCode") or ""
    if not code:
        return ""
    place = divisions.full_name(code) if divisions.is_known(code) else code
    return place + (evidence.get("areaName") or "")


def _print_changes(console: Console, result: DemoResult) -> None:
    changes = result.changes
    console.print(
        f"[bold]{len(changes)} residents changed colour on day two.[/bold]"
        f" The reported case lives in {STREET_NAME}"
        f" ({divisions.full_name(STREET_DISTRICT)}), now a high-risk street;"
        f" {divisions.full_name(COUNTY_DAY_TWO)} is a high-risk area as a whole."
    )
    grouped: Counter[tuple[str, str, str, str]] = Counter()
    for change in changes:
        grouped[
            (
                change.old,
                change.new,
                ", ".join(change.rules) or "-",
                ", ".join(change.causes) or "-",
            )
        ] += 1
    table = Table(title="What changed and why")
    for column in ("from", "to", "rules", "brought by", "residents"):
        table.add_column(column, justify="right" if column == "residents" else "left")
    for (old, new, rules, causes), count in sorted(
        grouped.items(), key=lambda item: (-item[1], item[0])
    ):
        table.add_row(
            f"[{_STYLE[old]}]{old}[/]",
            f"[{_STYLE[new]}]{new}[/]",
            _explain_rules(rules, old, new),
            causes,
            str(count),
        )
    console.print(table)
    examples = Table(title="Some of them")
    for column in ("resident", "district", "from", "to", "why"):
        examples.add_column(column)
    shown: set[tuple[str, str, str]] = set()
    for change in changes:
        key = (change.person.role, change.old, change.new)
        if key in shown:
            continue
        shown.add(key)
        examples.add_row(
            mask_name(change.person.name),
            divisions.division(change.person.region_code).name,
            f"[{_STYLE[change.old]}]{change.old}[/]",
            f"[{_STYLE[change.new]}]{change.new}[/]",
            _why(change),
        )
    console.print(examples)


_RULE_WORDS = {
    "RED-CASE": "case reported",
    "RED-POSITIVE-TEST": "positive test",
    "RED-HIGH-RISK-STAY": "stay of 4 h or more in a high-risk area",
    "RED-CENTRAL-QUARANTINE": "central quarantine",
    "YELLOW-HOME-OBSERVATION": "home observation",
    "YELLOW-SYMPTOMS": "symptoms declared",
    "YELLOW-MEDIUM-RISK-STAY": "stay in a medium-risk area",
    "YELLOW-AFTER-RELEASE": "after release",
}


def _explain_rules(rules: str, old: str, new: str) -> str:
    if rules == "-":
        return "-"
    if new == "green" or _worse(old, new):
        return f"no longer: {rules}"
    return rules


def _why(change: Change) -> str:
    words = [_RULE_WORDS.get(rule, rule) for rule in change.rules]
    causes = ", ".join(
        "time passed" if cause == "time" else f"{cause} import"
        for cause in change.causes
    )
    if change.new == "green" or _worse(change.old, change.new):
        text = "no longer " + ", ".join(words) if words else "rules ended"
    else:
        text = ", ".join(words)
        if change.places:
            text += f" ({', '.join(change.places)})"
    return f"{text}, by {causes}" if causes else text


def _print_codes(console: Console, result: DemoResult) -> None:
    table = Table(
        title="Screen codes of the five residents, read back from their PNGs",
        caption=f"Files in {result.directory / 'codes'}. Each image was decoded"
        " from its pixels and verified offline against the key records alone,"
        " at the moment of day two.",
    )
    for column in ("resident", "colour", "QR version", "file", "verified"):
        table.add_column(
            column,
            justify="right" if column == "QR version" else "left",
            no_wrap=column == "file",
        )
    for code in result.codes:
        table.add_row(
            code.masked_name,
            f"[{_STYLE[code.colour]}]{_WORDS[code.colour]} {code.colour}[/]",
            str(code.version),
            code.path.name,
            "yes" if code.verified else f"no: {code.outcome}",
        )
    console.print(table)


def _print_steps(console: Console, result: DemoResult) -> None:
    table = Table(title="Time each step took")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    for step in result.steps:
        table.add_row(step.name, f"{step.seconds:.2f}")
    table.add_section()
    table.add_row("all", f"{sum(s.seconds for s in result.steps):.2f}")
    console.print(table)


def _documents_to_try(result: DemoResult) -> list[tuple[str, Person, str]]:
    """A few residents whose full documents the demo prints for trying out."""
    city = result.city
    picks: list[tuple[str, Person, str]] = []
    for role, label in (
        ("reported-case", "the case reported on day two"),
        ("county-stay", "stayed in Wuchang, now red"),
        ("passed-through", "passed through Wuchang, still green"),
        ("contact", "secondary contact under home observation"),
        ("visitor", "visitor with a passport, grey"),
    ):
        people = city.by_role(role)
        if people:
            picks.append((label, people[0], _command(people[0])))
    legacy = [p for p in city.people if len(p.written_number) == 15]
    if legacy:
        picks.append(
            (
                "registered with a 15-digit card",
                legacy[0],
                _command(legacy[0], legacy[0].written_number),
            )
        )
    return picks


def _program() -> str:
    """How to call this very program again: the path it was started by."""
    started = Path(sys.argv[0])
    if started.name == "healthcode" and started.exists():
        return str(started.resolve())
    return "healthcode"


def _command(person: Person, number: str | None = None) -> str:
    command = f"{_program()} status {number or person.doc_number}"
    if person.doc_kind != "cn-id":
        command += f" --kind {person.doc_kind}"
    if person.doc_country:
        command += f" --country {person.doc_country}"
    return command


def _print_documents(console: Console, result: DemoResult) -> None:
    console.rule("[bold]Try it")
    console.print(
        "These documents are printed in full so that you can look them up;"
        " every other document above is masked. First point the command at the"
        " demo's database and keys:"
    )
    console.print(
        f"  export HEALTHCODE_DATABASE_URL={_safe_url(result.database_url)}",
        soft_wrap=True,
        highlight=False,
    )
    exports = {
        "HEALTHCODE_KEY_DIR": result.directory / "keys",
        "HEALTHCODE_DATA_KEY_DIR": result.directory / DATA_KEY_FOLDER,
    }
    for name, folder in exports.items():
        console.print(
            f"  export {name}={folder.resolve()}", soft_wrap=True, highlight=False
        )
    for label, person, command in result.documents:
        console.print(
            f"  {command}   [dim]# {label}, {mask_name(person.name)}[/dim]",
            soft_wrap=True,
            highlight=False,
        )


def _print_verdict(console: Console, result: DemoResult) -> None:
    planted = sum(len(feed.planted) for _, feed, _ in result.imports)
    if result.ok:
        console.print(
            f"[green]All checks held:[/green] {len(result.city.people)} residents,"
            f" each with the colour its records call for on both days;"
            f" {planted} planted bad rows reported by line, none other."
        )
        return
    console.print("[red bold]Some checks failed:[/red bold]")
    for problem in result.problems:
        console.print(f"- {problem}")


# Helpers.


class _Timer:
    def __init__(self) -> None:
        self.steps: list[Step] = []

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.steps.append(Step(name, time.perf_counter() - started))


def _local(moment: datetime, city: City) -> str:
    return moment.astimezone(city.zone).strftime("%Y-%m-%d %H:%M")


def _masked(person: Person, city: City) -> str:
    document = parse_document(
        person.doc_kind,
        person.doc_number,
        person.doc_country,
        today=city.day_two.astimezone(city.zone).date(),
    )
    return document.masked()


def _safe_url(url: str) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)
