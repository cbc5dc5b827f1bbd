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


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*IPX, *args], capture_output=True, text=True, cwd=PROJECT_ROOT)


def test_cli_verifies_a_good_bundle_and_file(bundle_and_file):
    bundle, file = bundle_and_file
    result = run("verify", str(bundle), str(file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "VERIFIED" in result.stdout and "Dora Maar" in result.stdout
    assert "pass --keys" in result.stdout  # checked only against the key the bundle itself carries
    as_json = json.loads(run("verify", str(bundle), str(file), "--json").stdout)
    assert as_json["valid"] is True


def test_cli_names_the_failed_check(bundle_and_file, tmp_path):
    bundle, file = bundle_and_file
    document = json.loads(bundle.read_text())
    document["statement"]["registered_at"] = "2001-01-01T00:00:00.000000Z"
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(document))
    result = run("verify", str(tampered), str(file))
    assert result.returncode == 1
    assert "NOT VERIFIED" in result.stdout and "statement signature" in result.stdout
    other = tmp_path / "other.png"
    other.write_bytes(png_bytes(22))
    result = run("verify", str(bundle), str(other))
    assert result.returncode == 1 and "file hash" in result.stdout
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    result = run("verify", str(garbage))
    assert result.returncode == 2 and "cannot read" in result.stderr
    # damaged in ways that used to end in a traceback
    for damage in ({"key": {"public_key_pem": 5, "key_id": "x"}}, {"statement": []},
                   {"log": {**document["log"], "checkpoint": 5}}, {"statement": {"n": 2**64}}):
        damaged = tmp_path / "damaged.json"
        damaged.write_text(json.dumps({**json.loads(bundle.read_text()), **damage}))
        result = run("verify", str(damaged), str(file))
        assert result.returncode == 1 and "NOT VERIFIED" in result.stdout, (damage, result.stderr)
    result = run("verify", str(bundle), "--keys", str(garbage))
    assert result.returncode == 2 and "published keys" in result.stderr


def test_pinned_keys_must_include_the_bundle_key(bundle_and_file, client, tmp_path):
    bundle, file = bundle_and_file
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(client.get("/.well-known/ipx/keys").json()))
    assert run("verify", str(bundle), str(file), "--keys", str(keys)).returncode == 0
    keys.write_text(json.dumps({"keys": [{"key_id": "0" * 64, "valid_from": "2026-01-01T00:00:00Z"}]}))
    result = run("verify", str(bundle), str(file), "--keys", str(keys))
    assert result.returncode == 1 and "not among the trusted" in result.stdout


def test_the_documented_standalone_script_agrees(bundle_and_file, tmp_path):
    bundle, file = bundle_and_file
    doc = (PROJECT_ROOT / "docs" / "verify.md").read_text()
    script = re.search(r"```python\n(.*?)```", doc, re.S).group(1)  # type: ignore[union-attr]
    path = tmp_path / "verify_ipx.py"
    path.write_text(script)
    ok = subprocess.run([sys.executable, str(path), str(bundle), str(file)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.count("ok   ") == 6
    document = json.loads(bundle.read_text())
    document["log"]["index"] += 1
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(document))
    bad = subprocess.run([sys.executable, str(path), str(tampered), str(file)], capture_output=True, text=True)
    assert bad.returncode == 1 and "FAIL inclusion proof" in bad.stdout


def test_cli_failures_are_one_line_in_words(bundle_and_file, tmp_path):
    """A missing file, a database that was never migrated, IPX's own refusals: `error: ...` and exit 1, no traceback."""
    bundle, _ = bundle_and_file
    missing = run("verify", str(bundle), str(tmp_path / "no-such.png"))
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"error: {tmp_path / 'no-such.png'}: No such file or directory"
    empty = {**os.environ, "IPX_DATA_DIR": str(tmp_path / "fresh"), "IPX_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    unmigrated = subprocess.run([*IPX, "keys", "list"], capture_output=True, text=True, cwd=PROJECT_ROOT, env=empty)
    assert unmigrated.returncode == 1 and "Traceback" not in unmigrated.stderr
    assert "run `ipx db upgrade` first" in unmigrated.stderr
    assert subprocess.run([*IPX, "db", "upgrade"], capture_output=True, env=empty, cwd=PROJECT_ROOT).returncode == 0
    never_served = subprocess.run([*IPX, "keys", "rotate"], capture_output=True, text=True, cwd=PROJECT_ROOT, env=empty)
    assert never_served.returncode == 1 and never_served.stderr.startswith("error: The transparency log has no origin")
