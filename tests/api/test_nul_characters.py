"""Text holding a NUL character (U+0000) is refused with a 422 naming the field, on both databases.

PostgreSQL cannot store one: each of these reached the driver and answered 500 there (schemathesis found the
audit search's); SQLite kept it, to reappear in certificates and pages. Nothing may be written on the way.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from fastapi import APIRouter

import ipx
from ipx.routing import IPXRoute, find_nul
from tests.conftest import png_bytes

NUL_TEXT = "Ada\x00 Lovelace"


def assert_refused(response, field: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["title"] == "Invalid input"
    assert "NUL character" in problem["detail"] and f"'{field}'" in problem["detail"], problem["detail"]


def test_every_router_checks_for_nul():
    routers = [
        (f"{module.name}.{name}", router)
        for module in pkgutil.walk_packages(ipx.__path__, "ipx.")
        for name, router in vars(importlib.import_module(module.name)).items()
        if isinstance(router, APIRouter)
    ]
    assert len(routers) >= 10
    for where, router in routers:
        assert issubclass(router.route_class, IPXRoute), where
        assert all(isinstance(route, IPXRoute) for route in router.routes), where


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/v1/staff/audit", {"actor": NUL_TEXT}, "actor"),  # the one schemathesis found
        ("/api/v1/works", {"q": NUL_TEXT}, "q"),
        ("/api/v1/listings", {"q": NUL_TEXT}, "q"),
        ("/api/v1/staff/complaints", {"status": NUL_TEXT}, "status"),
        ("/api/v1/staff/audit", {"act\x00or": "x"}, "act\x00or"),
    ],
)
def test_query_parameters(client, staff, path, params, field):
    assert_refused(client.get(path, params=params, headers=staff), field)


def test_path_segment(client):
    assert_refused(client.get("/api/v1/works/abc%00def"), "work_id")


def test_json_body_value_and_nested_key(client):
    account = {"email": "ada@example.org", "password": "correct horse 42", "display_name": NUL_TEXT}
    assert_refused(client.post("/api/v1/auth/register", json=account), "body.display_name")
    assert_refused(client.post("/api/v1/auth/register", json={**account, "display_name": "Ada", "x": {"a\x00": 1}}),
                   "body.x.a\x00")
    assert client.post("/api/v1/auth/token", data={"username": "ada@example.org", "password": "correct horse 42"}
                       ).status_code == 401  # no account was made


def test_urlencoded_form_field(client):
    assert_refused(client.post("/api/v1/auth/token", data={"username": NUL_TEXT, "password": "x"}), "username")


def test_multipart_text_field_and_filename_keep_nothing(client, make_user, settings):
    user = make_user()
    assert_refused(user.register(png_bytes(1), title=NUL_TEXT), "title")
    boundary = "ipx-test-boundary"
    raw = (  # by hand: httpx writes a NUL in a filename as %00, a client of its own need not
        f'--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nA work\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="work\x00.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode() + png_bytes(2) + f"\r\n--{boundary}--\r\n".encode()
    headers = {**user.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    assert_refused(client.post("/api/v1/works", content=raw, headers=headers), "file")
    assert client.get("/api/v1/works").json()["total"] == 0
    blobs = settings.data_dir / "blobs"
    assert not blobs.exists() or not [path for path in blobs.rglob("*") if path.is_file()]


def test_a_page_form_gets_an_html_error_page(client):
    response = client.post("/login", data={"email": NUL_TEXT, "password": "x"})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert "NUL character" in response.text


def test_find_nul_reports_the_first_path():
    assert find_nul({"a": ["ok", {"b": "x\x00"}]}, "body") == "body.a.1.b"
    assert find_nul({"a": ["ok", 1, None, 2.5]}, "body") is None
