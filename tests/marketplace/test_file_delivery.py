"""A license delivers the work: its holder downloads the registered file, byte for byte, while the license stands
and no complaint holds the work; the owner downloads their own file; nobody else gets it."""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import date, timedelta
from urllib.parse import quote

import pytest

from ipx.blobs import CHUNK_BYTES
from ipx.registry.downloads import DamagedFile, attachment_disposition
from ipx.registry.models import Work
from ipx.registry.service import stored_file
from ipx.web.certificates import size_text
from tests.complaints.conftest import act, file, notice
from tests.marketplace.builders import offer
from tests.marketplace.conftest import buy, noise_png


def _license_id(order: dict) -> str:
    return order["license_url"].rsplit("/", 1)[1]


def test_the_license_holder_downloads_the_registered_file(client, make_user, list_work) -> None:
    listed = list_work(offer())
    buyer, stranger = make_user("Buyer"), make_user("Stranger")
    license_id = _license_id(buy(client, buyer, listed.offer_ids[0]))

    delivered = client.get(f"/api/v1/licenses/{license_id}/file", headers=buyer.headers)

    assert delivered.status_code == 200, delivered.text
    assert hashlib.sha256(delivered.content).hexdigest() == listed.work["sha256"]
    assert delivered.headers["content-type"] == "image/png"
    assert delivered.headers["content-length"] == str(len(delivered.content))
    assert delivered.headers["content-disposition"] == "attachment; filename=\"work.png\"; filename*=UTF-8''work.png"
    assert delivered.headers["etag"] == f'"{listed.work["sha256"]}"'
    digest = base64.b64encode(bytes.fromhex(listed.work["sha256"])).decode()
    assert delivered.headers["repr-digest"] == f"sha-256=:{digest}:"
    assert delivered.headers["x-content-type-options"] == "nosniff"
    assert delivered.headers["content-security-policy"].startswith("sandbox")

    refused = client.get(f"/api/v1/licenses/{license_id}/file", headers=stranger.headers)
    assert refused.status_code == 403
    assert refused.json()["detail"] == "Only the holder of this license can download the work through it."
    seller_through_license = client.get(f"/api/v1/licenses/{license_id}/file", headers=listed.seller.headers)
    assert seller_through_license.status_code == 403
    anonymous = client.get(f"/api/v1/licenses/{license_id}/file")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"


def test_the_owner_downloads_their_own_file_and_only_they_and_staff(client, make_user, staff) -> None:
    owner, buyer = make_user("Owner"), make_user("Someone")
    data = noise_png(4242)
    work = owner.register(data, title="Kept safe", filename="harbour at dawn.png").json()

    own = client.get(f"/api/v1/works/{work['work_id']}/file", headers=owner.headers)
    assert own.status_code == 200, own.text
    assert own.content == data
    assert 'filename="harbour at dawn.png"' in own.headers["content-disposition"]
    assert client.get(f"/api/v1/works/{work['work_id']}/file", headers=staff).content == data

    refused = client.get(f"/api/v1/works/{work['work_id']}/file", headers=buyer.headers)
    assert refused.status_code == 403
    assert "a buyer downloads it from the page of their license" in refused.json()["detail"]
    assert client.get(f"/api/v1/works/{work['work_id']}/file").status_code == 401
    unknown = client.get("/api/v1/works/00000000-0000-4000-8000-000000000000/file", headers=owner.headers)
    assert unknown.status_code == 404


def test_a_revoked_license_delivers_nothing_more(client, make_user, list_work) -> None:
    listed = list_work(offer())
    buyer = make_user("Buyer")
    order = buy(client, buyer, listed.offer_ids[0])
    refunded = client.post(f"/api/v1/orders/{order['order_id']}/refund", headers=listed.seller.headers,
                           json={"reason": "Sold by mistake"})
    assert refunded.status_code == 200, refunded.text

    gone = client.get(f"/api/v1/licenses/{_license_id(order)}/file", headers=buyer.headers)

    assert gone.status_code == 410
    assert gone.json()["detail"] == "This license was revoked, so the work can no longer be downloaded through it."


