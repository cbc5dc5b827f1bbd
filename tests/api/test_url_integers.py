"""Integers in a URL that reach a database query are bounded: an absurd one is a clear 422, never a 500.

Every case below answered 500 before: schemathesis, fuzzing the OpenAPI schema against a running server, sent
them. SQLite's driver cannot bind an integer past 64 bits, and a date cannot move back 10^24 days. The largest
accepted value of each must still work, or the bound would only have moved the overflow.
"""

from __future__ import annotations

import pytest

from ipx.complaints.service import MAX_CASE_AGE_DAYS
from ipx.deps import BIGINT_MAX, MAX_PAGE
from ipx.marketplace.terms import MAX_PRICE_MINOR

ABSURD = 10**24


@pytest.mark.parametrize(
    ("path", "params", "largest_accepted"),
    [
        ("/api/v1/works", {"page": ABSURD}, {"page": MAX_PAGE}),
        ("/api/v1/listings", {"min_price": ABSURD}, {"min_price": MAX_PRICE_MINOR}),
        ("/api/v1/listings", {"max_price": ABSURD}, {"max_price": MAX_PRICE_MINOR}),
        ("/api/v1/staff/audit", {"page": ABSURD}, {"page": MAX_PAGE}),
        ("/api/v1/staff/complaints", {"min_age_days": ABSURD}, {"min_age_days": MAX_CASE_AGE_DAYS}),
        ("/api/v1/staff/complaints", {"max_age_days": ABSURD}, {"max_age_days": MAX_CASE_AGE_DAYS}),
    ],
)
def test_absurd_query_integers_get_a_clear_422(client, staff, path, params, largest_accepted):
    refused = client.get(path, params=params, headers=staff)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    (name,) = params
    assert f"{name}: Input should be less than or equal to" in refused.json()["detail"]
    assert client.get(path, params=largest_accepted, headers=staff).status_code == 200


def test_absurd_path_integers_get_a_clear_422_and_the_largest_stored_one_a_404(client, staff):
    assert client.get(f"/api/v1/log/checkpoints/{ABSURD}").status_code == 422
    missing = client.get(f"/api/v1/log/checkpoints/{BIGINT_MAX}")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")
    decision = {"decision": "clear", "reason": "no copy here"}
    assert client.post(f"/api/v1/staff/reviews/{ABSURD}", json=decision, headers=staff).status_code == 422
    assert client.post(f"/api/v1/staff/reviews/{BIGINT_MAX}", json=decision, headers=staff).status_code == 404


def test_pages_clamp_an_absurd_page_number_and_refuse_an_absurd_age(client, staff):
    assert client.get("/market", params={"page": ABSURD}).status_code == 200
    assert client.get("/me/works", params={"page": ABSURD}, headers=staff).status_code == 200
    refused = client.get("/staff/complaints", params={"min_age_days": ABSURD}, headers=staff)
    assert refused.status_code == 422 and "less than or equal to" in refused.text
