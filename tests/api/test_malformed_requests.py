"""Malformed request bodies get a 422 saying what is wrong with them, in words, as problem+json.

Schemathesis sent each of these: FastAPI's own answers were "0: JSON decode error", "Expected UploadFile, received:
<class 'str'>", "Input should be a valid dictionary or object to extract fields from", and, for JSON that is not
UTF-8, a bare 400 "There was an error parsing the body" titled "HTTP error".
"""

from __future__ import annotations

import pytest


def problem_detail(response) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["title"] == "Invalid input"
    return problem["detail"]


JSON_HEADERS = {"Content-Type": "application/json"}


def test_json_that_does_not_parse_says_where(client):
    detail = problem_detail(client.post("/api/v1/auth/register", content=b'{"email": ', headers=JSON_HEADERS))
    assert detail == "The request is not valid — the body is not valid JSON: Expecting value at character 10."


def test_json_that_is_not_utf8_says_so(client):
    detail = problem_detail(client.post("/api/v1/auth/register", content=b'{"email": "\xff"}', headers=JSON_HEADERS))
    assert detail == "The body is not valid JSON: it is not UTF-8 text (byte 11)."


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"42"])
def test_json_that_is_not_an_object_says_so(client, body):
    detail = problem_detail(client.post("/api/v1/auth/register", content=body, headers=JSON_HEADERS))
    assert detail == "The request is not valid — the body must be a JSON object."


@pytest.mark.parametrize("path", ["/api/v1/verify", "/api/v1/works"])
def test_a_file_sent_as_text_says_to_attach_it(client, make_user, path):
    response = client.post(path, data={"file": "not a file", "title": "A work"}, headers=make_user().headers)
    assert "file: attach a file here (a file part of a multipart/form-data body), not text" in problem_detail(response)


def test_a_fault_of_ours_is_still_a_problem_in_words(settings, monkeypatch):
    """What no handler expected (a bug, a database gone away) answers problem+json on the API and the error page on
    pages, instead of Starlette's bare text "Internal Server Error"."""
    from fastapi.testclient import TestClient

    from ipx.app import create_app
    from ipx.marketplace import service as marketplace_service
    from ipx.registry import service as registry_service

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(registry_service, "search_works", broken)
    monkeypatch.setattr(marketplace_service, "search_listings", broken)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        api = client.get("/api/v1/works", params={"q": "x"})
        assert api.status_code == 500 and api.headers["content-type"] == "application/problem+json"
        assert api.json()["title"] == "Internal server error" and "The fault is ours" in api.json()["detail"]
        page = client.get("/market")
        assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
        assert "The fault is ours" in page.text