def test_an_ended_license_delivers_nothing_more(client, make_user, list_work, monkeypatch) -> None:
    last_day = date.today() + timedelta(days=30)
    listed = list_work(offer(duration={"until": last_day.isoformat()}))
    buyer = make_user("Buyer")
    license_id = _license_id(buy(client, buyer, listed.offer_ids[0]))
    assert client.get(f"/api/v1/licenses/{license_id}/file", headers=buyer.headers).status_code == 200

    import ipx.db

    real_now = ipx.db.utcnow
    monkeypatch.setattr("ipx.marketplace.api.utcnow", lambda: real_now() + timedelta(days=31))
    ended = client.get(f"/api/v1/licenses/{license_id}/file", headers=buyer.headers)

    assert ended.status_code == 410
    assert ended.json()["detail"] == (f"This license ended on {last_day.isoformat()}, so the work can no longer be "
                                      "downloaded through it.")


@pytest.mark.parametrize("takedown", ["suspend_sales", "mark_disputed", "hide_listing"])
def test_a_complaint_withholds_the_file_until_it_is_resolved(client, make_user, list_work, staff, takedown) -> None:
    listed = list_work(offer())
    buyer, complainant = make_user("Buyer"), make_user("Complainant")
    license_id = _license_id(buy(client, buyer, listed.offer_ids[0]))
    earlier = complainant.register(noise_png(9191), title="The original").json()
    target = ({"listing_id": listed.listing["listing_id"]} if takedown == "hide_listing"
              else {"work_id": listed.work["work_id"]})
    case = file(client, notice(earlier["work_id"], target))

    assert act(client, staff, case["complaint_id"], takedown).status_code == 200
    withheld = client.get(f"/api/v1/licenses/{license_id}/file", headers=buyer.headers)
    assert withheld.status_code == 451
    assert "Your license still stands" in withheld.json()["detail"]
    page = client.get(f"/licenses/{license_id}", headers=buyer.headers)
    assert "Downloads of this work are paused" in page.text
    assert "Download the work" not in page.text
    # the purchases page offers no link that would answer 451, and says why in its place
    purchases = client.get("/me/purchases", headers=buyer.headers).text
    assert f'href="/licenses/{license_id}/file"' not in purchases
    assert "File on hold" in purchases
    # a link followed anyway (an old tab, a bookmark) leads back to the license and the purchases
    refused = client.get(f"/licenses/{license_id}/file", headers=buyer.headers)
    assert refused.status_code == 451
    assert f'href="/licenses/{license_id}">Back to the license</a>' in refused.text
    assert 'href="/me/purchases">My purchases</a>' in refused.text
    # the owner keeps their own copy within reach
    assert client.get(f"/api/v1/works/{listed.work['work_id']}/file", headers=listed.seller.headers).status_code == 200

    assert act(client, staff, case["complaint_id"], "restore", "The owner showed earlier drafts").status_code == 200
    assert client.get(f"/api/v1/licenses/{license_id}/file", headers=buyer.headers).status_code == 200
    purchases = client.get("/me/purchases", headers=buyer.headers).text
    assert f'href="/licenses/{license_id}/file" download title="work.png">File</a>' in purchases
    assert "File on hold" not in purchases


def test_the_pages_offer_the_file_to_its_holder_and_owner_only(client, make_user, list_work) -> None:
    listed = list_work(offer())
    buyer, stranger = make_user("Buyer"), make_user("Stranger")
    license_id = _license_id(buy(client, buyer, listed.offer_ids[0]))
    work_id = listed.work["work_id"]

    holder_page = client.get(f"/licenses/{license_id}", headers=buyer.headers)
    assert f'href="/licenses/{license_id}/file"' in holder_page.text
    # what the file is and how big, not its raw name (that shows on hover)
    size = len(client.get(f"/licenses/{license_id}/file", headers=buyer.headers).content)
    assert (f'download title="work.png">Download the work <span class="small">PNG · {size_text(size)}</span>'
            in holder_page.text)
    for viewer in (stranger.headers, listed.seller.headers, {}):
        assert "Download the work" not in client.get(f"/licenses/{license_id}", headers=viewer).text
    assert f'href="/works/{work_id}/file"' in client.get(f"/works/{work_id}", headers=listed.seller.headers).text
    assert f'href="/works/{work_id}/file"' not in client.get(f"/works/{work_id}", headers=buyer.headers).text
    assert f'href="/licenses/{license_id}/file"' in client.get("/me/purchases", headers=buyer.headers).text


