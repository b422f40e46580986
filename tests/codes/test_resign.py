"""Codes checked by signing them again, with the private key held here.

A verifier given the private keys of its own region checks those codes by
making the signature again and comparing; every code another key signed is
verified as before. Both ways must refuse exactly what verification refuses,
with the same opaque error, except a valid signature made with some other
nonce than RFC 8032's, which no issuer of ours makes.
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature

from healthcode.codes import base45
from healthcode.codes.errors import InvalidCode, KeyConfigurationError
from healthcode.codes.format import (
    PREFIX,
    SIGNATURE_SIZE,
    Colour,
    Issuer,
    parse_code,
    signature_input,
)
from healthcode.codes.keys import KeyStore, SigningKey
from healthcode.codes.services import local_verifier
from healthcode.codes.trust import Verifier

from .support import KEY_START, NOW, code_key, seed

OPAQUE = "The code is not a valid health code."


@pytest.fixture
def own(signing_key: SigningKey) -> Verifier:
    return Verifier([signing_key.record], signers=[signing_key])


def _raw(text: str) -> bytes:
    return base45.decode(text[len(PREFIX) :])


def _text(raw: bytes) -> str:
    return PREFIX + base45.encode(raw)


def _refused(verifier: Verifier, text: str) -> str:
    with pytest.raises(InvalidCode) as caught:
        verifier.verify(text, NOW)
    assert type(caught.value) is InvalidCode
    return str(caught.value)


def test_a_code_of_a_held_key_verifies_by_signing_again(
    issuer: Issuer, own: Verifier
) -> None:
    text = issuer.screen_code(42, "张**", Colour.GREEN, NOW)

    verified = own.verify(text, NOW)

    assert verified.colour is Colour.GREEN
    assert verified.masked_name == "张**"


def test_libsodium_signs_exactly_as_cryptography(signing_key: SigningKey) -> None:
    # Ed25519 is deterministic, so both libraries give the same bytes; the
    # known-answer vectors of the format rest on that.
    for size in (0, 1, 63, 64, 200):
        message = seed(f"message {size}")[:1] * size

        assert signing_key.code_signature(message) == signing_key.sign(message)


def _outcome(verifier: Verifier, text: str) -> tuple[type[Exception], str] | None:
    try:
        verifier.verify(text, NOW)
    except InvalidCode as exc:
        return type(exc), str(exc)
    return None


def test_an_altered_body_is_refused_as_verification_refuses_it(
    issuer: Issuer, own: Verifier, verifier: Verifier
) -> None:
    # Some bytes name the key or hold the times, and altering them is
    # refused for that reason before the signature is looked at; every
    # other alteration meets the signature and gets the opaque error. Each
    # is refused in the same words whether the key is held here or not.
    raw = _raw(issuer.screen_code(42, "张**", Colour.GREEN, NOW))
    outcomes = []

    for position in range(len(raw) - SIGNATURE_SIZE):
        altered = bytearray(raw)
        altered[position] ^= 0x01
        text = _text(bytes(altered))
        outcome = _outcome(own, text)

        assert outcome is not None
        assert outcome == _outcome(verifier, text)
        outcomes.append(outcome)

    assert (InvalidCode, OPAQUE) in outcomes


def test_an_altered_signature_is_refused_opaquely(
    issuer: Issuer, own: Verifier
) -> None:
    raw = _raw(issuer.screen_code(42, "张**", Colour.GREEN, NOW))
    body_size = len(raw) - SIGNATURE_SIZE

    for position in range(body_size, len(raw)):
        for flip in (0x01, 0x80, 0xFF):
            altered = bytearray(raw)
            altered[position] ^= flip

            assert _refused(own, _text(bytes(altered))) == OPAQUE


def test_a_forged_signature_is_refused_opaquely(
    signing_key: SigningKey, own: Verifier
) -> None:
    # A forger who knows the key id signs with a key of their own.
    forger = SigningKey(signing_key.record, code_key(label="forger").private_key)
    forged = Issuer(forger, seed("subject")).screen_code(42, "张**", Colour.GREEN, NOW)

    assert _refused(own, forged) == OPAQUE


def test_refusals_read_the_same_with_and_without_the_private_key(
    issuer: Issuer, own: Verifier, verifier: Verifier
) -> None:
    raw = _raw(issuer.screen_code(42, "张**", Colour.GREEN, NOW))
    altered = raw[:-1] + bytes([raw[-1] ^ 0x01])

    assert _refused(own, _text(altered)) == _refused(verifier, _text(altered))


def test_a_valid_signature_with_another_nonce_is_refused(
    signing_key: SigningKey, issuer: Issuer, own: Verifier, verifier: Verifier
) -> None:
    text = issuer.screen_code(42, "张**", Colour.GREEN, NOW)
    _, body, ours = parse_code(text)
    message = signature_input(body)
    other = _sign_with_nonce(
        signing_key.private_key.private_bytes_raw(),
        message,
        secrets.randbelow(_L - 1) + 1,
    )
    signing_key.record.check_code_signature(other, message)  # a valid signature
    changed = PREFIX + base45.encode(body + other)

    assert other != ours
    assert verifier.verify(changed, NOW).colour is Colour.GREEN
    assert _refused(own, changed) == OPAQUE


def test_the_public_key_path_refuses_a_bad_signature(signing_key: SigningKey) -> None:
    signature = signing_key.code_signature(b"a message")

    with pytest.raises(InvalidSignature):
        signing_key.record.check_code_signature(signature, b"another message")
    with pytest.raises(InvalidSignature):
        signing_key.record.check_code_signature(signature[:-1], b"a message")


def test_a_verifier_refuses_a_private_key_that_is_not_its_records(
    signing_key: SigningKey,
) -> None:
    forger = SigningKey(signing_key.record, code_key(label="forger").private_key)

    with pytest.raises(KeyConfigurationError, match=signing_key.record.name):
        Verifier([signing_key.record], signers=[forger])
    with pytest.raises(KeyConfigurationError, match=signing_key.record.name):
        Verifier([code_key(label="other").record], signers=[signing_key])


def test_codes_of_other_regions_are_still_verified(signing_key: SigningKey) -> None:
    peer = code_key("420100")
    text = Issuer(peer, seed("subject 420100")).screen_code(
        7, "李**", Colour.YELLOW, NOW
    )
    both = Verifier([signing_key.record, peer.record], signers=[signing_key])
    raw = _raw(text)

    assert both.verify(text, NOW).colour is Colour.YELLOW
    assert _refused(both, _text(raw[:-1] + bytes([raw[-1] ^ 0x01]))) == OPAQUE


def test_the_local_verifier_signs_again_with_the_stores_keys(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    store.generate("310000", KEY_START)
    signer = store.signing_key("310000", NOW)
    text = Issuer(signer, store.subject_secret("310000")).screen_code(
        42, "张**", Colour.GREEN, NOW
    )
    _, body, _ = parse_code(text)
    other = _sign_with_nonce(
        signer.private_key.private_bytes_raw(), signature_input(body), 12345
    )
    changed = PREFIX + base45.encode(body + other)

    assert local_verifier(store).verify(text, NOW).colour is Colour.GREEN
    assert _refused(local_verifier(store), changed) == OPAQUE
    assert Verifier(local_verifier(store).keys).verify(changed, NOW)


# Ed25519 signing with a chosen nonce, from the arithmetic of RFC 8032
# section 5.1: a signature that verifies but that a deterministic signer
# would never make. Slow and not constant-time; for this test alone.

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P


def _add(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    e = (y1 + x1) * (y2 + x2) % _P - (y1 - x1) * (y2 - x2) % _P
    f = 2 * z1 * z2 % _P - 2 * t1 * t2 * _D % _P
    g = 2 * z1 * z2 % _P + 2 * t1 * t2 * _D % _P
    h = (y1 + x1) * (y2 + x2) % _P + (y1 - x1) * (y2 - x2) % _P
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _times(scalar: int, point: tuple[int, ...]) -> tuple[int, ...]:
    result: tuple[int, ...] = (0, 1, 1, 0)
    while scalar:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def _base() -> tuple[int, ...]:
    y = 4 * pow(5, _P - 2, _P) % _P
    xx = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    x = pow(xx, (_P + 3) // 8, _P)
    if (x * x - xx) % _P:
        x = x * pow(2, (_P - 1) // 4, _P) % _P
    if x & 1:
        x = _P - x
    return (x, y, 1, x * y % _P)


def _encode(point: tuple[int, ...]) -> bytes:
    inverse = pow(point[2], _P - 2, _P)
    x, y = point[0] * inverse % _P, point[1] * inverse % _P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def _sign_with_nonce(seed_bytes: bytes, message: bytes, nonce: int) -> bytes:
    digest = hashlib.sha512(seed_bytes).digest()
    scalar = int.from_bytes(digest[:32], "little")
    scalar = scalar & ((1 << 254) - 8) | (1 << 254)
    public = _encode(_times(scalar, _base()))
    r = _encode(_times(nonce, _base()))
    k = int.from_bytes(hashlib.sha512(r + public + message).digest(), "little") % _L
    return r + ((nonce + k * scalar) % _L).to_bytes(32, "little")
