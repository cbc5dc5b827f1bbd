"""The OpenAPI document describes what the API does: valid OpenAPI 3.1, problem+json refusals, every body.

Schemathesis's response checks, run against a server, found what FastAPI infers wrongly by itself: 422s
documented as `application/json` in FastAPI's own shape (IPX sends problem+json, for every 4xx), no body at
all for POST /api/v1/complaints (read by hand: JSON, or multipart with files), and free text where the API
accepts a fixed set of values.
"""

from __future__ import annotations

from openapi_spec_validator import validate

from ipx.complaints.service import STATUSES, TARGET_KINDS
from ipx.errors import PROBLEM_JSON
from ipx.marketplace.terms import ISO_3166_ALPHA2, USES, WORLDWIDE
from ipx.registry.media import WORK_TYPES

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def openapi(client) -> dict:  # type: ignore[no-untyped-def]
    document = client.get("/openapi.json").json()
    validate(document)
    return document


def test_every_operation_documents_its_refusals_as_problem_json(client):
    document = openapi(client)
    operations = [(path, method, op) for path, item in document["paths"].items() for method, op in item.items()]
    assert len(operations) >= 40
    for path, method, operation in operations:
        refusals = operation["responses"]["4XX"]["content"]
        assert refusals == {PROBLEM_JSON: {"schema": PROBLEM_REF}}, (method, path)
        assert "422" not in operation["responses"], (method, path)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert set(document["components"]["schemas"]["Problem"]["required"]) == {"type", "title", "status", "detail"}


def test_a_notice_body_is_documented_as_json_or_multipart(client):
    document = openapi(client)
    body = document["paths"]["/api/v1/complaints"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/NoticeIn"}
    multipart = body["content"]["multipart/form-data"]["schema"]
    assert multipart["required"] == ["notice"]
    assert set(multipart["properties"]) == {"notice", "work_file", "infringing_file"}
    notice = document["components"]["schemas"]["NoticeIn"]
    assert {"infringing", "complainant", "good_faith", "accuracy", "signature"} <= set(notice["required"])
    assert {"Infringing", "Complainant"} <= set(document["components"]["schemas"])


def test_the_schema_lists_the_values_the_api_accepts(client):
    document = openapi(client)
    schemas = document["components"]["schemas"]
    terms = schemas["LicenseTerms"]["properties"]
    assert terms["uses"]["items"]["enum"] == list(USES)
    assert set(terms["territory"]["items"]["enum"]) == {WORLDWIDE, *ISO_3166_ALPHA2}
    registration = schemas["Body_create_work_api_v1_works_post"]["properties"]
    assert registration["work_type"]["enum"] == [*WORK_TYPES, None]
    queue = {p["name"]: p["schema"] for p in document["paths"]["/api/v1/staff/complaints"]["get"]["parameters"]}
    assert queue["status"]["enum"] == ["open", *STATUSES]
    assert queue["type"]["enum"] == list(TARGET_KINDS)
    for path, required in (("/api/v1/works", ["file", "title"]), ("/api/v1/verify", ["file"])):
        form = document["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert form["required"] == required, path  # optional in the signature, refused with IPX's own words
    stats = document["paths"]["/api/v1/stats/quarterly"]["get"]["responses"]["200"]["content"]
    assert set(stats) == {"application/json", "text/csv"}


def test_a_wrong_method_is_told_every_method_the_path_serves(client):
    refused = client.request("OPTIONS", "/api/v1/works")
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, HEAD, POST"  # Starlette said only "POST": the first route's methods
    assert refused.headers["content-type"] == PROBLEM_JSON
    assert client.put("/api/v1/verify").headers["allow"] == "POST"