def test_uploaded_markup_is_handed_out_inert(client, make_user) -> None:
    """An HTML "work" must never run as a page of IPX's origin."""
    owner = make_user("Owner")
    markup = b"<!doctype html><html><body><script>fetch('/me/account')</script>Poem</body></html>"
    work = owner.register(markup, title="A poem", filename="poem.html").json()

    served = client.get(f"/api/v1/works/{work['work_id']}/file", headers=owner.headers)

    assert served.content == markup
    assert served.headers["content-type"].startswith("text/html")
    assert served.headers["content-disposition"].startswith("attachment;")
    assert served.headers["content-security-policy"] == "sandbox; default-src 'none'"
    assert served.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("uploaded_as", "fallback", "exact"),
    [
        ("../../etc/passwd", "passwd", "passwd"),
        ("C:\\Users\\ada\\harbour.png", "harbour.png", "harbour.png"),
        ("港の夜明け.png", "_____.png", quote("港の夜明け.png", safe="")),
        ("cheese; 100%.png", "cheese_ 100_.png", quote("cheese; 100%.png", safe="")),
        (".hidden.png", "hidden.png", "hidden.png"),
    ],
)
def test_the_file_keeps_a_safe_form_of_its_uploaded_name(client, make_user, uploaded_as, fallback, exact) -> None:
    owner = make_user("Owner")
    work = owner.register(noise_png(len(uploaded_as) + 700), title="Named", filename=uploaded_as).json()

    disposition = client.get(f"/api/v1/works/{work['work_id']}/file", headers=owner.headers).headers[
        "content-disposition"]

    assert disposition == f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{exact}"


def test_the_ascii_name_cannot_break_out_of_its_quotes() -> None:
    assert attachment_disposition('say "cheese"\\.png') == (
        "attachment; filename=\"say _cheese__.png\"; filename*=UTF-8''say%20%22cheese%22%5C.png")


def test_control_characters_and_folders_never_reach_the_saved_name() -> None:
    work = Work(id="w-1", sha256="0" * 64, size=3, media_type="image/png", original_filename="a/b\\c\x00d\ne\u202e.png")
    assert stored_file(work).filename == "cde.png"


def test_a_work_whose_name_has_nothing_safe_left_is_called_after_its_id(client, make_user) -> None:
    owner = make_user("Owner")
    work = owner.register(noise_png(77), title="Nameless", filename="...").json()

    disposition = client.get(f"/api/v1/works/{work['work_id']}/file", headers=owner.headers).headers[
        "content-disposition"]

    assert f"ipx-work-{work['work_id']}.png" in disposition


def test_a_file_damaged_in_storage_is_never_delivered_whole(client, make_user) -> None:
    owner = make_user("Owner")
    data = noise_png(31337)
    work = owner.register(data, title="Damaged later").json()
    blobs = client.app.state.registry.blobs
    blobs._path(work["sha256"]).write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # one bit-flipped byte

    with pytest.raises(DamagedFile):
        client.get(f"/api/v1/works/{work['work_id']}/file", headers=owner.headers)

    blobs.delete(work["sha256"])
    missing = client.get(f"/api/v1/works/{work['work_id']}/file", headers=owner.headers)
    assert missing.status_code == 500
    assert "cannot find this work's stored file" in missing.json()["detail"]


def test_a_stored_file_that_grew_is_never_delivered_whole(client, make_user) -> None:
    """The registered length must not all leave before the check: a damaged file one byte longer whose first
    bytes are right would otherwise arrive complete and look like a good download."""
    owner = make_user("Owner")
    data = os.urandom(CHUNK_BYTES * 2)  # a whole number of pieces: the old check sent every declared byte first
    work = owner.register(data, title="Grew", filename="tape.bin").json()
    blobs = client.app.state.registry.blobs
    blobs._path(work["sha256"]).write_bytes(data + b"!")
    received = bytearray()
    with pytest.raises(DamagedFile), client.stream(
            "GET", f"/api/v1/works/{work['work_id']}/file", headers=owner.headers) as answer:
        for piece in answer.iter_bytes():
            received += piece
    assert len(received) < len(data)
