from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from healthcode.codes.cli import bench_codes, keys_app
from healthcode.codes.keys import KeyRole, KeyState, KeyStore
from healthcode.codes.trust import load_trust_list

EU_DCC = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata" / "eu-dcc"

runner = CliRunner()


def keys(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(keys_app, list(args), env=env)


def test_generate_and_list(tmp_path: Path) -> None:
    directory = tmp_path / "store"

    generated = keys("generate", "310000", "--dir", str(directory))
    listed = keys("list", "--dir", str(directory), "--json")

    assert generated.exit_code == 0, generated.output
    assert "generated 310000-" in generated.output
    records = json.loads(listed.output)
    assert [r["region"] for r in records] == ["310000"]
    assert "PRIVATE" not in listed.output
    name = f"310000-{records[0]['key_id']}"
    assert stat.S_IMODE((directory / f"{name}.key").stat().st_mode) == 0o600


def test_directory_comes_from_the_environment(tmp_path: Path) -> None:
    directory = tmp_path / "from-env"

    result = keys("generate", "420100", env={"HEALTHCODE_KEY_DIR": str(directory)})

    assert result.exit_code == 0, result.output
    assert [r.region for r in KeyStore(directory).records()] == ["420100"]


def test_directory_defaults_to_keys_here(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HEALTHCODE_KEY_DIR", raising=False)

    result = keys("generate", "310000")

    assert result.exit_code == 0, result.output
    assert len(KeyStore(tmp_path / "keys").records()) == 1


def test_table_listing_shows_states(tmp_path: Path) -> None:
    directory = str(tmp_path)
    keys("generate", "310000", "--dir", directory)
    keys("rotate", "310000", "--dir", directory)

    result = keys("list", "--dir", directory)

    assert result.exit_code == 0, result.output
    assert "overlap" in result.output
    assert "active" in result.output


def test_rotate_retire_revoke(tmp_path: Path) -> None:
    directory = str(tmp_path)
    keys("generate", "310000", "--dir", directory)
    first = KeyStore(tmp_path).records()[0]

    rotated = keys("rotate", "310000", "--dir", directory, "--overlap-days", "1")
    retired = keys("retire", "310000", first.key_id.hex(), "--dir", directory)
    second = next(
        r for r in KeyStore(tmp_path).records() if r != first and not r.sign_until
    )
    revoked = keys("revoke", "310000", second.key_id.hex(), "--dir", directory)

    assert rotated.exit_code == 0, rotated.output
    assert retired.exit_code == 0, retired.output
    assert revoked.exit_code == 0, revoked.output
    states = {r.key_id: r for r in KeyStore(tmp_path).records()}
    assert states[first.key_id].accept_until is not None
    assert states[second.key_id].revoked_at is not None
    assert f"revoked {second.name}  code  revoked" in revoked.output


def test_errors_are_one_sentence_with_a_code(tmp_path: Path) -> None:
    keys("generate", "310000", "--dir", str(tmp_path))

    again = keys("generate", "310000", "--dir", str(tmp_path))
    bad_region = keys("generate", "31000", "--dir", str(tmp_path))
    unknown = keys("retire", "310000", "00000000", "--dir", str(tmp_path))

    assert again.exit_code == 1
    assert "error [key_store_error]: Region 310000 already has" in again.output
    assert bad_region.exit_code == 1
    assert "code_parameter_error" in bad_region.output
    assert unknown.exit_code == 1
    assert "310000-00000000" in unknown.output


def test_trust_list_command(tmp_path: Path) -> None:
    directory = str(tmp_path / "store")
    other = tmp_path / "other"
    keys("generate", "310000", "--dir", directory)
    keys("generate", "100000", "--dir", directory, "--role", "trust-list")
    keys("generate", "420100", "--dir", str(other))
    exported = tmp_path / "wuhan.json"
    exported.write_text(keys("list", "--dir", str(other), "--json").stdout)
    out = tmp_path / "trust.json"

    result = keys(
        "trust-list",
        "--signer",
        "100000",
        "--out",
        str(out),
        "--dir",
        directory,
        "--add",
        str(exported),
    )

    assert result.exit_code == 0, result.output
    store = KeyStore(tmp_path / "store")
    anchor = next(r for r in store.records() if r.role is KeyRole.TRUST_LIST)
    trust_list = load_trust_list(out.read_bytes(), [anchor], anchor.valid_from)
    assert sorted(r.region for r in trust_list.keys) == ["310000", "420100"]
    assert all(r.state(anchor.valid_from) is KeyState.ACTIVE for r in trust_list.keys)


def _bench_app() -> typer.Typer:
    app = typer.Typer()
    app.command("codes")(bench_codes)
    # A second command keeps typer from folding the app into that one.
    app.command("noop")(lambda: None)
    return app


@pytest.mark.slow
def test_bench_prints_our_sizes_beside_the_eu_dcc() -> None:
    if not EU_DCC.is_dir():
        pytest.skip(f"the EU DCC test payloads are not at {EU_DCC}")

    result = runner.invoke(
        _bench_app(),
        ["codes", "--eu-dcc", str(EU_DCC), "--seconds", "0.05"],
        env={"COLUMNS": "200"},
    )

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    ours = [line for line in lines if "healthcode" in line and "│" in line]
    assert len(ours) == 4
    assert all(re.search(r"│\s+7 │\s+45 │$", line) for line in ours)
    assert any("EU DCC NL" in line for line in lines)
    assert "raw Ed25519 sign" in result.output
    assert "bytes per resident" in result.output


def test_bench_without_eu_dcc_says_so(tmp_path: Path) -> None:
    result = runner.invoke(
        _bench_app(),
        ["codes", "--eu-dcc", str(tmp_path / "absent"), "--seconds", "0.01"],
    )

    assert result.exit_code == 0, result.output
    assert "EU DCC test payloads were not found" in result.output
    assert "EU DCC NL" not in result.output
