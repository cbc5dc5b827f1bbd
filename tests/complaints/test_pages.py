"""The public complaint pages work as plain HTML forms (POST-redirect-GET, errors next to their fields)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from tests.complaints.conftest import CopyCase, act, file, notice
from tests.marketplace.builders import offer

FORM = {
    "name": "Alice Original", "email": "alice.claims@example.org", "description": "A byte-for-byte copy of my photo.",
    "signature": "Alice Original", "good_faith": "on", "accuracy": "on",
}


def _login(client, user_headers: dict[str, str]) -> None:
    client.cookies.set("ipx_session", user_headers["Authorization"].removeprefix("Bearer "))


def test_notice_form_shows_field_errors_and_keeps_input(client, copy_case: CopyCase) -> None:
    assert client.get("/complaints/new").status_code == 200
    incomplete = {**FORM, "work_id": copy_case.original["work_id"], "good_faith": "", "email": "not-an-email"}
    response = client.post("/complaints/new", data=incomplete, files={"work_file": ("", b"")})
    assert response.status_code == 422
    assert response.text.count('class="cx-field-error"') == 3  # email, good faith, infringing
    assert 'value="Alice Original"' in response.text
    assert "That is not an email address" in response.text and 'name="email" aria-invalid="true"' in response.text

    worded = client.post("/complaints/new", files={"work_file": ("", b"")}, data={
        **FORM, "work_id": copy_case.original["work_id"], "infringing_url": "not a web address", "description": "x"})
    assert worded.status_code == 422
    assert "Give a full web address, starting with https://." in worded.text
    assert "Write at least" in worded.text and "String should" not in worded.text and "Input should" not in worded.text


def test_notice_through_the_form_then_counter_notice_and_legal_action(client, copy_case: CopyCase, staff) -> None:
    data = {**FORM, "work_id": copy_case.original["work_id"], "infringing_work_id": copy_case.copy["work_id"]}
    response = client.post("/complaints/new", data=data, files={"work_file": ("", b"")}, follow_redirects=False)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    token = parse_qs(urlsplit(location).query)["token"][0]
    status_page = client.get(location)
    assert status_page.status_code == 200
    assert "Your notice was received as case" in status_page.text
    complaint_id = urlsplit(location).path.rsplit("/", 1)[1]

    act(client, staff, complaint_id, "mark_disputed", "identical bytes")
    _login(client, copy_case.bob.headers)
    owner_page = client.get(f"/complaints/{complaint_id}")
    assert "File a counter-notice" in owner_page.text
    assert client.get(f"/complaints/{complaint_id}/counter-notice").status_code == 200
    missing_consent = client.post(f"/complaints/{complaint_id}/counter-notice",
                                  data={"statement": "I made this photo myself, years before.", "signature": "Bob"})
    assert missing_consent.status_code == 422
    filed = client.post(f"/complaints/{complaint_id}/counter-notice", follow_redirects=False, data={
        "statement": "I made this photo myself, years before.", "signature": "Bob Later", "consent": "on"})
    assert filed.status_code == 303
    assert "Counter-notice filed" in client.get(filed.headers["location"]).text
    client.cookies.clear()

    complainant_page = client.get(f"/complaints/{complaint_id}", params={"token": token})
    assert "Report legal action" in complainant_page.text
    reported = client.post(f"/complaints/{complaint_id}/legal-action", follow_redirects=False,
                           data={"token": token, "note": "Filed in N.D. Cal., 1:26-cv-1"})
    assert reported.status_code == 303
    assert "Legal action reported" in client.get(reported.headers["location"]).text


def test_case_page_refuses_strangers(client, copy_case: CopyCase, make_user) -> None:
    data = {**FORM, "work_id": copy_case.original["work_id"], "infringing_url": "https://elsewhere.example/x.png"}
    location = client.post("/complaints/new", data=data, follow_redirects=False).headers["location"]
    complaint_id = urlsplit(location).path.rsplit("/", 1)[1]
    anonymous = client.get(f"/complaints/{complaint_id}", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    _login(client, make_user("Stranger").headers)
    assert client.get(f"/complaints/{complaint_id}").status_code == 403
    assert client.get(f"/complaints/{complaint_id}/counter-notice").status_code == 403
    assert client.get("/complaints/00000000-0000-0000-0000-000000000000").status_code == 404
    # a stranger's invalid counter-notice used to answer 422 with the case laid out as for its owner
    leak = client.post(f"/complaints/{complaint_id}/counter-notice", data={"statement": "", "signature": ""})
    assert leak.status_code == 403 and "elsewhere.example" not in leak.text


def test_stale_cookie_reads_as_logged_out_and_other_sites_cannot_post(client, copy_case: CopyCase, staff) -> None:
    client.cookies.set("ipx_session", "expired-or-revoked")
    for path in ("/complaints/new", "/stats"):
        page = client.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), path
    client.cookies.clear()
    data = {**FORM, "work_id": copy_case.original["work_id"], "infringing_url": "https://elsewhere.example/x.png"}
    location = client.post("/complaints/new", data=data, follow_redirects=False).headers["location"]
    complaint_id = urlsplit(location).path.rsplit("/", 1)[1]
    _login(client, staff)
    forged = client.post(f"/staff/complaints/{complaint_id}/actions", headers={"Origin": "https://evil.example"},
                         data={"action": "dismiss", "reason": "forged by another site"}, follow_redirects=False)
    assert forged.status_code == 403 and forged.headers["content-type"].startswith("text/html")
    assert client.get(f"/api/v1/complaints/{complaint_id}", headers=staff).json()["status"] != "dismissed"


def test_staff_case_page_names_the_target_listing_not_its_work(client, make_user, staff, fresh_png) -> None:
    """A listing case fills both work_id and listing_id; the page labelled the work's id as the listing. The target is
    named by its title (ids only on hover), the case number never breaks, and counts are in words."""
    alice, bob = make_user("Alice"), make_user("Bob")
    original = alice.register(fresh_png(), title="Dunes").json()
    theirs = bob.register(fresh_png(), title="Dunes, traced").json()
    listing = client.post("/api/v1/listings", headers=bob.headers,
                          json={"work_id": theirs["work_id"], "offers": [offer()]}).json()
    listing_case = file(client, notice(original["work_id"], {"listing_id": listing["listing_id"]}))
    work_case = file(client, notice(original["work_id"], {"work_id": theirs["work_id"]}))
    _login(client, staff)
    listing_page = client.get(f"/staff/complaints/{listing_case['complaint_id']}").text
    work_link = f'<a href="/works/{theirs["work_id"]}" title="Work {theirs["work_id"]}" dir="auto">Dunes, traced</a>'
    listing_id = listing["listing_id"]
    assert f'the <a href="/market/listings/{listing_id}" title="Listing {listing_id}">listing</a>' in listing_page
    assert f"of the work {work_link}" in listing_page
    assert f'<h1>Case <span class="cx-nowrap">{listing_case["case_number"]}</span></h1>' in listing_page
    work_page = client.get(f"/staff/complaints/{work_case['complaint_id']}").text
    assert f"the work {work_link}" in work_page
    assert "/market/listings/" not in work_page
    assert "No upheld complaints</span>" in work_page and "complaint(s)" not in work_page  # not "0 upheld ..."
    received = re.search(r'Received <time datetime="([^"]+)" title="[^"]+">\d+ \w{3} \d{4}, \d\d:\d\d UTC</time>',
                         work_page)
    assert received is not None and received[1].endswith("Z")  # one date format on every page, exact on hover
