"""RFC 3161 timestamps from an outside authority (OpenSSL's TSA, over HTTP) on the log's statements: stamped by
`ipx log timestamp`, carried in bundles, checked offline against the authority's root from IPX's published keys."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ipx.app import create_app
from ipx.config import PROJECT_ROOT, Settings
from ipx.registry.evidence import published_keys, published_timestamp_roots, verify_bundle
from ipx.registry.signing import canonical_json
from tests.conftest import ApiUser, png_bytes
from tests.timestamp_authority import TimestampAuthority, timestamp_authority


@pytest.fixture
def tsa(tmp_path: Path) -> Iterator[TimestampAuthority]:
    yield from timestamp_authority(tmp_path / "tsa")


@pytest.fixture
def stamped_settings(make_settings, tsa: TimestampAuthority) -> Settings:
    return make_settings(tsa_url=tsa.url, tsa_roots_file=tsa.root_pem)


@pytest.fixture
def tsa_client(stamped_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(stamped_settings)) as client:
        yield client


def stamp(settings: Settings, *arguments: str) -> subprocess.CompletedProcess[str]:
    """`ipx log timestamp`, as cron runs it, on the test's database."""
    env = {**os.environ, "IPX_DATA_DIR": str(settings.data_dir), "IPX_DATABASE_URL": settings.resolved_database_url,
           "IPX_TSA_URL": settings.tsa_url, "IPX_TSA_ROOTS_FILE": str(settings.tsa_roots_file)}
    return subprocess.run([sys.executable, "-m", "ipx.cli", "log", "timestamp", *arguments], capture_output=True,
                          text=True, cwd=PROJECT_ROOT, env=env)


