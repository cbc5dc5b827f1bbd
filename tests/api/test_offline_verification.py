"""`ipx verify` and the docs/verify.md recipe check real bundles offline, and catch tampering."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ipx.config import PROJECT_ROOT
from ipx.registry import merkle, signing
from ipx.registry.evidence import build_bundle
from ipx.registry.note import Checkpoint, sign_note
from tests.conftest import png_bytes

IPX = [sys.executable, "-m", "ipx.cli"]


@pytest.fixture
def bundle_and_file(client, make_user, tmp_path: Path) -> tuple[Path, Path]:
    data = png_bytes(21)
    work = make_user("Dora Maar").register(data, title="Portrait").json()
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps(client.get(f"/api/v1/works/{work['work_id']}/evidence").json()))
    file = tmp_path / "work.png"
    file.write_bytes(data)
    return bundle, file


@pytest.fixture
def keys(client, tmp_path: Path) -> Path:
    """A saved copy of IPX's published keys, as a verifier keeps it."""
    path = tmp_path / "ipx-keys.json"
    path.write_text(json.dumps(client.get("/.well-known/ipx/keys").json()))
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*IPX, *args], capture_output=True, text=True, cwd=PROJECT_ROOT)


def forged_with_own_key(bundle: dict, **changes: object) -> dict:
    """What anyone can make: the statement changed at will, signed with a key of their own, and a one-entry log
    whose checkpoint that key signs — every check but "is this IPX's key" agrees with itself."""
    key = signing.generate_private_key()
    key_id = signing.key_id(key.public_key())
    statement = {**bundle["statement"], **changes, "key_id": key_id}
    body, signature = signing.sign_statement(key, statement)
    leaf = merkle.leaf_hash(body)
    origin = bundle["log"]["origin"]
    checkpoint = sign_note(Checkpoint(origin, 1, leaf).body(), origin, key)
    pem = signing.public_key_pem(key.public_key())
    return build_bundle(statement=statement, signature=signature, key_id=key_id, public_key_pem=pem, origin=origin,
                        index=0, tree_size=1, leaf_hash=leaf, inclusion_proof=[], checkpoint=checkpoint,
                        checkpoint_key={"key_id": key_id, "public_key_pem": pem})


def test_cli_verifies_a_good_bundle_and_file(bundle_and_file, keys):
    bundle, file = bundle_and_file
    result = run("verify", str(bundle), str(file), "--keys", str(keys))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "VERIFIED" in result.stdout and "Dora Maar" in result.stdout
    assert "published by IPX" in result.stdout
    as_json = json.loads(run("verify", str(bundle), str(file), "--keys", str(keys), "--json").stdout)
    assert as_json["valid"] is True and as_json["type"] == "ipx.registration/v1"
    assert as_json["proves"].startswith("“Portrait” (sha256 ") and as_json["revoked"] is None


def test_without_ipx_keys_nothing_is_verified(bundle_and_file):
    """The bundle's own key proves nothing: IPX's published list is what the signature is checked against."""
    bundle, file = bundle_and_file
    result = run("verify", str(bundle), str(file))
    assert result.returncode == 2 and "VERIFIED" not in result.stdout
    assert "give IPX's published keys with --keys FILE" in result.stderr


def test_a_bundle_signed_with_anyone_elses_key_is_refused(bundle_and_file, keys, tmp_path):
    bundle, file = bundle_and_file
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(forged_with_own_key(
        json.loads(bundle.read_text()), creator={"account_id": "mallory", "display_name": "Mallory"},
        registered_at="2025-01-01T00:00:00.000000Z")))

    result = run("verify", str(forged), str(file), "--keys", str(keys))

    assert result.returncode == 1 and "NOT VERIFIED" in result.stdout
    assert "is not among IPX's published keys: IPX did not sign this" in result.stdout


