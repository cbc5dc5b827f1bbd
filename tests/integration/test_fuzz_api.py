"""Schemathesis against a real server: no request answers a 500, and every answer is what the schema documents.

Run by hand against a server on PostgreSQL, schemathesis found three kinds of 500 that the hand-written tests
had missed: integers past 64 bits in URLs (SQLite's driver cannot bind them), day counts that overflow date
arithmetic, and text holding a NUL character (PostgreSQL refuses to store one). This keeps that search running
on every change, on both databases, as a staff member (who reaches every operation) over real HTTP. Each answer is
also held to the OpenAPI document (status code, content type, body schema, headers), so the document stays true:
a refused request is problem+json saying what was wrong.

The examples are derandomized (the same cases every run, so a failure reproduces), and few per operation: this
is a regression net, not the exhaustive search; run schemathesis's CLI against a server for that (README).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

from tests.complaints.conftest import notice
from tests.conftest import ApiUser, bearer_headers
from tests.integration.live import ServerProcess, add_staff
from tests.marketplace.builders import exclusive_offer, offer
from tests.marketplace.conftest import buy, noise_png

EXAMPLES_PER_OPERATION = 50
MIN_OPERATIONS = 40
# What a response must be: no 500, and what the OpenAPI document says (status, content type, body, headers).
# A refusal of data the schema allows is fine: text with a NUL, a proof range past the log, cross-field rules.
CHECKS = [
    not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
    response_headers_conformance,
]
STAFF_EMAIL, STAFF_PASSWORD = "fuzz-staff@ipx.example", "staff password 1"


@dataclass(frozen=True)
class FuzzedServer:
    server: ServerProcess
    staff: dict[str, str]
    ids: dict[str, str]  # a real object for each path parameter name, so cases reach past the 404


def _seed(client: httpx.Client, staff: dict[str, str]) -> dict[str, str]:
    """One of everything: an exact copy under review, a listing, a sale, a pending order, a complaint."""
    alice, bob, carol = (ApiUser(client, f"{name}@example.org", name.title()) for name in ("alice", "bob", "carol"))  # type: ignore[arg-type]
    picture = noise_png(7)
    original, copy = (user.register(picture, title=f"{user.display_name}'s harbour") for user in (alice, bob))
    assert original.status_code == copy.status_code == 201, copy.text
    work_id = original.json()["work_id"]
    listing = client.post("/api/v1/listings", headers=alice.headers, json={
        "work_id": work_id, "description": "Golden light", "tags": ["sea"],
        "offers": [offer(territory=["FR"]), exclusive_offer(territory=["DE"])],
    })
    assert listing.status_code == 201, listing.text
    standard_id, exclusive_id = (o["offer_id"] for o in listing.json()["offers"])
    sold = buy(client, carol, standard_id)  # type: ignore[arg-type]
    pending = client.post("/api/v1/orders", headers=carol.headers, json={"offer_id": exclusive_id})
    assert pending.status_code == 201, pending.text
    complaint = client.post("/api/v1/complaints", json=notice(work_id, {"work_id": copy.json()["work_id"]}))
    assert complaint.status_code == 201, complaint.text
    (review,) = client.get("/api/v1/staff/reviews", headers=staff).json()
    return {
        "work_id": work_id, "listing_id": listing.json()["listing_id"], "offer_id": exclusive_id,
        "order_id": pending.json()["order_id"], "license_id": sold["license_id"],
        "complaint_id": complaint.json()["complaint_id"], "review_id": str(review["review_id"]),
        "tree_size": "1", "provider_name": "offline",
    }


@pytest.fixture
def fuzzed_server(
    database_url: str, launch_ipx: Callable[..., ServerProcess], http_client: Callable[[ServerProcess], httpx.Client]
) -> FuzzedServer:
    server = launch_ipx(database_url, workers=1)
    client = http_client(server)
    add_staff(database_url, STAFF_EMAIL, STAFF_PASSWORD)
    staff = bearer_headers(client, STAFF_EMAIL, STAFF_PASSWORD)
    return FuzzedServer(server, staff, _seed(client, staff))


def _fuzz(operation: schemathesis.APIOperation, fuzzed: FuzzedServer) -> None:
    """Raise on the first case (of EXAMPLES_PER_OPERATION, shrunk to the simplest) that breaks a rule.

    In about half the cases the path's ids are replaced by the seeded objects' (a generated id is almost never
    one that exists, and the code past the lookup is where the state checks are).
    """

    @given(case=operation.as_strategy(), seeded=st.booleans())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def send(case: schemathesis.Case, seeded: bool) -> None:
        if seeded and case.path_parameters:
            case.path_parameters = {name: fuzzed.ids.get(name, value) for name, value in case.path_parameters.items()}
        response = case.call(headers=fuzzed.staff)
        case.validate_response(response, checks=CHECKS)
        if response.status_code >= 400:
            assert response.json()["detail"], response.text  # the schema allows an empty one; a person does not

    send()


def test_no_request_the_schema_allows_is_a_server_error(fuzzed_server: FuzzedServer) -> None:
    schema = schemathesis.openapi.from_url(fuzzed_server.server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= MIN_OPERATIONS  # the schema was read whole: this test cannot pass on nothing
    failures = []
    for operation in operations:
        try:
            _fuzz(operation, fuzzed_server)
        except (AssertionError, FailureGroup) as failure:  # all operations' failures, reported together
            failures.append(f"{operation.method.upper()} {operation.path}: {failure}")
    assert not failures, "\n\n".join(failures)
