"""Filing notices: evidence attached, who may see a case, and every kind of bad notice."""

from __future__ import annotations

import io
import json
import re

import numpy as np
from PIL import Image

from tests.complaints.conftest import CopyCase, file, notice


def test_notice_against_hosted_work_attaches_side_by_side_evidence(client, copy_case: CopyCase) -> None:
    body = notice(copy_case.original["work_id"], {"work_id": copy_case.copy["work_id"]})
    created = client.post("/api/v1/complaints", json=body)
    assert created.status_code == 201, created.text
    filed = created.json()
    assert re.fullmatch(r"IPX-\d{4}-000001", filed["case_number"])
    assert filed["status"] == "received"
    assert filed["status_url"] == f"http://testserver/complaints/{filed['complaint_id']}?token={filed['token']}"

    case = client.get(f"/api/v1/complaints/{filed['complaint_id']}", params={"token": filed["token"]}).json()
    evidence = case["evidence"]
    assert evidence["claimed"]["work_id"] == copy_case.original["work_id"]
    assert evidence["infringing"]["work_id"] == copy_case.copy["work_id"]
    assert evidence["claimed"]["log_index"] == copy_case.original["log_index"]
    assert evidence["infringing"]["log_index"] == copy_case.copy["log_index"]
    assert evidence["claimed"]["registered_at"] < evidence["infringing"]["registered_at"]
    assert evidence["match"] == {"method": "sha256", "distance": 0.0, "source": "exact"}
    assert evidence["earlier"] == "claimed"
    assert case["complainant"]["address"] == "1 Quay St"
    assert [h["action"] for h in case["history"]] == ["complaint.received"]


def test_case_numbers_count_up(client, copy_case: CopyCase, fresh_png) -> None:
    third = copy_case.bob.register(fresh_png(), title="Other").json()
    first = file(client, notice(copy_case.original["work_id"], {"work_id": copy_case.copy["work_id"]}))
    second = file(client, notice(copy_case.original["work_id"], {"work_id": third["work_id"]}))
    assert int(second["case_number"][-6:]) == int(first["case_number"][-6:]) + 1


def test_parties_see_the_case_and_nobody_else(client, copy_case: CopyCase, make_user, staff) -> None:
    filed = file(client, notice(copy_case.original["work_id"], {"work_id": copy_case.copy["work_id"]}))
    url = f"/api/v1/complaints/{filed['complaint_id']}"
    assert client.get(url).status_code == 401
    assert client.get(url, params={"token": "not-the-token-at-all"}).status_code == 401
    assert client.get(url, headers=make_user("Mallory").headers).status_code == 403
    by_header = client.get(url, headers={"X-Complaint-Token": filed["token"]})
    assert by_header.status_code == 200
    assert by_header.json()["complainant"] == {
        "name": "Alice Original", "email": "alice.claims@example.org", "address": "1 Quay St", "phone": None,
    }
    owner_view = client.get(url, headers=copy_case.bob.headers)
    assert owner_view.status_code == 200
    assert owner_view.json()["complainant"] == {"name": "Alice Original"}  # the accused gets no contact details
    staff_view = client.get(url, headers=staff).json()
    assert staff_view["complainant"]["email"] == "alice.claims@example.org"
    assert staff_view["repeat_infringer"] == {"account_id": copy_case.bob.account_id, "upheld_complaints": 0}
    assert client.get("/api/v1/complaints/00000000-0000-0000-0000-000000000000", headers=staff).status_code == 404
    assert client.get("/api/v1/complaints/not-a-uuid", headers=staff).status_code == 404


def test_incomplete_notice_lists_every_missing_element(client, copy_case: CopyCase) -> None:
    body = notice(copy_case.original["work_id"], {"work_id": copy_case.copy["work_id"]}, good_faith=False)
    del body["complainant"]["email"], body["signature"]
    response = client.post("/api/v1/complaints", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    locs = {tuple(error["loc"]) for error in response.json()["errors"]}
    assert locs == {("body", "complainant", "email"), ("body", "good_faith"), ("body", "signature")}
    assert "good_faith: Affirm your good-faith belief" in response.json()["detail"]


def test_infringing_must_name_exactly_one_target(client, copy_case: CopyCase) -> None:
    both = {"work_id": copy_case.copy["work_id"], "url": "https://example.com/stolen.png"}
    response = client.post("/api/v1/complaints", json=notice(copy_case.original["work_id"], both))
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "infringing"]
    assert "exactly one" in response.json()["errors"][0]["msg"]


def test_unknown_works_are_field_errors(client, copy_case: CopyCase) -> None:
    missing = "11111111-1111-1111-1111-111111111111"
    response = client.post("/api/v1/complaints", json=notice(missing, {"work_id": copy_case.copy["work_id"]}))
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"loc": ["body", "work_id"], "msg": f"No registered work has the id {missing}."}
    ]
    response = client.post("/api/v1/complaints", json=notice(copy_case.original["work_id"], {"work_id": missing}))
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "infringing", "work_id"]
    response = client.post("/api/v1/complaints", json=notice(copy_case.original["work_id"], {"listing_id": missing}))
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "infringing", "listing_id"]
    itself = notice(copy_case.original["work_id"], {"work_id": copy_case.original["work_id"]})
    assert client.post("/api/v1/complaints", json=itself).status_code == 422


