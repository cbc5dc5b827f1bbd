"""The registry's pages over HTTP, on SQLite and PostgreSQL: forms, errors, certificate, PDF, verify."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pypdf import PdfReader

from ipx.app import create_app
from ipx.config import Settings
from ipx.db import transaction
from ipx.registry import previews
from ipx.registry.models import Work
from ipx.web import certificates
from tests.conftest import ApiUser, png_bytes

PASSWORD = "correct horse 42"
HTML = "text/html; charset=utf-8"


def sign_up(client: TestClient, email: str = "ada@example.org", name: str = "Ada Lovelace") -> None:
    response = client.post(
        "/signup", data={"display_name": name, "email": email, "password": PASSWORD}, follow_redirects=False
    )
    assert response.status_code == 303, response.text


def register_form(client: TestClient, data: bytes, filename: str = "work.png", content_type: str = "image/png",
                  **fields: str | list[str]):  # type: ignore[no-untyped-def]
    return client.post(
        "/works/new", files={"file": (filename, data, content_type)}, data={"title": "A work", **fields},
        follow_redirects=False,
    )


def registered_work_id(client: TestClient, data: bytes, **fields: str | list[str]) -> str:
    response = register_form(client, data, **fields)
    assert response.status_code == 303, response.text
    match = re.fullmatch(r"/works/([0-9a-f-]{36})\?registered=1", response.headers["location"])
    assert match, response.headers["location"]
    return match.group(1)


def second_browser(client: TestClient) -> TestClient:
    """Another visitor of the same running app, with a cookie jar of their own."""
    return TestClient(client.app)


# --- home ---------------------------------------------------------------------------------------------------------


def test_home_shows_what_ipx_is_and_the_log(client: TestClient) -> None:
    empty = client.get("/")
    assert empty.status_code == 200 and empty.headers["content-type"] == HTML
    assert "Prove you had it first" in empty.text
    assert "No works registered yet" in empty.text
    assert 'href="/signup"' in empty.text

    sign_up(client)
    work_id = registered_work_id(client, png_bytes(1), title="Harbour at dawn")
    page = client.get("/").text
    assert "Harbour at dawn" in page and f'href="/works/{work_id}"' in page
    assert '<p class="hero-figure">1</p>' in page  # the log holds one entry
    checkpoint = client.get("/api/v1/log/checkpoint").text.splitlines()
    assert checkpoint[1] == "1"
    assert "<dt>Witnessed</dt>" not in page  # no witnesses configured, none cosigned
    assert 'href="/works/new"' in page  # logged in: the call to action is to register


# --- accounts -----------------------------------------------------------------------------------------------------


def test_sign_up_sets_an_httponly_lax_session_cookie(client: TestClient) -> None:
    assert client.get("/signup").status_code == 200
    response = client.post(
        "/signup", data={"display_name": "Ada", "email": "Ada@Example.org", "password": PASSWORD, "next": "/works/new"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/works/new"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("ipx_session=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    me = client.get("/api/v1/auth/me")  # the cookie is a real session for the API too
    assert me.status_code == 200 and me.json()["email"] == "ada@example.org"
    assert "Ada" in client.get("/me/works").text


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"password": "short"}, "password", "at least 10 characters"),
        ({"email": "not-an-email"}, "email", "valid email address"),
        ({"display_name": ""}, "display_name", "at least 1 character"),
    ],
)
def test_sign_up_errors_are_shown_in_the_form_with_input_kept(
    client: TestClient, fields: dict[str, str], field: str, message: str
) -> None:
    data = {"display_name": "Grace Hopper", "email": "grace@example.org", "password": PASSWORD, **fields}
    response = client.post("/signup", data=data, follow_redirects=False)
    assert response.status_code == 422 and response.headers["content-type"] == HTML
    assert f'<p class="field-error" id="{field}-error">' in response.text
    assert message in response.text
    if field != "email":
        assert 'value="grace@example.org"' in response.text
    assert "set-cookie" not in response.headers


def test_sign_up_with_a_taken_email_says_so(client: TestClient) -> None:
    sign_up(client, "ada@example.org")
    other = second_browser(client)
    response = other.post(
        "/signup", data={"display_name": "Another Ada", "email": "ada@example.org", "password": PASSWORD}
    )
    assert response.status_code == 422
    assert "An account with the email ada@example.org already exists." in response.text
    assert 'value="Another Ada"' in response.text


def test_login_failure_is_shown_with_the_email_kept(client: TestClient) -> None:
    sign_up(second_browser(client))
    response = client.post("/login", data={"email": "ada@example.org", "password": "wrong password!"})
    assert response.status_code == 401 and response.headers["content-type"] == HTML
    assert "The email or password is not correct." in response.text
    assert 'value="ada@example.org"' in response.text
    assert "set-cookie" not in response.headers


def test_login_goes_to_next_but_never_to_another_site(client: TestClient) -> None:
    sign_up(second_browser(client))
    credentials = {"email": "ada@example.org", "password": PASSWORD}
    response = client.post("/login", data={**credentials, "next": "/works/new"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/works/new"
    for hostile in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        response = client.post("/login", data={**credentials, "next": hostile}, follow_redirects=False)
        assert response.headers["location"] == "/me/works"


def test_logout_revokes_the_token_and_clears_the_cookie(client: TestClient) -> None:
    sign_up(client)
    token = client.cookies["ipx_session"]
    response = client.post("/logout", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert 'ipx_session=""' in response.headers["set-cookie"] and "Max-Age=0" in response.headers["set-cookie"]
    assert client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_a_stale_session_cookie_reads_as_logged_out(client: TestClient) -> None:
    client.cookies.set("ipx_session", "no-such-token")
    home = client.get("/")
    assert home.status_code == 200 and 'href="/login"' in home.text
    response = client.get("/me/works", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/me/works"


def test_cross_site_form_posts_are_refused(client: TestClient) -> None:
    sign_up(second_browser(client))
    credentials = {"email": "ada@example.org", "password": PASSWORD}
    response = client.post("/login", data=credentials, headers={"Origin": "https://evil.example"})
    assert response.status_code == 403 and response.headers["content-type"] == HTML
    assert "sent from another website" in response.text
    same_site = client.post("/login", data=credentials, headers={"Origin": "http://testserver"}, follow_redirects=False)
    assert same_site.status_code == 303


# --- registering through the form ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/works/new", "/me/works"])
def test_pages_that_need_an_account_redirect_to_login(client: TestClient, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next={path}"


def test_posting_the_form_without_an_account_redirects_to_login(client: TestClient) -> None:
    response = register_form(client, png_bytes(1))
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/works/new"


def test_register_through_the_form(client: TestClient) -> None:
    sign_up(client)
    form = client.get("/works/new").text
    assert form.count('name="creator_name"') == 3 and 'enctype="multipart/form-data"' in form
    work_id = registered_work_id(
        client, png_bytes(3), title="Harbour at dawn", work_type="image", description="Oil on canvas.",
        creator_name=["Ada Lovelace", "Charles Babbage", ""], creator_share=["62.5", "37.5%", ""],
        year_created="2024", published="yes", published_where="Royal Academy",
    )
    record = client.get(f"/api/v1/works/{work_id}").json()
    assert record["title"] == "Harbour at dawn" and record["description"] == "Oil on canvas."
    assert record["creators"] == [
        {"name": "Ada Lovelace", "share_bps": 6250}, {"name": "Charles Babbage", "share_bps": 3750}
    ]
    assert record["year_created"] == 2024
    assert record["publication"] == {"published": True, "where": "Royal Academy"}

    page = client.get(f"/works/{work_id}?registered=1").text
    assert "Registered.</strong>" in page
    assert "Ada Lovelace" in page and "62.5%" in page and "37.5%" in page
    assert "This file matches an earlier registration" not in page


def test_without_creators_the_account_holder_is_the_sole_creator(client: TestClient) -> None:
    sign_up(client, name="Solo Artist")
    work_id = registered_work_id(client, png_bytes(4))
    assert client.get(f"/api/v1/works/{work_id}").json()["creators"] == [{"name": "Solo Artist", "share_bps": 10000}]


@pytest.mark.parametrize(
    ("upload", "fields", "field", "message"),
    [
        (("empty.png", b"", "image/png"), {}, "file", "The file is empty"),
        (("", b"", "application/octet-stream"), {}, "file", "Choose a file: none was attached"),
        (("notes.png", b"plain text, not a picture\n" * 4, "image/png"), {}, "file", "claims to be image/png"),
        (None, {"title": "   "}, "title", "A title is required"),
        (None, {"title": "Two\nlines"}, "title", "It must be one line of text"),
        (None, {"year_created": "next year"}, "year_created", "valid integer"),
        (None, {"year_created": "2999"}, "year_created", "The year of creation cannot be later than this year"),
        (None, {"published_where": "a zine"}, "published_where", "Say where the work was published only if"),
        (None, {"creator_name": ["Ada", "Bob"], "creator_share": ["50", "30"]}, "creators",
         "shares must add up to 100% (they add up to 80%)"),
        (None, {"creator_name": ["Ada", ""], "creator_share": ["", ""]}, "creators", "Row 1, share"),
    ],
)
def test_form_errors_are_shown_in_the_form(
    client: TestClient, upload: tuple[str, bytes, str] | None, fields: dict[str, str | list[str]], field: str,
    message: str,
) -> None:
    sign_up(client)
    filename, data, content_type = upload or ("work.png", png_bytes(5), "image/png")
    response = register_form(client, data, filename, content_type, **{"description": "kept text", **fields})
    assert response.status_code in (409, 413, 422) and response.headers["content-type"] == HTML
    assert f'<p class="field-error" id="{field}-error">' in response.text
    assert message in response.text
    assert "kept text</textarea>" in response.text
    assert client.get("/api/v1/works").json()["total"] == 0


def test_a_form_without_file_or_title_says_both_at_once(client: TestClient) -> None:
    sign_up(client)
    response = register_form(client, b"", "", "application/octet-stream", title="   ")
    assert response.status_code == 422
    assert '<p class="field-error" id="title-error">' in response.text and "A title is required" in response.text
    assert '<p class="field-error" id="file-error">' in response.text and "Choose a file" in response.text


def test_shares_that_do_not_add_up_are_explained(client: TestClient) -> None:
    sign_up(client)
    response = register_form(client, png_bytes(6), creator_name=["Ada", "Bob"], creator_share=["50", "30"])
    assert response.status_code == 422
    assert "The creators&#39; shares must add up to 100" in response.text
    assert 'value="Bob"' in response.text and 'value="30"' in response.text


def test_a_file_over_the_upload_limit_is_refused_in_the_form(make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(make_settings(max_upload_bytes=2000))) as client:
        sign_up(client)
        response = register_form(client, b"\x00" * 5000, "big.bin", "application/octet-stream", title="Too big")
        assert response.status_code == 413 and response.headers["content-type"] == HTML
        assert "larger than the upload limit" in response.text
        assert 'value="Too big"' in response.text
        # far over the limit, the body is refused from its declared size before it is read: still a page
        for path in ("/works/new", "/verify"):
            huge = client.post(path, files={"file": ("big.bin", b"\x00" * 200_000)}, data={"title": "Huge"})
            assert huge.status_code == 413 and huge.headers["content-type"] == HTML, path
            assert "larger than the limit" in huge.text
        # a form not sent as its page sends it (the file as a text field) is a 422 page, not "nothing at /works/new"
        odd = client.post("/works/new", data={"title": "No file", "file": "just text"})
        assert odd.status_code == 422 and "The form could not be read" in odd.text


def test_registering_the_same_file_twice_links_to_the_first(client: TestClient) -> None:
    sign_up(client)
    first = registered_work_id(client, png_bytes(7), title="Original")
    response = register_form(client, png_bytes(7), title="Again")
    assert response.status_code == 409
    assert "You already registered this exact file as “Original”" in response.text
    assert f'href="/works/{first}"' in response.text


def test_a_match_with_another_accounts_work_is_noticed_on_the_fresh_certificate(client: TestClient) -> None:
    sign_up(client, "first@example.org", "First Painter")
    first = registered_work_id(client, png_bytes(8), title="The original")
    copier = second_browser(client)
    sign_up(copier, "second@example.org", "Second Painter")
    second = registered_work_id(copier, png_bytes(8), title="Mine now")

    fresh = copier.get(f"/works/{second}?registered=1").text
    assert "This file matches an earlier registration by another account" in fresh
    assert f'href="/works/{first}"' in fresh and "The original" in fresh
    assert "This file matches an earlier registration" not in client.get(f"/works/{second}?registered=1").text


def test_my_works_lists_only_my_registrations(client: TestClient, make_user: Callable[..., ApiUser]) -> None:
    assert make_user("Someone Else").register(png_bytes(9), title="Not mine").status_code == 201
    sign_up(client)
    assert "You have not registered any works yet" in client.get("/me/works").text
    work_id = registered_work_id(client, png_bytes(10), title="Mine")
    page = client.get("/me/works").text
    assert "Mine" in page and "Not mine" not in page
    assert f'href="/works/{work_id}/evidence.json"' in page and f'href="/works/{work_id}/certificate.pdf"' in page
    assert "1 registration," in page


# --- the public record ----------------------------------------------------------------------------------------------


def test_certificate_page_shows_the_record_and_verifies_it(
    client: TestClient, make_user: Callable[..., ApiUser]
) -> None:
    registered = make_user("Ada Lovelace").register(png_bytes(11), title="Harbour at dawn").json()
    page = client.get(f"/works/{registered['work_id']}")
    assert page.status_code == 200 and page.headers["content-type"] == HTML
    text = page.text
    for fact in (registered["title"], registered["sha256"], registered["key_id"], "image/png", "Ada Lovelace"):
        assert fact in text
    assert f'<dd class="mono">{registered["registered_at"]}</dd>' in text  # the exact moment in the facts
    assert f'on <time datetime="{registered["registered_at"]}"' in text and " UTC</time>" in text  # in words above
    assert f"{registered['size']:,} bytes" in text
    assert f"log index #{registered['log_index']}" in text
    assert text.count('class="ok"') >= 8 and 'class="bad"' not in text and "✔" in text
    assert "Verified.</strong>" in text
    assert f'href="/works/{registered["work_id"]}/evidence.json"' in text
    assert f'src="/works/{registered["work_id"]}/thumbnail"' in text
    assert "DISPUTED" not in text


def test_a_missing_stored_file_fails_verification_visibly(
    client: TestClient, make_user: Callable[..., ApiUser]
) -> None:
    registered = make_user().register(png_bytes(12)).json()
    client.app.state.registry.blobs.delete(registered["sha256"])
    text = client.get(f"/works/{registered['work_id']}").text
    assert "Verification failed.</strong>" in text
    assert "the registered file is missing from the blob store" in text and "✘" in text


def test_a_disputed_work_says_so_prominently(client: TestClient, make_user: Callable[..., ApiUser]) -> None:
    work_id = make_user().register(png_bytes(13)).json()["work_id"]
    with transaction(client.app.state.session_factory) as session:
        session.get(Work, work_id).status = "disputed"  # type: ignore[union-attr]
    text = client.get(f"/works/{work_id}").text
    assert "Status: DISPUTED." in text
    assert "Status: DISPUTED" in client.get(f"/works/{work_id}/certificate").text
    pdf_text = PdfReader(io.BytesIO(client.get(f"/works/{work_id}/certificate.pdf").content)).pages[0].extract_text()
    assert "disputed" in pdf_text


def test_evidence_download_is_the_api_bundle_as_an_attachment(
    client: TestClient, make_user: Callable[..., ApiUser]
) -> None:
    work_id = make_user().register(png_bytes(14)).json()["work_id"]
    download = client.get(f"/works/{work_id}/evidence.json")
    assert download.status_code == 200 and download.headers["content-type"] == "application/json"
    assert download.headers["content-disposition"] == f'attachment; filename="ipx-evidence-{work_id}.json"'
    assert download.json() == client.get(f"/api/v1/works/{work_id}/evidence").json()


def test_thumbnail_is_a_small_cached_jpeg(client: TestClient, make_user: Callable[..., ApiUser]) -> None:
    work_id = make_user().register(png_bytes(15, size=(1200, 800))).json()["work_id"]
    response = client.get(f"/works/{work_id}/thumbnail")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert "max-age=" in response.headers["cache-control"]
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "JPEG" and max(image.size) == previews.THUMBNAIL_SIDE
    cached = client.get(f"/works/{work_id}/thumbnail", headers={"If-None-Match": response.headers["etag"]})
    assert cached.status_code == 304 and cached.content == b""


def test_a_work_that_is_not_an_image_has_no_thumbnail(client: TestClient, make_user: Callable[..., ApiUser]) -> None:
    work_id = make_user().register(b"A poem\n" * 20, filename="poem.txt").json()["work_id"]
    assert 'src="/works/' not in client.get(f"/works/{work_id}").text
    response = client.get(f"/works/{work_id}/thumbnail")
    assert response.status_code == 404 and response.headers["content-type"] == HTML


def test_printable_certificate_has_a_qr_code_of_the_public_url(
    client: TestClient, make_user: Callable[..., ApiUser]
) -> None:
    registered = make_user().register(png_bytes(16), title="Printable").json()
    page = client.get(f"/works/{registered['work_id']}/certificate").text
    url = f"http://testserver/works/{registered['work_id']}"
    assert certificates.qr_svg(url) in page and '<svg' in page and 'class="segno"' in page
    assert f"<title>{url}</title>" in page
    for fact in (registered["sha256"], registered["key_id"], "Printable", url):
        assert fact in page


def test_certificate_pdf_states_every_fact(client: TestClient, make_user: Callable[..., ApiUser]) -> None:
    registered = make_user("Zoë Ångström").register(png_bytes(17), title="Łódź at night — 夜").json()
    response = client.get(f"/works/{registered['work_id']}/certificate.pdf")
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    reader = PdfReader(io.BytesIO(response.content))
    assert len(reader.pages) == 1
    text = reader.pages[0].extract_text()
    statement_time = client.get(f"/api/v1/works/{registered['work_id']}/evidence").json()["statement"]["registered_at"]
    for fact in (
        "Łódź at night", registered["sha256"], statement_time, registered["key_id"], "Zoë Ångström",
        f"http://testserver/works/{registered['work_id']}",
    ):
        assert fact in text, fact
    assert re.search(rf"LOG INDEX\s*{registered['log_index']}\b", text)


@pytest.mark.parametrize(
    "path",
    [
        "/works/00000000-0000-4000-8000-000000000000",
        "/works/not-a-uuid",
        "/works/00000000-0000-4000-8000-000000000000/certificate",
        "/works/00000000-0000-4000-8000-000000000000/certificate.pdf",
        "/works/00000000-0000-4000-8000-000000000000/evidence.json",
        "/works/12345/thumbnail",
    ],
)
def test_unknown_or_malformed_ids_get_an_html_404(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == HTML
    assert '<p class="error-code">404</p>' in response.text


# --- public verification -----------------------------------------------------------------------------------------


def test_verify_by_id_hash_or_certificate_link(client: TestClient, make_user: Callable[..., ApiUser]) -> None:
    registered = make_user().register(png_bytes(18), title="Look me up").json()
    assert "Not registered" not in client.get("/verify").text
    for query in (registered["work_id"], registered["sha256"].upper(), f"http://testserver/works/{registered['work_id']}"):
        page = client.get("/verify", params={"q": query}).text
        assert "Look me up" in page, query
        assert "Verified.</strong>" in page


def test_verify_by_hash_lists_every_registration_of_the_file(
    client: TestClient, make_user: Callable[..., ApiUser]
) -> None:
    data = png_bytes(19)
    first = make_user("First").register(data, title="First copy").json()
    make_user("Second").register(data, title="Second copy")
    page = client.get("/verify", params={"q": first["sha256"]}).text
    assert page.count('class="card result"') == 2 and "First copy" in page and "Second copy" in page


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("0" * 64, "Not registered."),
        ("00000000-0000-4000-8000-000000000000", "Not registered."),
        ("hello", "Enter a work id"),
    ],
)
def test_verify_explains_a_miss(client: TestClient, query: str, message: str) -> None:
    response = client.get("/verify", params={"q": query})
    assert response.status_code == 200
    assert message in response.text
    assert 'class="card result"' not in response.text
