"""The OpenAPI schema names the values the API accepts, so clients (and schemathesis) can send valid ones."""

from __future__ import annotations

from ipx.marketplace.terms import ISO_3166_ALPHA2, USES, WORLDWIDE
from ipx.registry.media import WORK_TYPES


def test_the_schema_lists_allowed_uses_territories_and_work_types(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    terms = schemas["LicenseTerms"]["properties"]
    assert terms["uses"]["items"]["enum"] == list(USES)
    assert set(terms["territory"]["items"]["enum"]) == {WORLDWIDE, *ISO_3166_ALPHA2}
    registration = schemas["Body_create_work_api_v1_works_post"]["properties"]
    assert registration["work_type"]["enum"] == [*WORK_TYPES, None]
