"""Write the known-answer vectors of the code format into this folder.

Run it by hand (``python tests/codes/vectors/generate.py``) only after a
deliberate change of the format, and commit the files it writes together
with the change: the tests compare the code's output with these files, so
an accidental change of the format shows as a failing test.

Every input is fixed: the keys come from seeds, the clock is a constant and
the subject reference's random bytes are given.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from healthcode.codes import base45, qr
from healthcode.codes.format import PREFIX, Colour, Issuer
from healthcode.codes.keys import SigningKey
from healthcode.codes.statuslist import build_status_list

HERE = Path(__file__).resolve().parent
KEY_START = datetime(2026, 1, 1, tzinfo=UTC)


def seed(label: str) -> bytes:
    return hashlib.sha256(f"healthcode test vector {label}".encode()).digest()


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def code_vector(
    name: str,
    description: str,
    *,
    region: str,
    purpose: str,
    masked_name: str,
    issued_at: datetime,
    nonce: bytes,
    colour: Colour | None = None,
    status_index: int | None = None,
    resident_id: int = 4_200_001,
    zone: str = "Asia/Shanghai",
    daily_expiry: time = time(0, 0),
    checks: list[tuple[datetime, str]] | None = None,
) -> dict[str, object]:
    key_seed = seed(f"code key {region}")
    secret = seed(f"subject secret {region}")
    signing_key = SigningKey.from_seed(key_seed, region, KEY_START)
    issuer = Issuer(
        signing_key,
        secret,
        zone=ZoneInfo(zone),
        daily_expiry=daily_expiry,
        random_bytes=lambda size: nonce[:size],
    )
    if purpose == "screen":
        assert colour is not None
        text = issuer.screen_code(resident_id, masked_name, colour, issued_at)
    else:
        assert status_index is not None
        text = issuer.paper_code(resident_id, masked_name, status_index, issued_at)
    raw = base45.decode(text[len(PREFIX) :])
    body, signature = raw[:-64], raw[-64:]
    version, width = qr.symbol_size(text)
    return {
        "name": name,
        "description": description,
        "inputs": {
            "signing_key_seed": key_seed.hex(),
            "key_valid_from": iso(KEY_START),
            "region": region,
            "subject_secret": secret.hex(),
            "resident_id": resident_id,
            "nonce": nonce.hex(),
            "purpose": purpose,
            "colour": colour.value if colour else None,
            "status_index": status_index,
            "masked_name": masked_name,
            "issued_at": iso(issued_at),
            "zone": zone,
            "daily_expiry": daily_expiry.strftime("%H:%M"),
            "screen_ttl_seconds": 300,
            "paper_ttl_seconds": 14 * 86400,
        },
        "expected": {
            "public_key": signing_key.record.public_key.hex(),
            "key_id": signing_key.record.key_id.hex(),
            "body": body.hex(),
            "signature": signature.hex(),
            "text": text,
            "qr_version_m": version,
            "qr_modules": width,
        },
        "checks": [{"at": iso(at), "result": result} for at, result in checks or []],
    }


def main() -> None:
    at = datetime(2026, 3, 2, 1, 15, 0, tzinfo=UTC)  # 09:15 in Shanghai
    vectors = [
        code_vector(
            "screen-green",
            "A green screen code for a three-character name, masked.",
            region="310000",
            purpose="screen",
            colour=Colour.GREEN,
            masked_name="张**",
            issued_at=at,
            nonce=bytes.fromhex("0001020304050607"),
            checks=[
                (at, "valid"),
                (at + timedelta(minutes=4, seconds=59), "valid"),
                (at + timedelta(minutes=5), "expired_code"),
                (at - timedelta(minutes=6), "not_yet_valid_code"),
            ],
        ),
        code_vector(
            "screen-red-before-midnight",
            "A red screen code issued at 23:58 Shanghai time: it expires at"
            " 00:00, two minutes later, not after five.",
            region="310000",
            purpose="screen",
            colour=Colour.RED,
            masked_name="阿***·***",
            issued_at=datetime(2026, 3, 2, 15, 58, 0, tzinfo=UTC),
            nonce=bytes.fromhex("1011121314151617"),
            checks=[
                (datetime(2026, 3, 2, 15, 59, 59, tzinfo=UTC), "valid"),
                (datetime(2026, 3, 2, 16, 0, 0, tzinfo=UTC), "expired_code"),
            ],
        ),
        code_vector(
            "screen-rare-name",
            "A grey screen code whose full name starts with U+20164, outside"
            " the Basic Multilingual Plane.",
            region="420100",
            purpose="screen",
            colour=Colour.GREY,
            masked_name="\U00020164明华",
            issued_at=at,
            nonce=bytes.fromhex("2021222324252627"),
            checks=[(at, "valid")],
        ),
        code_vector(
            "paper",
            "A paper code: no colour, a status list index, fourteen days.",
            region="310000",
            purpose="paper",
            status_index=1_234_567,
            masked_name="张**",
            issued_at=at,
            nonce=bytes.fromhex("3031323334353637"),
            checks=[
                (at + timedelta(days=13, hours=23), "valid"),
                (at + timedelta(days=14), "expired_code"),
            ],
        ),
    ]
    vectors.append(spaces_and_percent_vector(at))
    for vector in vectors:
        path = HERE / f"code-{vector['name']}.json"
        path.write_text(json.dumps(vector, indent=2, ensure_ascii=False) + "\n")
    write_status_list(at)


def spaces_and_percent_vector(at: datetime) -> dict[str, object]:
    # Search the nonces in order for a code whose text holds spaces and a
    # per cent sign followed by two hexadecimal digits, the shape a
    # URL-decoding scanner or verifier would rewrite.
    for counter in range(10_000):
        vector = code_vector(
            "screen-spaces-and-percent",
            "A yellow screen code whose text holds spaces and '%' followed by"
            " two hex digits; it verifies only exactly as written.",
            region="310000",
            purpose="screen",
            colour=Colour.YELLOW,
            masked_name="李**",
            issued_at=at,
            nonce=counter.to_bytes(8, "big"),
            checks=[(at, "valid")],
        )
        text = vector["expected"]["text"]  # type: ignore[index]
        if " " in text and re.search("%[0-9A-F]{2}", text):
            return vector
    raise RuntimeError("no nonce below 10,000 gave the wanted text")


def write_status_list(at: datetime) -> None:
    signing_key = SigningKey.from_seed(seed("code key 310000"), "310000", KEY_START)
    colours = {
        3: Colour.YELLOW,
        4: Colour.RED,
        200: Colour.GREY,
        1_234_567: Colour.RED,
        1_999_999: Colour.YELLOW,
    }
    document = build_status_list(colours, 2_000_000, signing_key, at)
    (HERE / "statuslist-310000.bin").write_bytes(document)
    expectation = {
        "description": "A status list of region 310000 for 2,000,000 indices.",
        "signing_key_seed": seed("code key 310000").hex(),
        "key_valid_from": iso(KEY_START),
        "issued_at": iso(at),
        "valid_until": iso(at + timedelta(hours=36)),
        "index_space": 2_000_000,
        "colours": {str(index): colour.value for index, colour in colours.items()},
        "green_samples": [0, 1, 5, 199, 201, 1_234_566, 1_234_568],
        "size": len(document),
    }
    (HERE / "statuslist-310000.json").write_text(
        json.dumps(expectation, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
