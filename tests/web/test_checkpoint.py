"""The scanner page and its trust material, checked with the Python verifiers."""

from __future__ import annotations

import base64
from typing import Any

from tests.web.conftest import register, sign_in

from healthcode.codes.format import Colour
from healthcode.codes.keys import KeyRecord
from healthcode.codes.statuslist import load_status_list
from healthcode.codes.trust import Verifier, load_trust_list


def test_the_scanner_page_may_use_the_camera_and_nothing_else(client: Any) -> None:
    page = client.get("/checkpoint")

    assert page.status_code == 200
    assert page.headers["permissions-policy"].startswith("camera=(self)")
    assert '<script src="/static/js/scanner.js"></script>' in page.text
    assert '"expired_code"' in page.text


def test_the_trust_material_verifies_with_its_own_anchors(
    client: Any, outbox: Any, clock: Any
) -> None:
    token = sign_in(client, outbox, "13800138000")
    register(client, token)
    code = client.get("/app/code.json").json()["text"]

    material = client.get("/checkpoint/trust.json").json()

    anchors = [KeyRecord.from_json(item) for item in material["anchors"]]
    trust = load_trust_list(material["trustList"], anchors, clock.now)
    verifier = Verifier(trust.code_keys)
    listed = base64.urlsafe_b64decode(material["statusLists"]["610100"])
    status_list = load_status_list(listed, verifier, clock.now)
    assert material["format"] == "healthcode-checkpoint-material/1"
    assert verifier.verify(code, clock.now).colour is Colour.GREY
    assert status_list.colour_of(1) is Colour.GREY


def test_the_material_is_signed_once_for_a_few_minutes(
    client: Any, outbox: Any, clock: Any
) -> None:
    first = client.get("/checkpoint/trust.json").json()

    clock.advance(minutes=1)
    again = client.get("/checkpoint/trust.json").json()
    clock.advance(minutes=5)
    later = client.get("/checkpoint/trust.json").json()

    assert again["madeAt"] == first["madeAt"]
    assert later["madeAt"] != first["madeAt"]
