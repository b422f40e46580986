from __future__ import annotations

import json
import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from healthcode.codes.errors import (
    CodeParameterError,
    KeyConfigurationError,
    KeyStoreError,
)
from healthcode.codes.format import Colour, Issuer
from healthcode.codes.keys import (
    KeyRecord,
    KeyRole,
    KeyState,
    KeyStore,
    check_region,
    key_id_for,
)

from .support import NOW


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys")


def test_generate_writes_private_files_for_the_owner_alone(store: KeyStore) -> None:
    record = store.generate("310000", NOW)

    private = store.directory / f"{record.name}.key"
    secret = store.directory / "310000.subject"
    assert mode(store.directory) == 0o700
    assert mode(private) == 0o600
    assert mode(secret) == 0o600
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert len(secret.read_bytes()) == 32
    assert record.key_id == key_id_for(record.public_key)
    assert record.state(NOW) is KeyState.ACTIVE


def test_public_record_holds_no_private_material(store: KeyStore) -> None:
    record = store.generate("310000", NOW)

    data = json.loads((store.directory / f"{record.name}.json").read_text())

    assert set(data) == {
        "region",
        "key_id",
        "role",
        "public_key",
        "valid_from",
        "sign_until",
        "accept_until",
        "revoked_at",
    }
    assert KeyRecord.from_json(data) == record


def test_records_are_listed(store: KeyStore) -> None:
    first = store.generate("310000", NOW)
    second = store.generate("420100", NOW)
    anchor = store.generate("100000", NOW, KeyRole.TRUST_LIST)

    assert store.records() == [anchor, first, second]


def test_empty_store_lists_nothing(store: KeyStore) -> None:
    assert store.records() == []


def test_second_signing_key_for_a_region_is_refused(store: KeyStore) -> None:
    existing = store.generate("310000", NOW)

    with pytest.raises(KeyStoreError, match=existing.name):
        store.generate("310000", NOW + timedelta(hours=1))


def test_roles_are_counted_apart(store: KeyStore) -> None:
    store.generate("310000", NOW)

    anchor = store.generate("310000", NOW, KeyRole.TRUST_LIST)

    assert anchor.role is KeyRole.TRUST_LIST


@pytest.mark.parametrize("region", ["31000", "0310000", "031000", "31000a", "", 310000])
def test_region_must_look_like_a_division_code(store: KeyStore, region: object) -> None:
    with pytest.raises(CodeParameterError):
        check_region(region)  # type: ignore[arg-type]
    with pytest.raises(CodeParameterError):
        store.generate(region, NOW)  # type: ignore[arg-type]


def test_rotation_hands_over_and_keeps_the_old_key_accepted(store: KeyStore) -> None:
    old = store.generate("310000", NOW)
    later = NOW + timedelta(days=30)

    new = store.rotate("310000", later)

    old = store.record("310000", old.key_id)
    assert new.valid_from == later
    assert old.sign_until == later
    assert old.accept_until == later + timedelta(days=14)
    assert old.state(later + timedelta(days=1)) is KeyState.OVERLAP
    assert old.state(later + timedelta(days=15)) is KeyState.RETIRED
    assert store.signing_key("310000", later).record == new
    assert not (store.directory / f"{old.name}.key").exists()


def test_rotation_with_lead_keeps_the_old_key_signing_until_handover(
    store: KeyStore,
) -> None:
    old = store.generate("310000", NOW)

    new = store.rotate("310000", NOW, lead=timedelta(days=1))

    assert store.signing_key("310000", NOW + timedelta(hours=23)).record.key_id == (
        old.key_id
    )
    assert store.signing_key("310000", NOW + timedelta(days=1)).record == new
    assert (store.directory / f"{old.name}.key").exists()


def test_rotation_without_a_key_names_the_region(store: KeyStore) -> None:
    with pytest.raises(KeyConfigurationError, match="region 310000"):
        store.rotate("310000", NOW)


def test_negative_overlap_is_refused(store: KeyStore) -> None:
    store.generate("310000", NOW)

    with pytest.raises(CodeParameterError):
        store.rotate("310000", NOW, overlap=timedelta(days=-1))


