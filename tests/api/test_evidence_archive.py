"""The evidence archive: everything an account holds at IPX in one ZIP, checkable offline with what is inside it."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ipx.archive.zipstream import Member, zip_stream
from ipx.config import PROJECT_ROOT
from ipx.registry.downloads import DamagedFile
from ipx.registry.evidence import published_keys, verify_bundle
from tests.marketplace.builders import offer
from tests.marketplace.conftest import buy, noise_png


def archive_of(client, user) -> zipfile.ZipFile:
    answer = client.get("/api/v1/me/archive", headers=user.headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/zip"
    assert answer.headers["content-disposition"].startswith('attachment; filename="ipx-evidence-')
    assert answer.headers["cache-control"] == "private, no-store"
    return zipfile.ZipFile(io.BytesIO(answer.content))


def rows(archive: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(archive.read(name).decode("utf-8-sig"))))


def test_the_archive_holds_every_work_and_license_and_checks_offline(client, make_user, tmp_path: Path) -> None:
    creator, seller = make_user("Ada Creator"), make_user("Sam Seller")
    picture, poem = noise_png(5150), b"Shall I compare thee to a summer's day?\n"
    first = creator.register(picture, title="Harbour", filename="harbour.png").json()
    second = creator.register(poem, title="=HYPERLINK(\"http://evil\")", filename="sonnet.txt").json()
    listing = client.post("/api/v1/listings", headers=seller.headers, json={
        "work_id": seller.register(noise_png(5151), title="Dunes", filename="dunes.png").json()["work_id"],
        "offers": [offer(), offer(price={"amount": 900, "currency": "EUR"})]}).json()
    held = buy(client, creator, listing["offers"][0]["offer_id"])
    refunded = buy(client, creator, listing["offers"][1]["offer_id"])
    assert client.post(f"/api/v1/orders/{refunded['order_id']}/refund", headers=seller.headers,
                       json={"reason": "Duplicate purchase"}).status_code == 200
    held_id, refunded_id = (order["license_url"].rsplit("/", 1)[1] for order in (held, refunded))

    archive = archive_of(client, creator)

    names = set(archive.namelist())
    assert {"README.txt", "ipx-keys.json", "checkpoint.txt", "works.csv", "licenses.csv",
            f"works/{first['work_id']}/harbour.png", f"works/{first['work_id']}/ipx-evidence-{first['work_id']}.json",
            f"works/{second['work_id']}/sonnet.txt", f"works/{second['work_id']}/ipx-evidence-{second['work_id']}.json",
            f"licenses/{held_id}/dunes.png",
            f"licenses/{held_id}/ipx-license-{held_id}.json",
            f"licenses/{refunded_id}/ipx-license-{refunded_id}.json"} == names
    assert archive.read(f"works/{first['work_id']}/harbour.png") == picture
    assert archive.read(f"works/{second['work_id']}/sonnet.txt") == poem
    trusted = published_keys(json.loads(archive.read("ipx-keys.json")))
    for work, data in ((first, picture), (second, poem)):
        bundle = json.loads(archive.read(f"works/{work['work_id']}/ipx-evidence-{work['work_id']}.json"))
        assert verify_bundle(bundle, data, trusted).ok
    revoked = verify_bundle(json.loads(archive.read(f"licenses/{refunded_id}/ipx-license-{refunded_id}.json")), None,
                            trusted)
    assert revoked.ok and "“Duplicate purchase”" in (revoked.revoked or "")

    works = rows(archive, "works.csv")
    assert [w["work_id"] for w in works] == [first["work_id"], second["work_id"]]  # oldest first
    assert works[1]["title"] == "'=HYPERLINK(\"http://evil\")"  # shown as text by a spreadsheet, never run
    assert works[0]["file"] == f"works/{first['work_id']}/harbour.png" and works[0]["sha256"] == first["sha256"]
    licenses = {row["license_id"]: row for row in rows(archive, "licenses.csv")}
    assert licenses[held_id]["status"] == "active" and licenses[held_id]["licensor"] == "Sam Seller"
    assert licenses[held_id]["file"] == f"licenses/{held_id}/dunes.png"
    assert licenses[refunded_id]["file"] == ("not included: This license was revoked, so the work can no longer be "
                                             "downloaded through it.")
    readme = archive.read("README.txt").decode()
    assert "Ada Creator" in readme and "every work you registered (2)" in readme
    assert "the licenses you hold (2)" in readme and "--keys ipx-keys.json" in readme

    # what the README says to run works on the archive as extracted
    archive.extractall(tmp_path)
    folder = tmp_path / "works" / first["work_id"]
    verified = subprocess.run(
        [sys.executable, "-m", "ipx.cli", "verify", str(folder / f"ipx-evidence-{first['work_id']}.json"),
         str(folder / "harbour.png"), "--keys", str(tmp_path / "ipx-keys.json")],
        capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "VERIFIED: “Harbour”" in verified.stdout


def test_an_archive_holds_its_own_account_only(client, make_user) -> None:
    mine, theirs = make_user("Mine"), make_user("Theirs")
    mine.register(noise_png(6001), title="Mine")
    their_work = theirs.register(noise_png(6002), title="Theirs").json()

    archive = archive_of(client, mine)

    assert not any(their_work["work_id"] in name for name in archive.namelist())
    assert [row["title"] for row in rows(archive, "works.csv")] == ["Mine"]
    assert client.get("/api/v1/me/archive").status_code == 401
    empty = archive_of(client, make_user("Newcomer"))
    assert rows(empty, "works.csv") == [] and "every work you registered (0)" in empty.read("README.txt").decode()


def test_a_missing_file_is_said_and_a_damaged_one_cuts_the_archive_off(client, make_user) -> None:
    owner = make_user("Owner")
    lost = owner.register(noise_png(6101), title="Lost").json()
    blobs = client.app.state.registry.blobs
    blobs.delete(lost["sha256"])

    archive = archive_of(client, owner)

    assert "could not find this file" in archive.read(f"works/{lost['work_id']}/FILE-MISSING.txt").decode()
    assert f"works/{lost['work_id']}/ipx-evidence-{lost['work_id']}.json" in archive.namelist()

    data = noise_png(6102)
    damaged = owner.register(data, title="Damaged").json()
    blobs._path(damaged["sha256"]).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(DamagedFile):
        client.get("/api/v1/me/archive", headers=owner.headers)


def test_the_pages_offer_the_archive(client, make_user) -> None:
    owner = make_user("Owner")
    owner.register(noise_png(6201), title="Kept")

    assert 'href="/me/archive.zip"' in client.get("/me/works", headers=owner.headers).text
    assert 'href="/me/archive.zip"' in client.get("/me/account", headers=owner.headers).text
    page_copy = client.get("/me/archive.zip", headers=owner.headers)
    assert page_copy.status_code == 200 and page_copy.headers["content-type"] == "application/zip"
    assert [row["title"] for row in rows(zipfile.ZipFile(io.BytesIO(page_copy.content)), "works.csv")] == ["Kept"]
    assert client.get("/me/archive.zip", follow_redirects=False).status_code in (303, 307)  # to the log-in page


def test_zip_stream_writes_members_read_piece_by_piece(tmp_path: Path) -> None:
    """Members of any size come through whole, and each piece leaves as soon as it is written."""
    big = bytes(range(256)) * 20_000
    sent: list[bytes] = []

    def pieces() -> object:
        for start in range(0, len(big), 65_536):
            yield big[start:start + 65_536]

    stream = zip_stream([Member("a/small.txt", b"hello"), Member("a/big.bin", size=len(big), pieces=pieces())],
                        made_at=datetime(2026, 12, 6, 12, 30, tzinfo=UTC))
    sent = list(stream)

    assert len(sent) > len(big) // 65_536  # streamed, not built whole
    archive = zipfile.ZipFile(io.BytesIO(b"".join(sent)))
    assert archive.testzip() is None
    assert archive.read("a/small.txt") == b"hello" and archive.read("a/big.bin") == big
    assert archive.getinfo("a/big.bin").date_time == (2026, 12, 6, 12, 30, 0)
    assert archive.getinfo("a/big.bin").compress_type == zipfile.ZIP_STORED  # media: compressed already
    assert archive.getinfo("a/small.txt").compress_type == zipfile.ZIP_DEFLATED
    # and the tools people open it with agree (sizes and CRCs arrive after each stored member's data)
    saved = tmp_path / "streamed.zip"
    saved.write_bytes(b"".join(sent))
    tested = subprocess.run(["unzip", "-t", str(saved)], capture_output=True, text=True)
    assert tested.returncode == 0 and "No errors detected" in tested.stdout, tested.stdout + tested.stderr
