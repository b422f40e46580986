"""The resident's pages through the test client: sign-in to code, forms, family."""

from __future__ import annotations

from typing import Any

from tests.web.conftest import ADULT, CHILD, csrf_of, register, sign_in


def test_a_new_phone_signs_in_registers_and_sees_its_code(
    client: Any, outbox: Any
) -> None:
    token = sign_in(client, outbox, "13800138000")

    register(client, token)
    page = client.get("/app")

    assert page.status_code == 200
    assert 'data-colour="grey"' in page.text
    assert "张**" in page.text
    assert 'data-code="HCZ1:' in page.text
    assert "<svg" in page.text
    assert "610113199001011230" not in page.text


def test_a_wrong_sign_in_code_is_shown_with_the_form_again(
    client: Any, outbox: Any
) -> None:
    token = csrf_of(client.get("/app/sign-in").text)
    client.post("/app/sign-in/code", data={"phone": "13800138000", "csrf_token": token})
    wrong = "000000" if outbox.last("13800138000") != "000000" else "111111"

    answer = client.post(
        "/app/sign-in",
        data={"phone": "13800138000", "code": wrong, "csrf_token": token},
    )

    assert answer.status_code == 401
    assert "验证码错误或已过期" in answer.text
    assert 'name="code"' in answer.text


def test_a_page_asks_whoever_is_not_signed_in_to_sign_in(client: Any) -> None:
    answer = client.get("/app", follow_redirects=False)

    assert answer.status_code == 303
    assert answer.headers["location"] == "/app/sign-in?next=/app"


def test_a_signed_in_phone_without_registration_is_sent_to_register(
    client: Any, outbox: Any
) -> None:
    sign_in(client, outbox, "13800138000")

    answer = client.get("/app", follow_redirects=False)

    assert answer.headers["location"] == "/app/register"


def test_a_mistyped_document_is_shown_again_with_the_reason(
    client: Any, outbox: Any
) -> None:
    token = sign_in(client, outbox, "13800138000")

    answer = client.post(
        "/app/register",
        data={
            "kind": "cn-id",
            "number": "610113199001011231",
            "name": "张三丰",
            "csrf_token": token,
        },
    )

    assert answer.status_code == 422
    assert "证件号码无效" in answer.text
    assert 'value="610113199001011231"' in answer.text


def test_a_declared_fever_turns_the_code_yellow_with_its_reason(
    client: Any, outbox: Any
) -> None:
    token = sign_in(client, outbox, "13800138000")
    register(client, token)

    declared = client.post(
        "/app/declare",
        data={"fever": "yes", "csrf_token": token},
        follow_redirects=False,
    )
    page = client.get("/app", headers={"Accept-Language": "en"})

    assert declared.headers["location"] == "/app?notice=declared"
    assert 'data-colour="yellow"' in page.text
    assert "Fever or respiratory symptoms declared" in page.text


def test_the_code_script_gets_a_fresh_code_as_json(client: Any, outbox: Any) -> None:
    token = sign_in(client, outbox, "13800138000")
    register(client, token)

    answer = client.get("/app/code.json")

    body = answer.json()
    assert body["colour"] == "grey"
    assert body["maskedName"] == "张**"
    assert body["text"].startswith("HCZ1:")
    assert body["svg"].startswith("<svg")


def test_a_guardian_adds_a_child_sees_its_code_and_removes_it(
    client: Any, outbox: Any
) -> None:
    token = sign_in(client, outbox, "13800138000")
    register(client, token)

    added = client.post(
        "/app/family/add",
        data={"kind": "cn-id", "number": CHILD, "name": "张小明", "csrf_token": token},
        follow_redirects=False,
    )
    family = client.get("/app/family")
    child_id = int(family.text.split('href="/app/family/')[1].split('"')[0])
    code = client.get(f"/app/family/{child_id}")
    removed = client.post(
        f"/app/family/{child_id}/remove",
        data={"csrf_token": token},
        follow_redirects=False,
    )
    after = client.get(f"/app/family/{child_id}")

    assert added.status_code == 303
    assert "张**" in family.text
    assert code.status_code == 200
    assert f'data-subject="{child_id}"' in code.text
    assert f"/app/family/{child_id}/card.pdf" in code.text
    assert removed.status_code == 303
    assert after.status_code == 404


def test_an_appeal_is_filed_once_and_then_shown_as_waiting(
    client: Any, outbox: Any
) -> None:
    token = sign_in(client, outbox, "13800138000")
    register(client, token)

    filed = client.post(
        "/app/appeal",
        data={"message": "I am who I say.", "csrf_token": token},
        follow_redirects=False,
    )
    again = client.post("/app/appeal", data={"message": "Again.", "csrf_token": token})
    page = client.get("/app")

    assert filed.headers["location"] == "/app?notice=appealed"
    assert again.status_code == 422
    assert "已有一项申诉正在等待审核" in again.text
    assert "正在等待审核" in page.text


def test_without_a_configured_region_the_district_is_asked_for(
    client: Any, outbox: Any, app: Any
) -> None:
    app.state.runtime.settings.region = None
    token = sign_in(client, outbox, "13800138000")

    refused = client.post(
        "/app/register",
        data={"kind": "cn-id", "number": ADULT, "name": "张三丰", "csrf_token": token},
    )
    registered = client.post(
        "/app/register",
        data={
            "kind": "cn-id",
            "number": ADULT,
            "name": "张三丰",
            "region": "610113",
            "csrf_token": token,
        },
        follow_redirects=False,
    )

    assert refused.status_code == 422
    assert (
        'name="region" inputmode="numeric" pattern="[0-9]{6}" maxlength="6" required'
        in refused.text
    )
    assert registered.headers["location"] == "/app"