def test_retire_stops_signing_and_deletes_the_private_key(store: KeyStore) -> None:
    record = store.generate("310000", NOW)

    retired = store.retire("310000", record.key_id.hex(), NOW + timedelta(hours=1))

    assert retired.sign_until == NOW + timedelta(hours=1)
    assert retired.accept_until == NOW + timedelta(hours=1)
    assert retired.state(NOW + timedelta(hours=2)) is KeyState.RETIRED
    assert not (store.directory / f"{record.name}.key").exists()
    with pytest.raises(KeyConfigurationError):
        store.signing_key("310000", NOW + timedelta(hours=2))


def test_retire_shortens_but_never_lengthens_an_overlap(store: KeyStore) -> None:
    old = store.generate("310000", NOW)
    store.rotate("310000", NOW)

    retired = store.retire("310000", old.key_id, NOW, overlap=timedelta(days=30))

    assert retired.accept_until == NOW + timedelta(days=14)


def test_retiring_twice_is_refused(store: KeyStore) -> None:
    record = store.generate("310000", NOW)
    store.retire("310000", record.key_id, NOW)

    with pytest.raises(KeyStoreError, match="already retired"):
        store.retire("310000", record.key_id, NOW + timedelta(seconds=1))


def test_revoke_rejects_at_once_and_deletes_the_key(store: KeyStore) -> None:
    record = store.generate("310000", NOW)

    revoked = store.revoke("310000", record.key_id, NOW + timedelta(days=2))

    assert revoked.revoked_at == NOW + timedelta(days=2)
    assert revoked.state(NOW + timedelta(days=2)) is KeyState.REVOKED
    assert revoked.state(NOW + timedelta(days=1)) is KeyState.ACTIVE
    assert not (store.directory / f"{record.name}.key").exists()
    with pytest.raises(KeyStoreError, match="already revoked"):
        store.revoke("310000", record.key_id, NOW + timedelta(days=3))


def test_a_region_with_a_revoked_key_can_start_again(store: KeyStore) -> None:
    record = store.generate("310000", NOW)
    store.revoke("310000", record.key_id, NOW)

    fresh = store.generate("310000", NOW + timedelta(minutes=1))

    assert store.signing_key("310000", NOW + timedelta(minutes=1)).record == fresh


def test_unknown_key_is_named(store: KeyStore) -> None:
    with pytest.raises(KeyStoreError, match="310000-00000000"):
        store.record("310000", "00000000")


@pytest.mark.parametrize("shape", ["a loop of links", "a file for a folder"])
def test_a_key_or_secret_that_cannot_be_there_is_named_as_missing(
    tmp_path: Path, shape: str
) -> None:
    if shape == "a loop of links":
        store = KeyStore(tmp_path / "keys")
        store.directory.mkdir()
        name = store.directory / "310000-00000000.json"
        name.symlink_to(name)
        (store.directory / "310000.subject").symlink_to("310000.subject")
    else:
        (tmp_path / "keys").write_text("not a folder")
        store = KeyStore(tmp_path / "keys")

    with pytest.raises(KeyStoreError, match="No key 310000-00000000"):
        store.record("310000", "00000000")
    with pytest.raises(KeyConfigurationError, match="no subject secret for region"):
        store.subject_secret("310000")


@pytest.mark.parametrize("key_id", ["0000", "zzzzzzzz", "000000000"])
def test_malformed_key_id_is_refused(store: KeyStore, key_id: str) -> None:
    with pytest.raises(CodeParameterError, match="hexadecimal"):
        store.record("310000", key_id)


def test_readable_private_key_is_refused_by_name(store: KeyStore) -> None:
    record = store.generate("310000", NOW)
    os.chmod(store.directory / f"{record.name}.key", 0o644)

    with pytest.raises(KeyConfigurationError, match=rf"{record.name}.*0644.*0600"):
        store.signing_key("310000", NOW)


def test_readable_subject_secret_is_refused(store: KeyStore) -> None:
    store.generate("310000", NOW)
    os.chmod(store.directory / "310000.subject", 0o640)

    with pytest.raises(KeyConfigurationError, match="region 310000"):
        store.subject_secret("310000")


def test_missing_subject_secret_names_the_region(store: KeyStore) -> None:
    with pytest.raises(KeyConfigurationError, match="region 420100"):
        store.subject_secret("420100")