def test_stamped_entries_carry_a_token_that_checks_offline(tsa_client, stamped_settings, tsa, tmp_path) -> None:
    data = png_bytes(71)
    work = ApiUser(tsa_client, "ts@example.org", "Tess Stamp").register(data, title="Stamped").json()
    assert "timestamp" not in tsa_client.get(f"/api/v1/works/{work['work_id']}/evidence").json()

    ran = stamp(stamped_settings)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.strip() == f"1 log entry timestamped by {tsa.url}"
    assert stamp(stamped_settings).stdout.strip() == f"0 log entries timestamped by {tsa.url}"  # each entry once
    bundle = tsa_client.get(f"/api/v1/works/{work['work_id']}/evidence").json()
    assert bundle["timestamp"]["authority"] == tsa.url and bundle["timestamp"]["time"].endswith("Z")
    keys_document = tsa_client.get("/.well-known/ipx/keys").json()
    assert keys_document["timestamp_authority"]["root_certificates_pem"] == tsa.root_pem.read_text()
    trusted, roots = published_keys(keys_document), published_timestamp_roots(keys_document)

    report = verify_bundle(bundle, data, trusted, roots)

    assert report.ok, report.as_dict()
    assert report.timestamped is not None and report.timestamped.startswith(f"{tsa.url} attests that the statement")
    server_side = tsa_client.get(f"/api/v1/verify/{work['work_id']}").json()
    assert server_side["valid"] and "timestamp" in {check["name"] for check in server_side["checks"]}

    saved = {"bundle.json": json.dumps(bundle), "keys.json": json.dumps(keys_document)}
    for name, text in saved.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "work.png").write_bytes(data)
    verified = subprocess.run([sys.executable, "-m", "ipx.cli", "verify", str(tmp_path / "bundle.json"),
                               str(tmp_path / "work.png"), "--keys", str(tmp_path / "keys.json")],
                              capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"TIMESTAMPED: {tsa.url} attests that the statement existed by " in verified.stdout
    # docs/verify.md's way, with nothing but openssl
    (tmp_path / "token.tsr").write_bytes(base64.b64decode(bundle["timestamp"]["response"]))
    (tmp_path / "statement.jcs").write_bytes(canonical_json(bundle["statement"]))
    (tmp_path / "tsa-roots.pem").write_text(keys_document["timestamp_authority"]["root_certificates_pem"])
    by_hand = subprocess.run(["openssl", "ts", "-verify", "-in", "token.tsr", "-data", "statement.jcs", "-CAfile",
                              "tsa-roots.pem"], capture_output=True, text=True, cwd=tmp_path)
    assert by_hand.stdout.strip() == "Verification: OK", by_hand.stderr


def test_a_token_for_another_statement_or_from_another_authority_fails(tsa_client, stamped_settings, tmp_path):
    user = ApiUser(tsa_client, "ts2@example.org", "Tess")
    first, second = (user.register(png_bytes(seed), title=f"Work {seed}").json() for seed in (72, 73))
    assert stamp(stamped_settings).returncode == 0
    bundles = [tsa_client.get(f"/api/v1/works/{w['work_id']}/evidence").json() for w in (first, second)]
    keys_document = tsa_client.get("/.well-known/ipx/keys").json()
    trusted, roots = published_keys(keys_document), published_timestamp_roots(keys_document)

    swapped = {**bundles[0], "timestamp": bundles[1]["timestamp"]}
    failed = {c.name: c.detail for c in verify_bundle(swapped, None, trusted, roots).checks if not c.ok}
    assert failed == {"timestamp": "the bundle's RFC 3161 timestamp does not verify: the timestamp does not verify: "
                                   "Mismatch between messages"}

    other_authority = next(timestamp_authority(tmp_path / "other-tsa"))
    other_roots = published_timestamp_roots(
        {"timestamp_authority": {"root_certificates_pem": other_authority.root_pem.read_text()}})
    failed = {c.name for c in verify_bundle(bundles[0], None, trusted, other_roots).checks if not c.ok}
    assert failed == {"timestamp"}
    # without the authority's root the token is left unchecked, never counted as checked
    unchecked = verify_bundle(bundles[0], None, trusted)
    assert unchecked.ok and unchecked.timestamped is None


def test_an_authority_that_is_down_leaves_the_rest_for_the_next_run(tsa_client, stamped_settings, tsa) -> None:
    user = ApiUser(tsa_client, "ts3@example.org", "Tess")
    works = [user.register(png_bytes(seed), title=f"Work {seed}").json() for seed in (74, 75)]
    tsa.refuse = True

    down = stamp(stamped_settings)

    assert down.returncode == 1
    assert down.stdout.strip() == f"0 log entries timestamped by {tsa.url}"
    assert f"stopped early, the rest wait for the next run: the time-stamping authority at {tsa.url} answered " \
           "HTTP 503" in down.stderr
    tsa.refuse = False
    assert stamp(stamped_settings, "--limit", "1").stdout.strip() == f"1 log entry timestamped by {tsa.url}"
    assert stamp(stamped_settings).stdout.strip() == f"1 log entry timestamped by {tsa.url}"
    assert all("timestamp" in tsa_client.get(f"/api/v1/works/{w['work_id']}/evidence").json() for w in works)


def test_the_authority_takes_both_settings(make_settings, tsa) -> None:
    with pytest.raises(ValueError, match="IPX_TSA_URL and IPX_TSA_ROOTS_FILE go together"):
        _ = make_settings(tsa_url=tsa.url).timestamp_authority
    assert make_settings().timestamp_authority is None


def test_changing_authority_keeps_earlier_tokens_checkable(make_settings, tsa, tmp_path) -> None:
    """The roots file holds every authority IPX has used: a token stays checkable after a change of provider."""
    earlier_settings = make_settings(tsa_url=tsa.url, tsa_roots_file=tsa.root_pem)
    with TestClient(create_app(earlier_settings)) as client:
        work = ApiUser(client, "ts4@example.org", "Tess").register(png_bytes(76), title="Before").json()
    assert stamp(earlier_settings).returncode == 0
    serving = timestamp_authority(tmp_path / "later-tsa")  # kept: the authority serves while its generator lives
    later = next(serving)
    both_roots = tmp_path / "roots.pem"
    both_roots.write_bytes(later.root_pem.read_bytes() + tsa.root_pem.read_bytes())
    later_settings = make_settings(tsa_url=later.url, tsa_roots_file=both_roots)

    with TestClient(create_app(later_settings)) as client:
        newer = ApiUser(client, "ts5@example.org", "Tess").register(png_bytes(77), title="After").json()
        stamped = stamp(later_settings)
        assert stamped.stdout.strip() == f"1 log entry timestamped by {later.url}", stamped.stderr
        keys_document = client.get("/.well-known/ipx/keys").json()
        trusted, roots = published_keys(keys_document), published_timestamp_roots(keys_document)
        for each, authority in ((work, tsa), (newer, later)):
            bundle = client.get(f"/api/v1/works/{each['work_id']}/evidence").json()
            assert bundle["timestamp"]["authority"] == authority.url
            report = verify_bundle(bundle, None, trusted, roots)
            assert report.ok, report.as_dict()
            assert client.get(f"/api/v1/verify/{each['work_id']}").json()["valid"]
