"""Two regions, each its own instance with its own keys, trusting each other.

Xi'an (610100) runs on a SQLite file of its own with one worker; Guangzhou
(440100) runs on a throwaway PostgreSQL database with Redis and two workers
where the suite has PostgreSQL (``HEALTHCODE_TEST_POSTGRES_URL``) and Redis,
so that a replayed nonce must be caught across workers, and on SQLite
otherwise. Both are real ``healthcode serve`` processes on loopback ports
of 7200-7299, set up through the command line as their operators would:
each writes its card, each adds the other's, and then a code issued in
Guangzhou is checked at a door in Xi'an and an official in Xi'an asks
Guangzhou about the visitor.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyotp
import pytest
import sqlalchemy as sa
import typer
from tests.regions.support import free_port
from tests.service.support import PASSWORD, add_official, api_key, import_identities
from typer.testing import CliRunner

from healthcode.accounts.stores import RedisStore
from healthcode.bench.load import start_server, stop_server
from healthcode.codes.cli import code_command, keys_app, verify_command
from healthcode.codes.format import Colour, Issuer
from healthcode.codes.keys import KeyRecord, KeyRole, KeyStore, SigningKey
from healthcode.codes.trust import Verifier, load_trust_list
from healthcode.config import get_settings
from healthcode.db import make_engine, throwaway_postgres
from healthcode.identity.documents import mod11_2_check
from healthcode.regions.calls import STATUS_PATH
from healthcode.regions.cli import peers_app
from healthcode.regions.signing import SIGNATURE_HEADER, sign_request

XIAN, GUANGZHOU, NANJING = "610100", "440100", "320100"
REDIS_URL = "redis://127.0.0.1:6379/11"
# A visitor from Guangzhou: Tianhe district, born 1990-01-01.
VISITOR = "44010619900101123" + mod11_2_check("44010619900101123")


def _redis_answers() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
        return True
    except OSError:
        return False


# The commands under test, as the package registers them; run in this
# process, so that a slow machine does not pay a start-up per command.
CLI = typer.Typer()


@CLI.callback()
def _main() -> None:
    """The command line, as the package registers it."""


CLI.add_typer(peers_app, name="peers")
CLI.add_typer(keys_app, name="keys")
CLI.command("verify")(verify_command)
CLI.command("code")(code_command)
RUNNER = CliRunner()


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Region:
    """One region's instance: its settings, folders and, once started, URL."""

    code: str
    folder: Path
    env: dict[str, str]
    port: int = 0
    process: Any = None
    workers: int = 1
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def keys(self) -> Path:
        return self.folder / "keys"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str, check: bool = True) -> Ran:
        """Run a ``healthcode`` command as this region's operator would."""
        get_settings.cache_clear()
        try:
            result = RUNNER.invoke(CLI, list(args), env={**self.env, "COLUMNS": "200"})
        finally:
            get_settings.cache_clear()
        ran = Ran(result.exit_code, result.stdout, result.stderr)
        if check:
            assert ran.returncode == 0, ran.stderr + ran.stdout
        return ran

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = start_server(
                self.port, self.env, workers=self.workers, stderr=log
            )

    def stop(self) -> None:
        if self.process is not None:
            stop_server(self.process)
            self.process = None

    def audit(self, action: str) -> list[dict[str, Any]]:
        engine = make_engine(self.env["HEALTHCODE_DATABASE_URL"])
        try:
            with engine.connect() as connection:
                rows = connection.execute(
                    sa.text(
                        "SELECT actor, actor_role, subject, purpose, details"
                        " FROM audit_entries WHERE action = :action ORDER BY id"
                    ),
                    {"action": action},
                ).all()
        finally:
            engine.dispose()
        return [
            {
                "actor": actor,
                "role": role,
                "subject": subject,
                "purpose": purpose,
                "details": details
                if isinstance(details, dict)
                else json.loads(details),
            }
            for actor, role, subject, purpose, details in rows
        ]


