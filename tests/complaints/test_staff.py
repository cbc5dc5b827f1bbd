"""Staff-only routes refuse everyone else; the review queue, monitoring alerts and the audit log."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest
from _edits import crop_corner

from ipx.complaints import review
from tests.complaints.conftest import CopyCase, act, file, notice, register_a_copy
from tests.conftest import get_counting_queries
from tests.fingerprint.pictures import encoded, skimage_picture

ZERO = "00000000-0000-0000-0000-000000000000"
STAFF_API = [
    ("GET", "/api/v1/staff/complaints", None),
    ("GET", "/api/v1/staff/complaints/{complaint_id}", None),
    ("POST", "/api/v1/staff/complaints/{complaint_id}/actions", {"action": "dismiss", "reason": "not staff"}),
    ("GET", "/api/v1/staff/reviews", None),
    ("POST", "/api/v1/staff/reviews/{review_id}", {"decision": "clear", "reason": "not staff"}),
    ("GET", "/api/v1/staff/audit", None),
]
STAFF_PAGES = [
    ("GET", "/staff/complaints", None),
    ("GET", "/staff/complaints/{complaint_id}", None),
    ("POST", "/staff/complaints/{complaint_id}/actions", {"action": "dismiss", "reason": "not staff"}),
    ("GET", "/staff/reviews", None),
    ("POST", "/staff/reviews/{review_id}", {"decision": "clear", "reason": "not staff"}),
    ("GET", "/staff/audit", None),
]


@pytest.fixture
def open_case(client, copy_case: CopyCase, staff) -> dict[str, str]:
    filed = file(client, notice(copy_case.original["work_id"], {"work_id": copy_case.copy["work_id"]}))
    review = client.get("/api/v1/staff/reviews", headers=staff).json()[0]
    return {"complaint_id": filed["complaint_id"], "review_id": str(review["review_id"])}


def test_every_staff_api_route_refuses_anonymous_creator_and_buyer(client, copy_case, open_case, make_user) -> None:
    buyer = make_user("Buyer")
    callers = {"anonymous": ({}, 401), "creator": (copy_case.alice.headers, 403), "buyer": (buyer.headers, 403)}
    for method, template, body in STAFF_API:
        url = template.format(**open_case)
        for who, (headers, expected) in callers.items():
            response = client.request(method, url, headers=headers, json=body)
            assert response.status_code == expected, f"{who} {method} {url}: {response.status_code}"
            assert response.headers["content-type"] == "application/problem+json"
    case = client.get(f"/api/v1/complaints/{open_case['complaint_id']}", headers=copy_case.bob.headers).json()
    assert case["status"] == "received"  # nothing changed


def test_every_staff_page_refuses_anonymous_creator_and_buyer(client, copy_case, open_case, make_user) -> None:
    buyer = make_user("Buyer")
    for method, template, form in STAFF_PAGES:
        url = template.format(**open_case)
        anonymous = client.request(method, url, data=form, follow_redirects=False)
        assert anonymous.status_code == 303, url
        assert anonymous.headers["location"].startswith("/login?next=")
        for caller in (copy_case.alice, buyer):
            client.cookies.set("ipx_session", caller.headers["Authorization"].removeprefix("Bearer "))
            refused = client.request(method, url, data=form, follow_redirects=False)
            client.cookies.clear()
            assert refused.status_code == 403, url
            assert "IPX staff only" in refused.text


def test_staff_pages_render_for_staff(client, copy_case, open_case, staff) -> None:
    client.cookies.set("ipx_session", staff["Authorization"].removeprefix("Bearer "))
    queue = client.get("/staff/complaints")
    assert queue.status_code == 200 and "IPX-" in queue.text
    case = client.get(f"/staff/complaints/{open_case['complaint_id']}")
    assert case.status_code == 200
    assert copy_case.copy["sha256"] in case.text and "Said to infringe" in case.text
    acted = client.post(f"/staff/complaints/{open_case['complaint_id']}/actions",
                        data={"action": "mark_disputed", "reason": "identical bytes"}, follow_redirects=False)
    assert acted.status_code == 303
    assert "Done: mark the work as disputed." in client.get(acted.headers["location"]).text
    crafted = client.get(f"/staff/complaints/{open_case['complaint_id']}", params={"done": "Call Mallory at once"})
    assert crafted.status_code == 200 and "Mallory" not in crafted.text  # the address names an action, never a text
    bad = client.post(f"/staff/complaints/{open_case['complaint_id']}/actions",
                      data={"action": "mark_disputed", "reason": "x"})
    assert bad.status_code == 422 and "reason" in bad.text and "Decide" in bad.text  # on the case page, kept
    assert '<option value="mark_disputed" selected>' in bad.text and ">x</textarea>" in bad.text
    assert client.get("/staff/reviews").status_code == 200
    review_url = f"/staff/reviews/{open_case['review_id']}"
    assert client.post(review_url, data={"decision": "ignore", "reason": "whatever"}).status_code == 422
    decided = client.post(review_url, data={"decision": "clear", "reason": "licensed stock"}, follow_redirects=False)
    assert decided.status_code == 303
    assert f"Flag {open_case['review_id']} is now cleared." in client.get(decided.headers["location"]).text
    cleared = client.get("/staff/reviews", params={"status": "cleared"})
    assert "licensed stock" in cleared.text
    audit = client.get("/staff/audit", params={"action": "complaint"})
    assert audit.status_code == 200 and "complaint.mark_disputed" in audit.text


def test_review_queue_clear_and_uphold(client, copy_case: CopyCase, staff, make_user, fresh_png) -> None:
    flags = client.get("/api/v1/staff/reviews", headers=staff).json()
    assert len(flags) == 1
    flag = flags[0]
    assert flag["work"]["work_id"] == copy_case.copy["work_id"]
    assert flag["prior_work"]["work_id"] == copy_case.original["work_id"]
    assert (flag["method"], flag["review_status"]) == ("sha256", "open")

    url = f"/api/v1/staff/reviews/{flag['review_id']}"
    assert client.post(url, headers=staff, json={"decision": "maybe", "reason": "unsure"}).status_code == 422
    decided = client.post(url, headers=staff, json={"decision": "uphold", "reason": "Identical file, later"})
    assert decided.status_code == 200, decided.text
    assert decided.json()["review_status"] == "upheld"
    assert decided.json()["decision_reason"] == "Identical file, later"
    assert client.post(url, headers=staff, json={"decision": "clear", "reason": "changed mind"}).status_code == 409
    assert client.get("/api/v1/staff/reviews", headers=staff).json() == []
    assert client.post("/api/v1/staff/reviews/999999", headers=staff,
                       json={"decision": "clear", "reason": "x" * 3}).status_code == 404

    # the creator of the flagged work sees the state; nobody else does
    own = client.get(f"/api/v1/works/{copy_case.copy['work_id']}/review", headers=copy_case.bob.headers)
    assert own.status_code == 200
    assert [(r["review_status"], r["decision_reason"]) for r in own.json()] == [("upheld", "Identical file, later")]
    assert client.get(f"/api/v1/works/{copy_case.copy['work_id']}/review",
                      headers=make_user("Eve").headers).status_code == 403
    assert client.get(f"/api/v1/works/{copy_case.copy['work_id']}/review").status_code == 401
    assert client.get(f"/api/v1/works/{ZERO}/review", headers=copy_case.bob.headers).status_code == 404
    unflagged = copy_case.alice.register(fresh_png(), title="Unique").json()
    assert client.get(f"/api/v1/works/{unflagged['work_id']}/review", headers=copy_case.alice.headers).json() == []


def flag_a_copy(client, copy_case: CopyCase, make_user, data: bytes, staff, decision: str | None = None) -> int:
    """Alice registers `data`, a new account registers it too (a flag); staff decide it when `decision` is given."""
    _, copied = register_a_copy(copy_case, make_user("Copier"), data)
    flag = client.get(f"/api/v1/works/{copied['work_id']}/review", headers=staff).json()[0]
    if decision:
        decided = client.post(f"/api/v1/staff/reviews/{flag['review_id']}", headers=staff,
                              json={"decision": decision, "reason": f"Decided: {decision}"})
        assert decided.status_code == 200, decided.text
    return flag["review_id"]


def test_review_queue_asks_the_same_queries_for_one_flag_or_many(client, copy_case: CopyCase, staff, make_user,
                                                                 fresh_png) -> None:
    """Each flag's two works, their owners and the decision's reason were read flag by flag: six queries a row."""
    client.cookies.set("ipx_session", staff["Authorization"].removeprefix("Bearer "))
    paths = ["/api/v1/staff/reviews?status=open", "/api/v1/staff/reviews?status=upheld", "/staff/reviews",
             "/staff/reviews?status=upheld"]

    def queue_queries() -> dict[str, int]:
        counted = {path: get_counting_queries(client, path, staff) for path in paths}
        assert all(response.status_code == 200 for response, _ in counted.values())
        return {path: queries for path, (_, queries) in counted.items()}

    flag_a_copy(client, copy_case, make_user, fresh_png(), staff, "uphold")
    one_each = queue_queries()
    for decision in ("uphold", None, None):
        flag_a_copy(client, copy_case, make_user, fresh_png(), staff, decision)
    upheld = client.get(paths[1], headers=staff).json()
    assert [flag["decision_reason"] for flag in upheld] == ["Decided: uphold"] * 2
    assert len(client.get(paths[0], headers=staff).json()) == 3
    assert queue_queries() == one_each


def test_review_queue_pages(client, copy_case: CopyCase, staff, make_user, fresh_png, monkeypatch) -> None:
    """Every match is flagged, so the decided lists only grow: the queue comes a page at a time."""
    monkeypatch.setattr(review, "REVIEW_PAGE_SIZE", 2)
    flags = [flag_a_copy(client, copy_case, make_user, fresh_png(), staff, "clear") for _ in range(3)]
    first = client.get("/api/v1/staff/reviews", params={"status": "cleared"}, headers=staff)
    assert [flag["review_id"] for flag in first.json()] == flags[:2] and first.headers["X-Total-Count"] == "3"
    assert first.headers["Link"] == '<http://testserver/api/v1/staff/reviews?status=cleared&page=2>; rel="next"'
    second = client.get(first.headers["Link"][1:].split(">")[0], headers=staff)
    assert [flag["review_id"] for flag in second.json()] == flags[2:]
    assert second.headers["Link"] == '<http://testserver/api/v1/staff/reviews?status=cleared&page=1>; rel="prev"'

    client.cookies.set("ipx_session", staff["Authorization"].removeprefix("Bearer "))
    page = client.get("/staff/reviews", params={"status": "cleared"}).text
    assert "3 flags cleared, oldest first." in page and f"Flag {flags[0]} " in page and f"Flag {flags[2]} " not in page
    assert 'href="/staff/reviews?status=cleared&amp;page=2">Newer flags →</a>' in page
    later = client.get("/staff/reviews", params={"status": "cleared", "page": "2"}).text
    assert f"Flag {flags[2]} " in later and "page 2." in later and "← Older flags</a>" in later
    beyond = client.get("/staff/reviews", params={"status": "cleared", "page": "3"}).text
    assert "There is no page 3: the 3 flags cleared fill fewer pages." in beyond


def test_registration_with_prior_match_alerts_the_earlier_owner(client, copy_case: CopyCase, staff, settings) -> None:
    client.get("/api/v1/staff/complaints", headers=staff)  # any complaints request relays the outbox
    mails = [message_from_bytes(p.read_bytes(), policy=policy.default)
             for p in sorted((settings.data_dir / "outbox").glob("*.eml"))]
    alerts = [m for m in mails if m["To"] == copy_case.alice.email]
    assert len(alerts) == 1
    assert alerts[0]["Subject"] == "A work similar to “Harbour at dawn” was registered"
    link = (f"http://testserver/complaints/new?work_id={copy_case.original['work_id']}"
            f"&infringing_work_id={copy_case.copy['work_id']}")
    assert link in alerts[0].get_content()
    form = client.get(link.removeprefix("http://testserver"))
    assert form.status_code == 200
    assert f'value="{copy_case.copy["work_id"]}"' in form.text  # pre-filled
    assert not [m for m in mails if m["To"] == copy_case.bob.email]  # the later registrant is not alerted


def test_audit_search(client, copy_case: CopyCase, staff) -> None:
    filed = file(client, notice(copy_case.original["work_id"], {"work_id": copy_case.copy["work_id"]}))
    act(client, staff, filed["complaint_id"], "mark_disputed", "identical")
    found = client.get("/api/v1/staff/audit", params={"action": "complaint"}, headers=staff).json()
    assert [e["action"] for e in found["items"]] == ["complaint.mark_disputed", "complaint.received"]
    by_subject = client.get("/api/v1/staff/audit", params={"subject": copy_case.copy["work_id"]}, headers=staff).json()
    assert {e["action"] for e in by_subject["items"]} == {"work.registered", "work.disputed"}
    paged = client.get("/api/v1/staff/audit", params={"page_size": 1, "page": 2}, headers=staff).json()
    assert len(paged["items"]) == 1 and paged["total"] > 2
    assert client.get("/api/v1/staff/audit", params={"page": 0}, headers=staff).status_code == 422


def test_a_registered_crop_is_outlined_on_the_picture_it_was_cut_from(client, staff, make_user) -> None:
    """The review flag and a complaint's evidence keep which part of each picture the other shows."""
    astronaut = skimage_picture("astronaut")
    original = make_user("Alice").register(encoded(astronaut, "PNG"), title="Astronaut").json()
    crop = make_user("Bob").register(encoded(crop_corner(astronaut)), title="My crop").json()
    [flag] = client.get("/api/v1/staff/reviews", headers=staff).json()
    assert flag["method"] == "orb"
    assert flag["prior_work"]["region"] == pytest.approx([0, 0, 0.75, 0.75], abs=0.03)  # crop_corner keeps this
    assert flag["work"]["region"] == pytest.approx([0, 0, 1, 1], abs=0.03)
    case = file(client, notice(original["work_id"], {"work_id": crop["work_id"]}))
    evidence = client.get(f"/api/v1/staff/complaints/{case['complaint_id']}", headers=staff).json()["evidence"]
    assert evidence["claimed"]["region"] == pytest.approx([0, 0, 0.75, 0.75], abs=0.03)
    client.cookies.set("ipx_session", staff["Authorization"].removeprefix("Bearer "))
    for page in ("/staff/reviews", f"/staff/complaints/{case['complaint_id']}"):
        html = client.get(page).text
        assert "Thumbnail of Astronaut, with the part the two works share outlined" in html, page
        assert "Thumbnail of My crop, with" not in html, page  # the crop is all of its own picture: no outline