def test_duplicate_notice_for_the_same_pair_is_a_conflict(client, copy_case: CopyCase) -> None:
    body = notice(copy_case.original["work_id"], {"work_id": copy_case.copy["work_id"]})
    first = file(client, body)
    again = client.post("/api/v1/complaints", json=body)
    assert again.status_code == 409
    assert again.json()["case_number"] == first["case_number"]
    url_body = notice(copy_case.original["work_id"], {"url": "https://example.com/a.png"})
    file(client, url_body)
    assert client.post("/api/v1/complaints", json=url_body).status_code == 409


def test_not_json_is_a_clear_422(client) -> None:
    response = client.post("/api/v1/complaints", content=b"name=x", headers={"content-type": "text/plain"})
    assert response.status_code == 422
    assert "JSON" in response.json()["detail"]
    deep = b"[" * 100_000
    for body in (b"[1, 2]", b'"x"', b"null", b"NaN", deep):  # JSON, but no notice: each was a bare 500
        answer = client.post("/api/v1/complaints", content=body, headers={"content-type": "application/json"})
        assert answer.status_code == 422, (body[:10], answer.text)
        assert answer.headers["content-type"] == "application/problem+json" and "JSON object" in answer.json()["detail"]
    for field in ("[1]", "NaN", deep.decode()):
        answer = client.post("/api/v1/complaints", data={"notice": field}, files={"work_file": ("x.png", b"x")})
        assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json", field[:10]


def test_upload_identifies_the_registered_work_and_the_external_copy(client, copy_case: CopyCase, settings) -> None:
    body = notice(None, {"url": "https://pirate.example/harbour.png"})
    response = client.post(
        "/api/v1/complaints", data={"notice": json.dumps(body)},
        files={"work_file": ("mine.png", copy_case.data), "infringing_file": ("theirs.png", copy_case.data)},
    )
    assert response.status_code == 201, response.text
    filed = response.json()
    case = client.get(f"/api/v1/complaints/{filed['complaint_id']}", params={"token": filed["token"]}).json()
    assert case["work_id"] == copy_case.original["work_id"]  # the earliest registration of those bytes
    assert case["evidence"]["identified_by"] == "upload:sha256"
    assert case["evidence"]["infringing"]["copy"]["sha256"] == copy_case.original["sha256"]
    assert case["evidence"]["match"]["method"] == "sha256"
    assert not list((settings.data_dir / "tmp").iterdir())  # the spooled copies are gone


def test_upload_that_matches_nothing_is_a_field_error(client, fresh_png) -> None:
    body = notice(None, {"url": "https://pirate.example/x.png"})
    response = client.post(
        "/api/v1/complaints", data={"notice": json.dumps(body)}, files={"work_file": ("x.png", fresh_png())}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "work_file"]
    no_work = client.post("/api/v1/complaints", json=body)
    assert no_work.status_code == 422
    assert no_work.json()["errors"][0]["loc"] == ["body", "work_id"]
    bad_json = client.post("/api/v1/complaints", data={"notice": "{"}, files={"work_file": ("x.png", b"x")})
    assert bad_json.status_code == 422
    assert bad_json.json()["errors"][0]["loc"] == ["body", "notice"]


def test_logged_in_complainant_sees_the_case_through_the_account(client, copy_case: CopyCase) -> None:
    filed = file(
        client, notice(copy_case.original["work_id"], {"work_id": copy_case.copy["work_id"]}),
        headers=copy_case.alice.headers,
    )
    response = client.get(f"/api/v1/complaints/{filed['complaint_id']}", headers=copy_case.alice.headers)
    assert response.status_code == 200
    assert response.json()["complainant"]["address"] == "1 Quay St"


def _photo(seed: int, size: tuple[int, int], fmt: str) -> bytes:
    blocks = np.random.default_rng(seed).integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(blocks).resize(size, Image.Resampling.BILINEAR).save(out, fmt)
    return out.getvalue()


def test_a_resized_reencoded_upload_is_identified_perceptually(client, make_user) -> None:
    alice = make_user("Alice")
    original = alice.register(_photo(77, (640, 480), "PNG"), title="Blocks").json()
    smaller_jpeg = _photo(77, (320, 240), "JPEG")
    body = notice(None, {"url": "https://pirate.example/blocks.jpg"})
    response = client.post(
        "/api/v1/complaints", data={"notice": json.dumps(body)},
        files={"work_file": ("mine.jpg", smaller_jpeg), "infringing_file": ("theirs.jpg", smaller_jpeg)},
    )
    assert response.status_code == 201, response.text
    filed = response.json()
    case = client.get(f"/api/v1/complaints/{filed['complaint_id']}", params={"token": filed["token"]}).json()
    assert case["work_id"] == original["work_id"]
    method = case["evidence"]["identified_by"].removeprefix("upload:")
    assert method != "sha256"
    assert case["evidence"]["match"]["source"] == "perceptual"
    assert case["evidence"]["match"]["method"] == method


def test_evidence_carries_the_registry_prior_match_for_a_perceptual_copy(client, make_user) -> None:
    alice, bob = make_user("Alice"), make_user("Bob")
    original = alice.register(_photo(78, (640, 480), "PNG"), title="Blocks").json()
    copy = bob.register(_photo(78, (320, 240), "JPEG"), title="Blocks, smaller", filename="b.jpg").json()
    [prior] = copy["prior_similar"]
    assert prior["work_id"] == original["work_id"]
    filed = file(client, notice(original["work_id"], {"work_id": copy["work_id"]}))
    case = client.get(f"/api/v1/complaints/{filed['complaint_id']}", params={"token": filed["token"]}).json()
    assert case["evidence"]["match"] == {
        "method": prior["method"], "distance": prior["distance"], "source": "registry prior match"
    }
    assert case["evidence"]["earlier"] == "claimed"