def _environment(code: str, folder: Path, database: str) -> dict[str, str]:
    return {
        "HEALTHCODE_DATABASE_URL": database,
        "HEALTHCODE_KEY_DIR": str(folder / "keys"),
        "HEALTHCODE_REGION": code,
        "HEALTHCODE_LOG_FORMAT": "json",
        "HEALTHCODE_PEER_TIMEOUT_SECONDS": "2",
        "HEALTHCODE_SIGN_IN_SENDER": "file",
        "HEALTHCODE_SIGN_IN_FILE": str(folder / "sign-in.ndjson"),
    }


@contextmanager
def _guangzhou_database(folder: Path) -> Iterator[tuple[str, dict[str, str], int]]:
    server = os.environ.get("HEALTHCODE_TEST_POSTGRES_URL")
    in_ci = os.environ.get("CI", "").lower() == "true"
    if server and _redis_answers():
        prefix = f"healthcode-regions-{secrets.token_hex(4)}:"
        with throwaway_postgres(server) as url:
            try:
                yield (
                    url,
                    {
                        "HEALTHCODE_REDIS_URL": REDIS_URL,
                        "HEALTHCODE_REDIS_PREFIX": prefix,
                    },
                    2,
                )
            finally:
                store = RedisStore.from_url(REDIS_URL, prefix)
                store.clear()
                store.client.close()
        return
    if in_ci:
        pytest.fail("Under CI the second region runs on PostgreSQL with Redis.")
    print("regions: Guangzhou runs on SQLite with one worker (no PostgreSQL/Redis)")
    yield f"sqlite:///{folder / 'healthcode.db'}", {}, 1


@dataclass
class World:
    xian: Region
    guangzhou: Region
    code: str
    png: Path
    official: dict[str, str]
    checkpoint: dict[str, str]


