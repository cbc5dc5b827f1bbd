"""What a second bug hunt found on the public registry surfaces, each kept fixed: certificate text that cost seconds
to lay out, the earliest registrant hidden from a look-up by hash, links broken by a trailing slash, control
characters in display names, and HEAD answered 405."""

from __future__ import annotations

import io
import json

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader

from ipx.config import Settings
from ipx.web import certificates, pages
from tests.conftest import ApiUser, png_bytes


@pytest.mark.parametrize(("typed", "printed"), [
    ("Ada\nLovelace\t(1815)", "Ada Lovelace (1815)"),  # line breaks and tabs print as spaces
    ("Zero\u200bwidth\u202eoverride", "Zerowidthoverride"),  # format characters take no place
    ("e" + "\u0301" * 50, "e" + "\u0301" * certificates.MAX_MARKS_ON_A_LETTER),
    ("x" * 5000, "x" * certificates.MAX_PRINTED_CHARACTERS),
    ("Café Müller 東京", "Café Müller 東京"),
])
def test_certificates_print_text_within_bounds(typed: str, printed: str) -> None:
    assert certificates.printable(typed) == printed


def test_a_certificate_of_50_invisible_creators_still_holds_every_fact(client: TestClient) -> None:
    owner = ApiUser(client, "ada@example.org", "Ada")
    creators = [{"name": "\u200b" * 150 + f"C{n}", "share": 2} for n in range(50)]
    work = owner.register(png_bytes(21), title="Invisible crowd", creators=json.dumps(creators)).json()
    pdf = client.get(f"/works/{work['work_id']}/certificate.pdf")
    assert pdf.status_code == 200
    reader = PdfReader(io.BytesIO(pdf.content))
    text = reader.pages[0].extract_text()
    assert len(reader.pages) == 1 and work["sha256"] in text.replace("\n", "")


def test_a_look_up_by_hash_shows_the_earliest_registrations_first(client: TestClient, monkeypatch) -> None:
    monkeypatch.setattr(pages, "VERIFY_MAX_RESULTS", 2)
    picture = png_bytes(22)
    registered = [ApiUser(client, f"u{n}@example.org", f"Registrant {n}").register(picture, title=f"Copy {n}").json()
                  for n in range(3)]
    page = client.get("/verify", params={"q": registered[0]["sha256"]}).text
    assert "Copy 0" in page and "Copy 1" in page and "Copy 2" not in page
    assert "registered 3 times: the 2 earliest registrations are shown" in page


def test_a_public_url_with_a_trailing_slash_makes_the_same_links(make_settings) -> None:
    assert make_settings(public_url="https://ipx.example/").public_url == "https://ipx.example"
    assert Settings(public_url=" https://ipx.example// ").public_url == "https://ipx.example"


def test_display_names_with_control_characters_are_refused_beside_the_field(client: TestClient) -> None:
    page = client.post("/signup", data={"display_name": "Ada\nLovelace", "email": "ada@example.org",
                                        "password": "correct horse 42"})
    assert page.status_code == 422 and "cannot hold line breaks" in page.text
    api = client.post("/api/v1/auth/register", json={"display_name": "Ada\tLovelace", "email": "ada@example.org",
                                                     "password": "correct horse 42"})
    assert api.status_code == 422 and "control characters" in api.json()["detail"]
    separated = client.post("/api/v1/auth/register", json={"display_name": "Ada\u2028Lovelace",
                                                           "email": "ada@example.org", "password": "correct horse 42"})
    assert separated.status_code == 422, separated.text  # a line separator breaks the line like a line break


def test_head_is_answered_like_get_without_a_body(client: TestClient) -> None:
    owner = ApiUser(client, "ada@example.org", "Ada")
    work = owner.register(png_bytes(23), title="Headed").json()
    for path in ("/api/v1/log/checkpoint", f"/works/{work['work_id']}", "/verify", "/.well-known/ipx/keys"):
        got, head = client.get(path), client.head(path)
        assert (head.status_code, head.content) == (200, b""), path
        assert head.headers["content-type"] == got.headers["content-type"]
    assert client.delete("/api/v1/log/checkpoint").headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize("size", [(8, 8), (2000, 40)])
def test_pictures_too_small_or_thin_to_fingerprint_still_have_a_thumbnail(client: TestClient, size) -> None:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, "PNG")
    owner = ApiUser(client, "ada@example.org", "Ada")
    work = owner.register(out.getvalue(), title="Icon").json()
    assert work["detection"]["methods"] == ["sha256"]  # exact only, as before
    assert f'/works/{work["work_id"]}/thumbnail' in client.get(f"/works/{work['work_id']}").text
    thumbnail = client.get(f"/works/{work['work_id']}/thumbnail")
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/jpeg"


def test_a_page_of_my_works_past_the_last_says_so(client: TestClient) -> None:
    owner = ApiUser(client, "ada@example.org", "Ada")
    owner.register(png_bytes(24), title="Only one")
    past = client.get("/me/works?page=2", headers=owner.headers).text
    assert "There is no page 2." in past and "not registered any works yet" not in past


def test_certificate_pdfs_are_built_once_per_state_and_revalidated(client: TestClient, monkeypatch) -> None:
    built: list[str] = []
    build = certificates.certificate_pdf

    def counting(facts):  # type: ignore[no-untyped-def]
        built.append(facts.status)
        return build(facts)

    monkeypatch.setattr(certificates, "certificate_pdf", counting)
    monkeypatch.setattr(pages, "CERTIFICATES", certificates.CertificateCache(entries=2))
    owner = ApiUser(client, "ada@example.org", "Ada")
    work = owner.register(png_bytes(25), title="Kept").json()
    path = f"/works/{work['work_id']}/certificate.pdf"
    first, second = client.get(path), client.get(path)
    assert first.content == second.content and built == ["registered"]
    etag = first.headers["etag"]
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
    assert first.headers["cache-control"] == "no-cache"  # asked again each time: the status may change

    others = [owner.register(png_bytes(26 + n), title=f"Other {n}").json() for n in range(2)]
    for other in others:  # two other certificates push the first out of a cache of two
        client.get(f"/works/{other['work_id']}/certificate.pdf")
    again = client.get(path)
    assert again.headers["etag"] == etag and len(built) == 4


def test_a_certificate_states_a_changed_status(client: TestClient) -> None:
    from ipx.db import transaction
    from ipx.registry.models import Work

    owner = ApiUser(client, "ada@example.org", "Ada")
    work = owner.register(png_bytes(29), title="Disputed later").json()
    path = f"/works/{work['work_id']}/certificate.pdf"
    before = client.get(path)
    with transaction(client.app.state.session_factory) as session:
        session.get(Work, work["work_id"]).status = "disputed"  # type: ignore[union-attr]
    after = client.get(path, headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200 and after.headers["etag"] != before.headers["etag"]
    assert "disputed" in PdfReader(io.BytesIO(after.content)).pages[0].extract_text()
