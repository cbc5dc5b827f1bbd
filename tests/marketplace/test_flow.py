"""The whole offline sale, end to end: list, find, buy, license evidence, refund, revocation, ledger."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

from ipx.config import PROJECT_ROOT
from ipx.registry.evidence import verify_bundle
from tests.conftest import ipx_keys
from tests.marketplace.builders import offer
from tests.marketplace.conftest import assert_ledger_balanced, buy, noise_png


def test_list_buy_verify_refund(client, make_user, list_work, staff):
    listed = list_work(
        offer(price={"amount": 1001, "currency": "EUR"}),
        title="Harbour at dawn",
        creators=json.dumps([{"name": "Ada", "share": 33.33}, {"name": "Ben", "share": 33.33},
                             {"name": "Cy", "share": 33.34}]),
    )
    found = client.get("/api/v1/listings", params={"q": "harbour sea", "license": "standard", "currency": "eur"})
    assert found.status_code == 200, found.text
    assert [item["listing_id"] for item in found.json()["items"]] == [listed.listing["listing_id"]]

    detail = client.get(f"/api/v1/listings/{listed.listing['listing_id']}").json()
    assert detail["work"]["work_id"] == listed.work["work_id"]
    assert detail["evidence_url"].endswith(f"/works/{listed.work['work_id']}/evidence")
    assert detail["offers"][0]["odrl"]["@type"] == "Offer"
    assert "EUR 10.01" in detail["offers"][0]["summary"]

    buyer = make_user("Buyer")
    order = buy(client, buyer, listed.offer_ids[0], key="first-try")
    assert order["status"] == "fulfilled"
    license_body = client.get(order["license_url"]).json()
    assert license_body["status"] == "active"
    assert license_body["licensee"] == {"account_id": buyer.account_id, "display_name": "Buyer"}
    assert license_body["odrl"]["@type"] == "Agreement"
    assert license_body["odrl"]["permission"][0]["assignee"] == f"urn:ipx:account:{buyer.account_id}"

    bundle = client.get(f"/api/v1/licenses/{license_body['license_id']}/evidence").json()
    assert bundle["statement"]["type"] == "ipx.license/v1"
    assert bundle["statement"]["work_sha256"] == listed.work["sha256"]
    assert bundle["statement"]["registration_log_index"] == listed.work["log_index"]
    assert bundle["statement"]["price"] == {"amount": 1001, "currency": "EUR"}
    report = verify_bundle(bundle, None, ipx_keys(client))
    assert report.ok, report.as_dict()
    tampered = json.loads(json.dumps(bundle))
    tampered["statement"]["price"]["amount"] = 1
    assert not verify_bundle(tampered, None, ipx_keys(client)).ok

    ledger = assert_ledger_balanced(client, staff)
    balances = {(a["account"], a["currency"]): a["balance"] for a in ledger["accounts"]}
    assert balances[("platform:fees", "EUR")] == 100  # 10 % of 1001, rounded down
    assert balances[(f"creator:{listed.seller.account_id}", "EUR")] == 901
    assert balances[("provider:offline", "EUR")] == -1001

    refund = client.post(f"/api/v1/orders/{order['order_id']}/refund", headers=listed.seller.headers,
                         json={"reason": "wrong file delivered"})
    assert refund.status_code == 200, refund.text
    assert refund.json()["status"] == "refunded"
    revoked = client.get(order["license_url"]).json()
    assert revoked["status"] == "revoked"
    revocation_bundle = client.get(revoked["revocation"]["evidence_url"]).json()
    assert revocation_bundle["statement"]["type"] == "ipx.license-revocation/v1"
    assert revocation_bundle["log"]["index"] == revoked["revocation"]["log_index"] > revoked["log_index"]
    assert verify_bundle(revocation_bundle, None, ipx_keys(client)).ok
    # the license statement is still in the log, unchanged: revocation appends, never rewrites; its bundle now
    # carries the revocation, so a copy fetched after the refund cannot pass for a license in force
    after_refund = client.get(f"/api/v1/licenses/{revoked['license_id']}/evidence").json()
    assert after_refund["revocation"] == revocation_bundle
    report = verify_bundle(after_refund, None, ipx_keys(client))
    assert report.ok and report.revoked is not None and "“wrong file delivered”" in report.revoked
    assert base64.b64decode(bundle["signature"])

    ledger = assert_ledger_balanced(client, staff)
    assert all(a["balance"] == 0 for a in ledger["accounts"])
    assert ledger["transactions"] == 2


def test_cli_says_what_license_and_revocation_bundles_prove(client, make_user, staff, tmp_path: Path):
    seller, buyer = make_user("Seller"), make_user("Buyer")
    picture = noise_png(990_001)
    work = seller.register(picture, title="Harbour at dawn").json()
    listing = client.post("/api/v1/listings", headers=seller.headers,
                          json={"work_id": work["work_id"], "offers": [offer()]}).json()
    order = buy(client, buyer, listing["offers"][0]["offer_id"])
    license_body = client.get(order["license_url"]).json()
    files = {"work.png": picture, "other.png": noise_png(990_002),
             "license.json": client.get(f"/api/v1/licenses/{license_body['license_id']}/evidence").content}
    client.post(f"/api/v1/orders/{order['order_id']}/refund", headers=staff, json={"reason": "wrong file"})
    files["revocation.json"] = client.get(client.get(order["license_url"]).json()["revocation"]["evidence_url"]).content
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)

    (tmp_path / "ipx-keys.json").write_bytes(client.get("/.well-known/ipx/keys").content)
    files["license-now.json"] = client.get(f"/api/v1/licenses/{license_body['license_id']}/evidence").content
    (tmp_path / "license-now.json").write_bytes(files["license-now.json"])

    def verify(*names: str, expect: str | None = None) -> subprocess.CompletedProcess[str]:
        arguments = [*(str(tmp_path / n) for n in names), "--keys", str(tmp_path / "ipx-keys.json")]
        return subprocess.run([sys.executable, "-m", "ipx.cli", "verify", *arguments,
                               *(["--expect", expect] if expect else [])],
                              capture_output=True, text=True, cwd=PROJECT_ROOT)

    granted = verify("license.json", "work.png")  # the licensed work's own file matches its license
    assert granted.returncode == 0, granted.stdout + granted.stderr
    assert (f"VERIFIED: license {license_body['license_id']} to the work {work['work_id']} (sha256 {work['sha256']}) "
            "was granted by Seller") in granted.stdout
    assert "to Buyer" in granted.stdout and "None" not in granted.stdout
    other = verify("license.json", "other.png")
    assert other.returncode == 1 and f"differs from the work's, {work['sha256']}" in other.stdout
    revoked = verify("revocation.json")
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    assert f"VERIFIED: license {license_body['license_id']} was revoked" in revoked.stdout
    assert "“wrong file”" in revoked.stdout and "pass the file too" not in revoked.stdout
    with_file = verify("revocation.json", "work.png")
    assert with_file.returncode == 1 and "names no work's file" in with_file.stdout
    # the bundle saved before the refund says the license may since have been revoked; the one fetched now says it was
    assert "a license can be revoked later" in granted.stdout
    now = verify("license-now.json", "work.png")
    assert now.returncode == 0 and "REVOKED: license" in now.stdout and "It no longer covers any use." in now.stdout
    # a license bundle cannot pass for a registration of the work, whose file it matches
    posing = verify("license.json", "work.png", expect="registration")
    assert posing.returncode == 1
    assert "statement type: this is a ipx.license/v1 statement, not the ipx.registration/v1 asked for" in posing.stdout