def _sign_in_official(region: Region, name: str) -> dict[str, str]:
    engine = make_engine(region.env["HEALTHCODE_DATABASE_URL"])
    try:
        secret = add_official(engine, name, "health-official", datetime.now(UTC))
    finally:
        engine.dispose()
    answer = httpx.post(
        f"{region.url}/v1/officials/sign-in",
        json={"username": name, "password": PASSWORD, "totp": pyotp.TOTP(secret).now()},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def _checkpoint_key(region: Region) -> dict[str, str]:
    engine = make_engine(region.env["HEALTHCODE_DATABASE_URL"])
    try:
        return api_key(engine, "checkpoint", "bell-tower-gate", datetime.now(UTC))
    finally:
        engine.dispose()


def _register_visitor(region: Region) -> None:
    engine = make_engine(region.env["HEALTHCODE_DATABASE_URL"])
    try:
        import_identities(
            engine,
            region.folder,
            datetime.now(UTC),
            [(VISITOR, "林小雨")],
            region="440106",
        )
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("regions")
    with ExitStack() as stack:
        xian_folder, gz_folder = root / "xian", root / "guangzhou"
        xian_folder.mkdir()
        gz_folder.mkdir()
        gz_url, gz_extra, gz_workers = stack.enter_context(
            _guangzhou_database(gz_folder)
        )
        xian = Region(
            XIAN,
            xian_folder,
            _environment(
                XIAN, xian_folder, f"sqlite:///{xian_folder / 'healthcode.db'}"
            ),
        )
        guangzhou = Region(
            GUANGZHOU,
            gz_folder,
            {**_environment(GUANGZHOU, gz_folder, gz_url), **gz_extra},
            workers=gz_workers,
        )
        xian.port = free_port()
        guangzhou.port = free_port()
        # Both start at once: each takes seconds on a busy machine.
        with ThreadPoolExecutor(2) as pool:
            starting = [pool.submit(region.start) for region in (xian, guangzhou)]
        for region in (xian, guangzhou):
            stack.callback(region.stop)
        for future in starting:
            future.result()

        # The operators exchange cards, and each adds the other's.
        for region in (xian, guangzhou):
            card = region.folder / "card.json"
            region.cli("peers", "card", "--url", region.url, "--out", str(card))
        for region, other in ((xian, guangzhou), (guangzhou, xian)):
            added = region.cli("peers", "add", str(other.folder / "card.json"))
            assert f"added region {other.code}" in added.stdout

        _register_visitor(guangzhou)
        png = gz_folder / "code.png"
        issued = guangzhou.cli("code", VISITOR, "--png", str(png))
        code = next(
            line for line in issued.stdout.splitlines() if line.startswith("HCZ1:")
        )
        official = _sign_in_official(xian, "zhang.wei")
        checkpoint = _checkpoint_key(xian)
        yield World(xian, guangzhou, code, png, official, checkpoint)


def _peer_query(world: World, **changes: Any) -> httpx.Response:
    body = {
        "region": GUANGZHOU,
        "document": {"kind": "cn-id", "number": VISITOR},
        "purpose": "visitor screened at Xi'an North station",
        **changes,
    }
    return httpx.post(
        f"{world.xian.url}/v1/officials/peer-status",
        json=body,
        headers=world.official,
        timeout=15,
    )


def _signed(world: World, key: SigningKey, at: datetime, **kw: Any) -> dict[str, Any]:
    body = orjson.dumps(
        {
            "document": {"kind": "cn-id", "number": VISITOR},
            "official": "official:1",
            "purpose": "a purpose of five or more letters",
        }
    )
    headers = sign_request(key, GUANGZHOU, "POST", STATUS_PATH, body, at, **kw)
    return {"content": body, "headers": {**headers, "Content-Type": "application/json"}}


def _audited(region: Region, query: str) -> list[dict[str, Any]]:
    entries = region.audit("peer.status_query")
    return [entry for entry in entries if entry["details"].get("query") == query]


def _xian_peer_key(world: World) -> SigningKey:
    return KeyStore(world.xian.keys).signing_key(XIAN, datetime.now(UTC), KeyRole.PEER)


# Codes from the other region, offline and online


def test_a_guangzhou_code_verifies_offline_in_xian_from_its_qr_pixels(
    world: World,
) -> None:
    by_image = world.xian.cli(
        "verify", "--image", str(world.png), "--dir", str(world.xian.keys), "--json"
    )
    by_text = world.xian.cli("verify", world.code, "--dir", str(world.xian.keys))

    verdict = json.loads(by_image.stdout)
    assert verdict["accepted"] is True
    assert verdict["colour"] == "green"
    assert verdict["masked_name"] == "林**"
    assert verdict["region"] == GUANGZHOU
    assert verdict["region_name"] == "广东省广州市"
    assert "accepted" in by_text.stdout
    assert "code of region 440100 广东省广州市" in by_text.stdout


def test_a_xian_door_holding_only_the_published_list_accepts_the_code(
    world: World, tmp_path: Path
) -> None:
    # A door device of Xi'an keeps no key store: it holds Xi'an's anchors
    # and the trust list Xi'an publishes, which names Guangzhou's keys.
    listed = httpx.get(f"{world.xian.url}/v1/trust-list", timeout=10)
    (tmp_path / "trust.json").write_bytes(listed.content)
    anchors = world.xian.cli("keys", "list", "--json", "--dir", str(world.xian.keys))
    (tmp_path / "anchors.json").write_text(anchors.stdout, "utf-8")

    verdict = world.xian.cli(
        "verify",
        world.code,
        "--dir",
        str(tmp_path / "no-keys"),
        "--trust-list",
        str(tmp_path / "trust.json"),
        "--anchors",
        str(tmp_path / "anchors.json"),
        "--json",
    )

    assert listed.headers["content-type"] == "application/json"
    assert json.loads(verdict.stdout)["region"] == GUANGZHOU
    assert json.loads(verdict.stdout)["accepted"] is True


def test_xian_online_verify_accepts_the_guangzhou_code_naming_its_region(
    world: World,
) -> None:
    answer = httpx.post(
        f"{world.xian.url}/v1/checkpoints/verify",
        json={"code": world.code},
        headers=world.checkpoint,
        timeout=10,
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["region"] == GUANGZHOU
    assert answer.json()["regionName"] == "广东省广州市"
    assert answer.json()["colour"] == "green"


def test_xian_scanner_material_holds_guangzhou_keys_under_xian_anchors(
    world: World,
) -> None:
    material = httpx.get(f"{world.xian.url}/checkpoint/trust.json", timeout=10).json()
    now = datetime.now(UTC)

    anchors = [KeyRecord.from_json(item) for item in material["anchors"]]
    listed = load_trust_list(material["trustList"], anchors, now)
    verified = Verifier(listed.code_keys).verify(world.code, now)
    assert {r.region for r in anchors} == {XIAN}
    assert verified.content.region == GUANGZHOU
    assert material["regionNames"][GUANGZHOU] == "广东省广州市"
    assert {r.region for r in listed.peer_keys} == {XIAN}


def test_a_code_of_an_untrusted_region_is_refused_naming_the_region(
    world: World,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    nanjing = SigningKey.from_seed(secrets.token_bytes(32), NANJING, now)
    code = Issuer(nanjing, secrets.token_bytes(32)).screen_code(
        7, "王*", Colour.GREEN, now
    )

    offline = world.xian.cli("verify", code, "--dir", str(world.xian.keys), check=False)
    online = httpx.post(
        f"{world.xian.url}/v1/checkpoints/verify",
        json={"code": code},
        headers=world.checkpoint,
        timeout=10,
    )

    assert offline.returncode == 1
    assert "refused [unknown_key]" in offline.stdout
    assert "region 320100 (江苏省南京市)" in offline.stdout
    assert "not trusted here" in offline.stdout
    assert online.status_code == 422
    assert online.json()["code"] == "unknown_key"
    assert "region 320100" in online.json()["message"]


def test_a_guangzhou_paper_code_asks_for_its_status_list(world: World) -> None:
    issued = world.guangzhou.cli("code", VISITOR, "--paper")
    paper = next(
        line for line in issued.stdout.splitlines() if line.startswith("HCZ1:")
    )

    offline = world.xian.cli(
        "verify", paper, "--dir", str(world.xian.keys), check=False
    )
    online = httpx.post(
        f"{world.xian.url}/v1/checkpoints/verify",
        json={"code": paper},
        headers=world.checkpoint,
        timeout=10,
    )

    assert offline.returncode == 1
    assert "refused [status_list_not_held]" in offline.stdout
    assert online.status_code == 404
    assert online.json()["code"] == "status_list_not_held"
    assert "region 440100" in online.json()["message"]


# An official in Xian asks Guangzhou


def test_a_xian_official_gets_the_visitors_status_from_guangzhou(world: World) -> None:
    answer = _peer_query(world)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["region"] == GUANGZHOU
    assert body["regionName"] == "广东省广州市"
    assert body["colour"] == "green"
    assert body["maskedName"] == "林**"
    assert set(body) == {
        "region",
        "regionName",
        "colour",
        "maskedName",
        "asOf",
        "nextChangeAt",
        "nextColour",
        "query",
    }
    asked = [
        e
        for e in world.xian.audit("peer.status_query")
        if e["details"].get("query") == body["query"]
    ]
    answered = [
        e
        for e in world.guangzhou.audit("peer.status_query")
        if e["details"].get("query") == body["query"]
    ]
    assert asked[0]["actor"].startswith("official:")
    assert asked[0]["subject"] == "peer:440100"
    assert asked[0]["purpose"] == "visitor screened at Xi'an North station"
    assert answered[0]["actor"] == "peer:610100"
    assert answered[0]["subject"].startswith("resident:")
    assert answered[0]["details"]["official"] == asked[0]["actor"]
    assert answered[0]["purpose"] == "visitor screened at Xi'an North station"


def test_an_unknown_visitor_is_a_plain_not_found(world: World) -> None:
    stranger = "44010619851212004"
    stranger += mod11_2_check(stranger)

    answer = _peer_query(world, document={"kind": "cn-id", "number": stranger})

    assert answer.status_code == 404
    assert answer.json()["code"] == "unknown_resident"
    assert answer.json()["message"].startswith(
        "Region 440100 (广东省广州市) has no resident with that document."
    )
    assert stranger not in answer.text
    asked = world.xian.audit("peer.status_query")[-1]["details"]
    answered = world.guangzhou.audit("peer.status_query")[-1]["details"]
    assert asked["outcome"] == answered["outcome"] == "unknown_resident"
    assert asked["query"] == answered["query"]
    assert len(asked["query"]) >= 16


def test_a_region_that_is_no_peer_is_refused_before_any_call(world: World) -> None:
    answer = _peer_query(world, region=NANJING)

    assert answer.status_code == 404
    assert answer.json()["code"] == "peer_not_configured"


# Guangzhou refuses requests that are not good


def test_a_signed_request_is_answered_once_and_its_replay_refused(world: World) -> None:
    request = _signed(world, _xian_peer_key(world), datetime.now(UTC))
    url = world.guangzhou.url + STATUS_PATH

    # With two workers, the replays land on either; the nonce store is shared.
    answers = [httpx.post(url, timeout=10, **request) for _ in range(4)]

    assert answers[0].status_code == 200, answers[0].text
    assert [a.status_code for a in answers[1:]] == [401, 401, 401]
    assert {a.json()["code"] for a in answers[1:]} == {"replayed_request"}


def test_a_forged_signature_is_refused(world: World) -> None:
    request = _signed(world, _xian_peer_key(world), datetime.now(UTC))
    signature = request["headers"][SIGNATURE_HEADER]
    request["headers"][SIGNATURE_HEADER] = (
        "B" if signature[0] != "B" else "C"
    ) + signature[1:]

    answer = httpx.post(world.guangzhou.url + STATUS_PATH, timeout=10, **request)

    assert answer.status_code == 401
    assert answer.json()["code"] == "peer_unauthenticated"
    assert answer.json()["message"].startswith("The signature does not verify.")


def test_an_altered_body_is_refused(world: World) -> None:
    request = _signed(world, _xian_peer_key(world), datetime.now(UTC))
    request["content"] = request["content"].replace(b"official:1", b"official:2")

    answer = httpx.post(world.guangzhou.url + STATUS_PATH, timeout=10, **request)

    assert answer.status_code == 401
    assert "Content-Digest" in answer.json()["message"]


def test_a_stale_timestamp_is_refused(world: World) -> None:
    request = _signed(
        world, _xian_peer_key(world), datetime.now(UTC) - timedelta(minutes=5)
    )

    answer = httpx.post(world.guangzhou.url + STATUS_PATH, timeout=10, **request)

    assert answer.status_code == 401
    assert answer.json()["code"] == "stale_request"


def test_an_unknown_peer_is_refused(world: World) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    nanjing = SigningKey.from_seed(secrets.token_bytes(32), NANJING, now, KeyRole.PEER)
    request = _signed(world, nanjing, now)

    answer = httpx.post(world.guangzhou.url + STATUS_PATH, timeout=10, **request)

    assert answer.status_code == 403
    assert answer.json()["code"] == "unknown_peer"
    assert "320100" in answer.json()["message"]


def test_a_key_that_claims_to_be_xians_but_is_not_listed_is_refused(
    world: World,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    impostor = SigningKey.from_seed(secrets.token_bytes(32), XIAN, now, KeyRole.PEER)
    request = _signed(world, impostor, now)

    answer = httpx.post(world.guangzhou.url + STATUS_PATH, timeout=10, **request)

    assert answer.status_code == 401
    assert answer.json()["code"] == "peer_unauthenticated"
    assert impostor.record.name in answer.json()["message"]


# Trust lists that are not good


def test_an_altered_trust_list_is_refused_and_the_one_held_stays(world: World) -> None:
    card = json.loads((world.guangzhou.folder / "card.json").read_text("utf-8"))
    outer = json.loads(card["trustList"])
    payload = orjson.loads(_unb64(outer["payload"]))
    payload["valid_until"] = "2099-01-01T00:00:00Z"
    outer["payload"] = _b64(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS))
    altered = world.xian.folder / "altered.json"
    altered.write_text(json.dumps(outer), "utf-8")

    refused = world.xian.cli(
        "peers", "refresh", GUANGZHOU, "--trust-list", str(altered), check=False
    )
    listed = world.xian.cli("peers", "list", "--json")

    assert refused.returncode == 1
    assert "[invalid_trust_list]" in refused.stderr
    assert "does not verify" in refused.stderr
    assert json.loads(listed.stdout)[0]["validUntil"] != "2099-01-01T00:00:00+00:00"


def test_a_trust_list_from_an_unknown_signer_is_refused(world: World) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    other = KeyStore(world.xian.folder / "other-keys")
    other.generate(GUANGZHOU, now)
    other.generate(GUANGZHOU, now, KeyRole.TRUST_LIST)
    from healthcode.codes.trust import sign_trust_list

    document = sign_trust_list(
        other.records()[:1], other.signing_key(GUANGZHOU, now, KeyRole.TRUST_LIST), now
    )
    path = world.xian.folder / "other.json"
    path.write_bytes(document)

    refused = world.xian.cli(
        "peers", "refresh", GUANGZHOU, "--trust-list", str(path), check=False
    )

    assert refused.returncode == 1
    assert "which is not a trust anchor here" in refused.stderr


# Last: the peer revokes its key, then goes away


def test_a_code_of_a_revoked_peer_key_is_refused_after_a_refresh(world: World) -> None:
    verdict = world.xian.cli(
        "verify", world.code, "--dir", str(world.xian.keys), "--json"
    )
    key_id = json.loads(verdict.stdout)["key"].split("-")[1]
    world.guangzhou.cli("keys", "revoke", GUANGZHOU, key_id)

    refreshed = world.xian.cli("peers", "refresh")
    offline = world.xian.cli(
        "verify", world.code, "--dir", str(world.xian.keys), check=False
    )
    online = httpx.post(
        f"{world.xian.url}/v1/checkpoints/verify",
        json={"code": world.code},
        headers=world.checkpoint,
        timeout=10,
    )

    assert "refreshed region 440100" in refreshed.stdout
    assert offline.returncode == 1
    assert "refused [revoked_key]" in offline.stdout
    assert online.status_code == 422
    assert online.json()["code"] == "revoked_key"


def test_a_peer_that_does_not_answer_gives_a_clear_error(world: World) -> None:
    silent = socket.create_server(("127.0.0.1", free_port()))
    held: list[socket.socket] = []
    threading.Thread(
        target=lambda: held.append(silent.accept()[0]), daemon=True
    ).start()
    card = world.guangzhou.folder / "card.json"
    world.xian.cli(
        "peers",
        "add",
        str(card),
        "--replace",
        "--url",
        f"http://127.0.0.1:{silent.getsockname()[1]}",
    )
    try:
        slow = _peer_query(world)
    finally:
        silent.close()
        for connection in held:
            connection.close()
    world.guangzhou.stop()
    world.xian.cli("peers", "add", str(card), "--replace")
    down = _peer_query(world)

    assert slow.status_code == 504
    assert slow.json()["code"] == "peer_unreachable"
    assert slow.json()["message"].startswith(
        "The other region's instance did not answer in time"
    )
    assert down.status_code == 504
    assert down.json()["code"] == "peer_unreachable"
    outcomes = [e["details"]["outcome"] for e in world.xian.audit("peer.status_query")]
    assert outcomes[-2:] == ["peer_unreachable", "peer_unreachable"]


def test_a_removed_peer_is_trusted_no_longer(world: World) -> None:
    removed = world.xian.cli("peers", "remove", GUANGZHOU)
    offline = world.xian.cli(
        "verify", world.code, "--dir", str(world.xian.keys), check=False
    )
    asked = _peer_query(world)

    assert "removed region 440100 广东省广州市" in removed.stdout
    assert "refused [unknown_key]" in offline.stdout
    assert "not trusted here" in offline.stdout
    assert asked.status_code == 404
    assert asked.json()["code"] == "peer_not_configured"
    assert "440100" not in world.xian.cli("peers", "list", "--json").stdout


def _b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_no_log_line_of_either_region_names_the_visitor(world: World) -> None:
    logs = {
        region.code: region.log.read_text("utf-8")
        for region in (world.xian, world.guangzhou)
    }
    name_escaped = json.dumps("林小雨")[1:-1]

    assert '"event":"peer_call"' in logs[XIAN]
    assert '"route":"/v1/peers/status"' in logs[GUANGZHOU]
    for text in logs.values():
        assert VISITOR not in text
        assert "林小雨" not in text
        assert name_escaped not in text