def test_private_key_of_another_key_is_refused(store: KeyStore) -> None:
    first = store.generate("310000", NOW)
    second = store.generate("420100", NOW)
    (store.directory / f"{first.name}.key").write_bytes(
        (store.directory / f"{second.name}.key").read_bytes()
    )

    with pytest.raises(KeyConfigurationError, match=rf"{first.name}.*does not match"):
        store.signing_key("310000", NOW)


def test_missing_private_key_is_named(store: KeyStore) -> None:
    record = store.generate("310000", NOW)
    (store.directory / f"{record.name}.key").unlink()

    with pytest.raises(KeyConfigurationError, match=record.name):
        store.signing_key("310000", NOW)


def test_garbled_private_key_is_named(store: KeyStore) -> None:
    record = store.generate("310000", NOW)
    (store.directory / f"{record.name}.key").write_bytes(b"not a key")

    with pytest.raises(KeyConfigurationError, match=record.name):
        store.signing_key("310000", NOW)


def test_record_under_the_wrong_file_name_is_refused(store: KeyStore) -> None:
    record = store.generate("310000", NOW)
    os.rename(
        store.directory / f"{record.name}.json",
        store.directory / "310000-ffffffff.json",
    )

    with pytest.raises(KeyConfigurationError, match="file name"):
        store.records()


def test_tampered_record_is_refused(store: KeyStore) -> None:
    record = store.generate("310000", NOW)
    path = store.directory / f"{record.name}.json"
    data = json.loads(path.read_text())
    data["public_key"] = "A" * 43
    path.write_text(json.dumps(data))

    with pytest.raises(KeyConfigurationError, match="does not match"):
        store.records()


def test_store_keys_issue_codes(store: KeyStore) -> None:
    store.generate("310000", NOW)
    issuer = Issuer(store.signing_key("310000", NOW), store.subject_secret("310000"))

    text = issuer.screen_code(42, "张**", Colour.GREEN, NOW)

    assert text.startswith("HCZ1:")


def test_logs_name_keys_and_never_hold_private_material(store: KeyStore) -> None:
    with capture_logs() as logs:
        record = store.generate("310000", NOW)
        store.rotate("310000", NOW + timedelta(days=1))
    private = (store.directory / "310000.subject").read_bytes()

    events = [entry["event"] for entry in logs]
    text = repr(logs)
    assert events == [
        "key_generated",
        "key_generated",
        "key_rotated",
        "private_key_deleted",
    ]
    assert record.name in text
    assert "PRIVATE" not in text
    assert private.hex() not in text


def test_signing_key_repr_hides_the_private_key(store: KeyStore) -> None:
    store.generate("310000", NOW)

    shown = repr(store.signing_key("310000", NOW))

    assert "private_key" not in shown


def test_a_change_made_by_another_store_on_the_folder_is_read_at_once(
    store: KeyStore,
) -> None:
    record = store.generate("310000", NOW)
    assert store.record("310000", record.key_id).revoked_at is None
    other = KeyStore(store.directory)

    other.revoke("310000", record.key_id, NOW + timedelta(minutes=1))

    seen = store.record("310000", record.key_id)
    assert seen.revoked_at == NOW + timedelta(minutes=1)
    assert [r.revoked_at for r in store.records()] == [NOW + timedelta(minutes=1)]


def test_a_subject_secret_made_readable_to_others_is_refused_after_a_read(
    store: KeyStore,
) -> None:
    store.generate("310000", NOW)
    store.subject_secret("310000")
    path = store.directory / "310000.subject"

    path.chmod(0o644)

    with pytest.raises(KeyConfigurationError, match="0644"):
        store.subject_secret("310000")


def test_held_signing_keys_are_the_private_keys_still_on_disk(
    store: KeyStore,
) -> None:
    old = store.generate("310000", NOW)
    new = store.rotate("310000", NOW, lead=timedelta(0))
    store.generate("420100", NOW)

    held = {key.record.name for key in store.held_signing_keys()}

    # The rotated key stopped signing at once, so its private key is gone.
    assert new.name in held
    assert old.name not in held
    assert len(held) == 2


def test_an_unusable_private_key_is_left_out_with_a_log_line(store: KeyStore) -> None:
    record = store.generate("310000", NOW)
    os.chmod(store.directory / f"{record.name}.key", 0o644)

    with capture_logs() as logs:
        held = store.held_signing_keys()

    assert held == []
    assert [(e["event"], e["key"]) for e in logs] == [
        ("private_key_unusable", record.name)
    ]