def test_cli_names_the_failed_check(bundle_and_file, keys, tmp_path):
    bundle, file = bundle_and_file
    document = json.loads(bundle.read_text())
    document["statement"]["registered_at"] = "2001-01-01T00:00:00.000000Z"
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(document))
    result = run("verify", str(tampered), str(file), "--keys", str(keys))
    assert result.returncode == 1
    assert "NOT VERIFIED" in result.stdout and "statement signature" in result.stdout
    other = tmp_path / "other.png"
    other.write_bytes(png_bytes(22))
    result = run("verify", str(bundle), str(other), "--keys", str(keys))
    assert result.returncode == 1 and "file hash" in result.stdout
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    result = run("verify", str(garbage), "--keys", str(keys))
    assert result.returncode == 2 and "cannot read" in result.stderr
    # damaged in ways that used to end in a traceback, or that int() waved through
    genuine = json.loads(bundle.read_text())
    proof_length = len(genuine["log"]["inclusion_proof"])
    for damage in ({"key": {"public_key_pem": 5, "key_id": "x"}}, {"statement": []},
                   {"log": {**genuine["log"], "checkpoint": 5}}, {"statement": {"n": 2**64}},
                   {"log": {**genuine["log"], "index": genuine["log"]["index"] - 2**proof_length}},
                   {"log": {**genuine["log"], "index": str(genuine["log"]["index"])}},
                   {"log": {**genuine["log"], "index": 1e400}}, {"statement": {**genuine["statement"], "type": "x"}},
                   {"statement": {**genuine["statement"], "creator": "Mallory"}},
                   {"log": {**genuine["log"], "origin": 7}}):
        damaged = tmp_path / "damaged.json"
        damaged.write_text(json.dumps({**genuine, **damage}))
        result = run("verify", str(damaged), str(file), "--keys", str(keys))
        assert result.returncode == 1 and "NOT VERIFIED" in result.stdout, (damage, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
    result = run("verify", str(bundle), "--keys", str(garbage))
    assert result.returncode == 2 and "published keys" in result.stderr


def test_a_member_given_twice_is_refused(bundle_and_file, keys, tmp_path):
    """Python keeps the last of two same-named members, other parsers the first: a forged title placed before the
    genuine one would be read by people, the genuine one checked by the verifier."""
    bundle, file = bundle_and_file
    text = bundle.read_text()
    doubled = tmp_path / "doubled.json"
    doubled.write_text(text.replace('"statement": {', '"statement": {"title": "Stolen", ', 1))

    result = run("verify", str(doubled), str(file), "--keys", str(keys))

    assert result.returncode == 2
    assert "the member 'title' appears twice in one object" in result.stderr


def test_pinned_keys_must_include_the_bundle_key(bundle_and_file, keys, tmp_path):
    bundle, file = bundle_and_file
    assert run("verify", str(bundle), str(file), "--keys", str(keys)).returncode == 0
    keys.write_text(json.dumps({"keys": [{"key_id": "0" * 64, "valid_from": "2026-01-01T00:00:00Z"}]}))
    result = run("verify", str(bundle), str(file), "--keys", str(keys))
    assert result.returncode == 1 and "not among IPX's published keys" in result.stdout


def test_the_documented_standalone_script_agrees(bundle_and_file, keys, tmp_path):
    bundle, file = bundle_and_file
    doc = (PROJECT_ROOT / "docs" / "verify.md").read_text()
    script = re.search(r"```python\n(.*?)```", doc, re.S).group(1)  # type: ignore[union-attr]
    path = tmp_path / "verify_ipx.py"
    path.write_text(script)

    def verify(document: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(path), str(document), str(keys), str(file)], capture_output=True,
                              text=True)

    ok = verify(bundle)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.count("ok   ") == 8 and "'Portrait' registered by Dora Maar no later than" in ok.stdout
    genuine = json.loads(bundle.read_text())
    tampered = tmp_path / "tampered.json"
    for damage, failing in (({"index": genuine["log"]["index"] + 1}, "FAIL inclusion proof"),
                            ({"index": genuine["log"]["index"] - 2 ** len(genuine["log"]["inclusion_proof"])},
                             "FAIL inclusion proof")):
        tampered.write_text(json.dumps({**genuine, "log": {**genuine["log"], **damage}}))
        bad = verify(tampered)
        assert bad.returncode == 1 and failing in bad.stdout, (damage, bad.stdout)
    tampered.write_text(json.dumps(forged_with_own_key(genuine)))
    bad = verify(tampered)
    assert bad.returncode == 1 and "FAIL keys published by IPX" in bad.stdout
    # a witness's cosignature beside IPX's is no reason to refuse the checkpoint
    witness = signing.generate_private_key()
    cosigned = sign_note(genuine["log"]["checkpoint"].split("\n\n", 1)[0] + "\n", "witness.example", witness)
    ipx_line = genuine["log"]["checkpoint"].split("\n\n", 1)[1]
    tampered.write_text(json.dumps({**genuine, "log": {**genuine["log"], "checkpoint": cosigned + ipx_line}}))
    assert verify(tampered).returncode == 0, verify(tampered).stdout


def test_cli_failures_are_one_line_in_words(bundle_and_file, keys, tmp_path):
    """A missing file, a database that was never migrated, IPX's own refusals: `error: ...` and exit 1, no traceback."""
    bundle, _ = bundle_and_file
    missing = run("verify", str(bundle), str(tmp_path / "no-such.png"), "--keys", str(keys))
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"error: {tmp_path / 'no-such.png'}: No such file or directory"
    empty = {**os.environ, "IPX_DATA_DIR": str(tmp_path / "fresh"), "IPX_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    unmigrated = subprocess.run([*IPX, "keys", "list"], capture_output=True, text=True, cwd=PROJECT_ROOT, env=empty)
    assert unmigrated.returncode == 1 and "Traceback" not in unmigrated.stderr
    assert "run `ipx db upgrade` first" in unmigrated.stderr
    assert subprocess.run([*IPX, "db", "upgrade"], capture_output=True, env=empty, cwd=PROJECT_ROOT).returncode == 0
    never_served = subprocess.run([*IPX, "keys", "rotate"], capture_output=True, text=True, cwd=PROJECT_ROOT, env=empty)
    assert never_served.returncode == 1 and never_served.stderr.startswith("error: The transparency log has no origin")
