"""Calls to a peer that answers badly: a small hostile server on the loopback.

The server stands where another region's instance would, and answers what
a broken or hostile one might: nothing of it may reach an official as if
the peer had said it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from tests.regions.support import free_port

from healthcode.codes.keys import KeyRole, KeyStore, SigningKey
from healthcode.identity.errors import UnknownResident
from healthcode.regions.calls import MAX_ANSWER_BYTES, query_status
from healthcode.regions.errors import InvalidPeerAnswer, PeerRefused, PeerUnreachable
from healthcode.regions.peers import Peer, make_card
from healthcode.regions.services import ensure_key, peer_store, published_trust_list
from healthcode.regions.signing import NONCE_HEADER

NOW = datetime.now(UTC).replace(microsecond=0)
Reply = tuple[int, dict[str, str], bytes]
Answer = Callable[[BaseHTTPRequestHandler, bytes], Reply]


@pytest.fixture
def hostile() -> Iterator[tuple[str, list[Answer]]]:
    answers: list[Answer] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status, headers, content = answers[0](self, body)
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(content))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", answers
    finally:
        server.shutdown()
        server.server_close()


def _peer(tmp_path: Path, url: str) -> tuple[Peer, SigningKey, SigningKey]:
    since = NOW - timedelta(days=1)
    guangzhou = KeyStore(tmp_path / "guangzhou")
    for role in (KeyRole.CODE, KeyRole.TRUST_LIST, KeyRole.PEER):
        ensure_key(guangzhou, "440100", role, since)
    xian = KeyStore(tmp_path / "xian")
    own = ensure_key(xian, "610100", KeyRole.PEER, since)
    card = make_card(
        "440100",
        url,
        [r for r in guangzhou.records() if r.role is KeyRole.TRUST_LIST],
        published_trust_list(guangzhou, peer_store(tmp_path / "none"), NOW, None),
    )
    peer = peer_store(tmp_path / "xian").add(card, NOW, own_region="610100")
    return peer, own, guangzhou.signing_key("440100", NOW, KeyRole.PEER)


def _ask(peer: Peer, own: SigningKey) -> object:
    return query_status(
        peer=peer,
        key=own,
        document={"kind": "cn-id", "number": "440106199001011235", "country": ""},
        official="official:1",
        purpose="a stated purpose",
        now=NOW,
        timeout=5,
    )


def _status_body() -> bytes:
    return json.dumps(
        {
            "region": "440100",
            "colour": "green",
            "maskedName": "林**",
            "asOf": NOW.isoformat(),
            "nextChangeAt": None,
            "nextColour": None,
        }
    ).encode()


def test_an_unsigned_answer_is_not_shown(
    hostile: tuple[str, list[Answer]], tmp_path: Path
) -> None:
    url, answers = hostile
    peer, own, _ = _peer(tmp_path, url)
    answers.append(lambda handler, body: (200, {}, _status_body()))

    with pytest.raises(InvalidPeerAnswer, match="not signed as a peer answer"):
        _ask(peer, own)


def test_an_answer_signed_for_another_request_is_not_shown(
    hostile: tuple[str, list[Answer]], tmp_path: Path
) -> None:
    from healthcode.regions.signing import sign_answer

    url, answers = hostile
    peer, own, theirs = _peer(tmp_path, url)
    content = _status_body()
    answers.append(
        lambda handler, body: (
            200,
            sign_answer(theirs, "610100", 200, "an-earlier-nonce", content, NOW),
            content,
        )
    )

    with pytest.raises(InvalidPeerAnswer, match="does not verify"):
        _ask(peer, own)


def test_a_properly_signed_answer_is_taken(
    hostile: tuple[str, list[Answer]], tmp_path: Path
) -> None:
    from healthcode.regions.signing import NONCE_HEADER, sign_answer

    url, answers = hostile
    peer, own, theirs = _peer(tmp_path, url)
    content = _status_body()
    answers.append(
        lambda handler, body: (
            200,
            sign_answer(
                theirs, "610100", 200, handler.headers[NONCE_HEADER], content, NOW
            ),
            content,
        )
    )

    status = _ask(peer, own)

    assert (status.region, status.colour, status.masked_name) == (  # type: ignore[attr-defined]
        "440100",
        "green",
        "林**",
    )


def test_an_oversized_answer_is_cut_off(
    hostile: tuple[str, list[Answer]], tmp_path: Path
) -> None:
    url, answers = hostile
    peer, own, _ = _peer(tmp_path, url)
    answers.append(lambda handler, body: (200, {}, b" " * (MAX_ANSWER_BYTES + 1)))

    with pytest.raises(InvalidPeerAnswer, match="larger than"):
        _ask(peer, own)


def test_a_refusal_is_relayed_with_its_code(
    hostile: tuple[str, list[Answer]], tmp_path: Path
) -> None:
    url, answers = hostile
    peer, own, _ = _peer(tmp_path, url)
    refusal = {"code": "stale_request", "message": "The request is dated ...."}
    answers.append(lambda handler, body: (401, {}, json.dumps(refusal).encode()))

    with pytest.raises(PeerRefused, match=r"refused the query \(stale_request\)"):
        _ask(peer, own)


def test_an_unknown_resident_there_is_an_unknown_resident_here(
    hostile: tuple[str, list[Answer]], tmp_path: Path
) -> None:
    url, answers = hostile
    peer, own, _ = _peer(tmp_path, url)
    refusal = {"code": "unknown_resident", "message": "No resident has that document."}
    answers.append(lambda handler, body: (404, {}, json.dumps(refusal).encode()))

    with pytest.raises(UnknownResident, match="has no resident with that document"):
        _ask(peer, own)


def test_an_answer_dripped_slowly_is_cut_off_at_the_timeout(tmp_path: Path) -> None:
    class Drip(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "40")
            self.end_headers()
            for _ in range(40):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.2)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Drip)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        peer, own, _ = _peer(tmp_path, f"http://127.0.0.1:{server.server_address[1]}")
        started = time.monotonic()
        with pytest.raises(PeerUnreachable, match="within 1 seconds"):
            query_status(
                peer=peer,
                key=own,
                document={"kind": "cn-id", "number": "440106199001011235"},
                official="official:1",
                purpose="a stated purpose",
                now=NOW,
                timeout=1,
            )
        took = time.monotonic() - started
    finally:
        server.shutdown()
        server.server_close()

    assert took < 3


def test_a_refused_query_carries_the_nonce_it_was_sent_under(
    hostile: tuple[str, list[Answer]], tmp_path: Path
) -> None:
    url, answers = hostile
    peer, own, _ = _peer(tmp_path, url)
    sent: list[str] = []

    def refuse(handler: BaseHTTPRequestHandler, body: bytes) -> Reply:
        sent.append(handler.headers[NONCE_HEADER])
        return 404, {}, json.dumps({"code": "unknown_resident"}).encode()

    answers.append(refuse)

    with pytest.raises(UnknownResident) as refused:
        _ask(peer, own)

    assert refused.value.query == sent[0]  # type: ignore[attr-defined]
