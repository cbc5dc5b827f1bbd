"""The registry's public API on SQLite and PostgreSQL: happy paths, evidence, and every bad input."""

from __future__ import annotations

import base64
import copy
import hashlib
import unicodedata

import pytest
from fastapi.testclient import TestClient
from starlette.formparsers import MultiPartParser

from ipx.app import create_app
from ipx.registry import merkle
from ipx.registry.evidence import published_keys, verify_bundle
from ipx.registry.note import NoteVerifier, open_checkpoint
from ipx.registry.signing import load_public_key_pem
from tests.conftest import ipx_keys, png_bytes


def log_size(client: TestClient) -> int:
    return int(client.get("/api/v1/log/checkpoint").text.split("\n")[1])


def assert_problem(response, status: int, contains: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and contains.lower() in body["detail"].lower(), body
    return body


def test_registration_returns_the_contract_fields_and_evidence_verifies_offline(client, make_user):
    alice = make_user("Alice Author")
    data = png_bytes(3)
    response = alice.register(
        data, title="Harbour at dawn", description="Oil on canvas", year_created="2024",
        creators='[{"name": "Alice Author", "share": 60}, {"name": "Bob Painter", "share": 40}]',
        published="true", published_where="Gallery X",
    )
    assert response.status_code == 201, response.text
    work = response.json()
    assert work["sha256"] == hashlib.sha256(data).hexdigest()
    assert work["media_type"] == "image/png" and work["work_type"] == "image"
    assert work["log_index"] == 0 and work["prior_similar"] == []
    assert work["creators"] == [
        {"name": "Alice Author", "share_bps": 6000}, {"name": "Bob Painter", "share_bps": 4000}
    ]
    assert work["creator"] == {"account_id": alice.account_id, "display_name": "Alice Author"}
    assert work["registered_at"].endswith("Z")
    assert work["evidence_url"].endswith(f"/api/v1/works/{work['work_id']}/evidence")

    bundle = client.get(f"/api/v1/works/{work['work_id']}/evidence").json()
    assert bundle["statement"]["type"] == "ipx.registration/v1"
    assert bundle["statement"]["publication"] == {"published": True, "where": "Gallery X"}
    report = verify_bundle(bundle, data, ipx_keys(client))
    assert report.ok, report.as_dict()

    public = client.get(f"/api/v1/works/{work['work_id']}").json()
    assert "email" not in str(public) and "original_filename" not in public
    assert public["status"] == "registered"


def test_checkpoint_is_a_signed_note_by_a_published_key(client, make_user):
    make_user().register(png_bytes(1))
    keys = client.get("/.well-known/ipx/keys").json()
    assert keys["keys"][0]["status"] == "active" and keys["keys"][0]["valid_until"] is None
    verifiers = [NoteVerifier.from_vkey(k["note_verifier_key"]) for k in keys["keys"]]
    checkpoint_text = client.get("/api/v1/log/checkpoint")
    assert checkpoint_text.headers["content-type"].startswith("text/plain")
    checkpoint = open_checkpoint(checkpoint_text.text, verifiers)
    assert checkpoint.origin == keys["log_origin"] and checkpoint.size == 1


def test_proofs_and_entries_let_anyone_audit_the_log(client, make_user):
    user = make_user()
    works = [user.register(png_bytes(seed), title=f"Work {seed}").json() for seed in range(5)]
    keys = client.get("/.well-known/ipx/keys").json()["keys"]
    verifiers = [NoteVerifier.from_vkey(k["note_verifier_key"]) for k in keys]
    roots = {}
    for size in range(1, 6):
        roots[size] = open_checkpoint(client.get(f"/api/v1/log/checkpoints/{size}").text, verifiers).root_hash
    entries = client.get("/api/v1/log/entries", params={"start": 0, "end": 10}).json()
    assert entries["tree_size"] == 5 and [e["index"] for e in entries["entries"]] == list(range(5))
    caught_up = client.get("/api/v1/log/entries", params={"start": 5})  # a mirror with every entry polls again
    assert caught_up.status_code == 200 and caught_up.json() == {"tree_size": 5, "entries": []}
    leaves = [merkle.leaf_hash(base64.b64decode(e["leaf"])) for e in entries["entries"]]
    assert merkle.root_of_leaves(leaves) == roots[5]
    for work in works:
        proof = client.get("/api/v1/log/proof/inclusion", params={"index": work["log_index"], "size": 5}).json()
        hashes = [base64.b64decode(h) for h in proof["hashes"]]
        merkle.verify_inclusion(work["log_index"], 5, base64.b64decode(proof["leaf_hash"]), hashes, roots[5])
    for first in range(1, 5):
        proof = client.get("/api/v1/log/proof/consistency", params={"first": first, "second": 5}).json()
        merkle.verify_consistency(first, 5, roots[first], roots[5], [base64.b64decode(h) for h in proof["hashes"]])


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/api/v1/log/proof/inclusion", {"index": 5, "size": 2}, "index=5 is out of range"),
        ("/api/v1/log/proof/inclusion", {"index": 0, "size": 99}, "size=99 is out of range"),
        ("/api/v1/log/proof/consistency", {"first": 3, "second": 2}, "first=3 must be between"),
        ("/api/v1/log/proof/consistency", {"first": 1, "second": 50}, "second=50 is out of range"),
        ("/api/v1/log/entries", {"start": 10, "end": 20}, "start=10 is out of range"),
    ],
)
def test_proof_requests_out_of_range_get_a_clear_400(client, make_user, path, params, message):
    user = make_user()
    user.register(png_bytes(1))
    user.register(png_bytes(2))
    assert_problem(client.get(path, params=params), 400, message)


def test_same_account_same_file_is_409_with_the_existing_work(client, make_user):
    alice = make_user()
    first = alice.register(png_bytes(7), title="Original").json()
    size_before = log_size(client)
    body = assert_problem(alice.register(png_bytes(7), title="Again"), 409, "already registered")
    assert body["work_id"] == first["work_id"]
    assert log_size(client) == size_before


def test_exact_copy_by_another_account_registers_but_is_flagged(client, make_user):
    alice, mallory = make_user("Alice"), make_user("Mallory")
    original = alice.register(png_bytes(8), title="Original").json()
    copy_response = mallory.register(png_bytes(8), title="Totally mine")
    assert copy_response.status_code == 201
    prior = copy_response.json()["prior_similar"]
    assert [(m["work_id"], m["method"], m["distance"]) for m in prior] == [(original["work_id"], "sha256", 0.0)]
    assert prior[0]["title"] == "Original" and prior[0]["registered_at"] == original["registered_at"]


def test_empty_file_is_refused_and_nothing_is_kept(client, make_user, settings):
    user = make_user()
    assert_problem(user.register(b"", filename="empty.png"), 422, "empty")
    assert client.get("/api/v1/works").json()["total"] == 0
    assert not any((settings.data_dir / "blobs").rglob("*")) if (settings.data_dir / "blobs").exists() else True


def test_missing_title_and_missing_file_get_field_errors(client, make_user):
    user = make_user()
    body = assert_problem(
        client.post("/api/v1/works", headers=user.headers, files={"file": ("a.png", png_bytes(1))}), 422, "title"
    )
    assert any("title" in e["loc"] for e in body["errors"])
    assert_problem(client.post("/api/v1/works", headers=user.headers, data={"title": "No file"}), 422, "file")


def test_bad_metadata_gets_clear_errors(client, make_user):
    user = make_user()
    assert_problem(user.register(png_bytes(1), creators='[{"name": "A", "share": 70}]'), 422, "add up to 100")
    assert_problem(user.register(png_bytes(1), creators="not json"), 422, "JSON list")
    assert_problem(user.register(png_bytes(1), work_type="sculpture"), 422, "work_type")
    assert_problem(user.register(png_bytes(1), year_created="2999"), 422,
                   "year_created: the year of creation cannot be later than this year")
    assert_problem(user.register(png_bytes(1), published_where="a zine"), 422, "published_where: say where the work "
                   "was published only if it was published")
    assert_problem(user.register(png_bytes(1), creators="[" * 100_000), 422, "JSON list")  # was a RecursionError 500
    assert_problem(user.register(png_bytes(1), creators='[{"name": " \u3000 ", "share": 100}]'), 422, "name")
    one_line = "must be one line of text, without control characters"
    assert_problem(user.register(png_bytes(1), title="Nice\n  99: forged"), 422, f"title: it {one_line} ('\\n'")
    assert_problem(user.register(png_bytes(1), creators='[{"name": "Ada\\u001b[2J", "share": 100}]'), 422, one_line)
    kept = user.register(png_bytes(1), title="  Harbour at dawn\n")  # a pasted line break at the end is trimmed
    assert kept.status_code == 201 and kept.json()["title"] == "Harbour at dawn"


def test_mislabeled_image_is_refused(client, make_user):
    user = make_user()
    response = client.post(
        "/api/v1/works", headers=user.headers, data={"title": "Fake"},
        files={"file": ("photo.png", b"just some text, not a picture\n" * 10, "image/png")},
    )
    assert_problem(response, 422, "claims to be image/png but its content is text/")


def test_upload_over_the_limit_is_413_and_nothing_is_kept(make_settings, tmp_path):
    settings = make_settings(max_upload_bytes=50_000)
    with TestClient(create_app(settings)) as client:
        from tests.conftest import ApiUser

        user = ApiUser(client, "big@example.org", "Big")
        size_before = log_size(client)
        too_big = b"\x89PNG\r\n\x1a\n" + bytes(200_000)
        assert_problem(user.register(too_big, filename="big.png"), 413, "limit")
        assert log_size(client) == size_before
        assert client.get("/api/v1/works").json()["total"] == 0
        blobs = settings.data_dir / "blobs"
        assert not [p for p in blobs.rglob("*") if p.is_file()]
        assert not [p for p in (settings.data_dir / "tmp").glob("*")] if (settings.data_dir / "tmp").exists() else True


def test_uploads_held_in_memory_and_spooled_to_disk_are_the_same_file(make_settings):
    """Past upload_memory_bytes Starlette spools the file part to disk: both ways the whole file is registered."""
    settings = make_settings(upload_memory_bytes=20_000)
    with TestClient(create_app(settings)) as client:
        from tests.conftest import ApiUser

        assert MultiPartParser.spool_max_size == 20_000
        user = ApiUser(client, "spool@example.org", "Spool")
        for upload in (png_bytes(1), png_bytes(2, size=(400, 300))):
            sha256 = hashlib.sha256(upload).hexdigest()
            registered = user.register(upload, title="Spooled")
            assert registered.status_code == 201, registered.text
            assert (registered.json()["sha256"], registered.json()["size"]) == (sha256, len(upload))
            found = client.post("/api/v1/verify", files={"file": ("copy.png", upload)}).json()
            assert (found["sha256"], found["size"]) == (sha256, len(upload))
            assert [match["work_id"] for match in found["exact_matches"]] == [registered.json()["work_id"]]
        assert len(png_bytes(1)) < 20_000 < len(png_bytes(2, size=(400, 300)))


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/api/v1/works/00000000-0000-4000-8000-000000000000", 404, "No registered work"),
        ("/api/v1/works/not-a-uuid", 422, "uuid"),
        ("/api/v1/works/00000000-0000-4000-8000-000000000000/evidence", 404, "No registered work"),
        ("/api/v1/verify/00000000-0000-4000-8000-000000000000", 404, "No registered work"),
        ("/api/v1/nothing-here", 404, "Not Found"),
    ],
)
def test_unknown_and_malformed_ids(client, path, status, message):
    assert_problem(client.get(path), status, message)


def test_authentication_errors_are_401_problems(client, make_user, make_settings):
    assert_problem(client.post("/api/v1/works", data={"title": "x"}), 401, "Log in")
    bad = {"Authorization": "Bearer not-a-real-token"}
    assert_problem(client.post("/api/v1/works", headers=bad, data={"title": "x"}), 401, "not valid")
    wrong = {"username": "x@y.org", "password": "nope"}
    assert_problem(client.post("/api/v1/auth/token", data=wrong), 401, "not correct")
    make_user()
    assert_problem(
        client.post("/api/v1/auth/register", json={"email": "user0@example.org", "password": "long enough 1",
                                                   "display_name": "Dup"}), 409, "already exists",
    )
    assert_problem(
        client.post("/api/v1/auth/register", json={"email": "short@example.org", "password": "short",
                                                   "display_name": "S"}), 422, "password",
    )
    assert_problem(  # a blank name would be signed into every registration as the creator's
        client.post("/api/v1/auth/register", json={"email": "blank@example.org", "password": "long enough 1",
                                                   "display_name": " \t\u3000"}), 422, "display_name",
    )


def test_expired_token_is_refused(make_settings):
    with TestClient(create_app(make_settings(token_ttl_seconds=-1))) as client:
        from tests.conftest import ApiUser

        user = ApiUser(client, "late@example.org", "Late")
        assert_problem(client.get("/api/v1/auth/me", headers=user.headers), 401, "expired")


def test_search_by_hash_title_and_creator(client, make_user):
    alice, bob = make_user("Alice Smith"), make_user("Bob Jones")
    sunrise = alice.register(png_bytes(1), title="Sunrise over Lisbon").json()
    bob.register(png_bytes(2), title="Night market")
    by_hash = client.get("/api/v1/works", params={"sha256": sunrise["sha256"]}).json()
    assert [w["work_id"] for w in by_hash["items"]] == [sunrise["work_id"]]
    assert [w["title"] for w in client.get("/api/v1/works", params={"q": "lisbon"}).json()["items"]] == [
        "Sunrise over Lisbon"
    ]
    assert [w["title"] for w in client.get("/api/v1/works", params={"q": "jones"}).json()["items"]] == ["Night market"]
    assert client.get("/api/v1/works", params={"sha256": "xyz"}).status_code == 422
    make_user("Ångström Øre").register(png_bytes(3), title="Élan Vital at 100%")
    bob.register(png_bytes(5), title="1000 cottons, file_name")

    def titles(q: str) -> list[str]:
        return [w["title"] for w in client.get("/api/v1/works", params={"q": q}).json()["items"]]

    # letters beyond ASCII in any case, on SQLite as on PostgreSQL; % and _ are characters, not wildcards
    assert titles("élan vital") == titles("ÉLAN") == titles("ångström") == ["Élan Vital at 100%"]
    assert titles("100%") == ["Élan Vital at 100%"] and titles("file_name") == ["1000 cottons, file_name"]
    assert titles("%") == titles("100%") and titles("n_v") == []  # "_" once matched the space of "élan vital"
    assert titles(unicodedata.normalize("NFD", "Élan")) == ["Élan Vital at 100%"]  # an accent typed as a mark


def test_server_side_verification_reports_each_check(client, make_user):
    work = make_user().register(png_bytes(4)).json()
    result = client.get(f"/api/v1/verify/{work['work_id']}").json()
    assert result["valid"] is True
    names = {c["name"] for c in result["checks"]}
    assert {"statement signature", "log leaf", "checkpoint signature", "inclusion proof", "file hash"} <= names


def test_tampered_bundles_say_exactly_what_failed(client, make_user):
    data = png_bytes(5)
    work = make_user().register(data).json()
    bundle = client.get(f"/api/v1/works/{work['work_id']}/evidence").json()

    trusted = ipx_keys(client)

    def failures(mutated: dict, file_bytes: bytes | None = data) -> set[str]:
        return {c.name for c in verify_bundle(mutated, file_bytes, trusted).checks if not c.ok}

    retitled = copy.deepcopy(bundle)
    retitled["statement"]["title"] = "Stolen"
    assert failures(retitled) == {"statement signature", "log leaf"}
    bad_proof = copy.deepcopy(bundle)
    bad_proof["log"]["leaf_hash"] = base64.b64encode(b"\x00" * 32).decode()
    assert failures(bad_proof) == {"log leaf", "inclusion proof"}
    bad_checkpoint = copy.deepcopy(bundle)
    bad_checkpoint["log"]["checkpoint"] = bundle["log"]["checkpoint"].replace("\n1\n", "\n2\n")
    assert failures(bad_checkpoint) == {"checkpoint signature"}
    assert failures(bundle, b"another file") == {"file hash"}
    other_key = copy.deepcopy(bundle)
    other_key["key"]["key_id"] = "0" * 64
    assert "statement key" in failures(other_key)
    assert failures({"statement": {}}) == {"bundle format"}


def test_key_rotation_keeps_old_evidence_valid(client, make_user, settings):
    from ipx.db import transaction
    from ipx.registry import keys, signing
    from ipx.registry.service import rotate_key

    user = make_user()
    old_data = png_bytes(11)
    old_work = user.register(old_data, title="Before rotation").json()
    old_bundle = client.get(f"/api/v1/works/{old_work['work_id']}/evidence").json()
    with transaction(client.app.state.session_factory) as session:
        retired = keys.active_signer(session, settings.resolved_key_dir)
        new_key = rotate_key(session, settings.resolved_key_dir)
    # the log's current checkpoint is signed by the new key at once, not at the next registration
    [new_verifier] = [NoteVerifier.from_vkey(k["note_verifier_key"])
                      for k in client.get("/.well-known/ipx/keys").json()["keys"] if k["key_id"] == new_key.key_id]
    assert open_checkpoint(client.get("/api/v1/log/checkpoint").text, [new_verifier]).size == old_work["log_index"] + 1
    assert client.get(f"/api/v1/works/{old_work['work_id']}/evidence").json()["log"]["checkpoint_key"]["key_id"] \
        == new_key.key_id
    new_work = user.register(png_bytes(12), title="After rotation").json()
    assert new_work["key_id"] == new_key.key_id != old_work["key_id"]

    published = client.get("/.well-known/ipx/keys").json()
    assert [k["status"] for k in published["keys"]] == ["retired", "active"]
    assert published["keys"][0]["valid_until"] is not None
    trusted = published_keys(published)
    assert verify_bundle(old_bundle, old_data, trusted).ok
    # whoever holds the retired key cannot make it vouch for a registration dated after its retirement
    forged = copy.deepcopy(old_bundle)
    forged["statement"]["registered_at"] = "2099-01-01T00:00:00.000000Z"
    forged["signature"] = base64.b64encode(signing.sign_statement(retired.private_key, forged["statement"])[1]).decode()
    failed = {c.name: c.detail for c in verify_bundle(forged, old_data, trusted).checks if not c.ok}
    assert "outside the key's validity" in failed["signing time"]
    assert "statement signature" not in failed
    # nor by adding a harmless date inside the window beside the one its kind of statement speaks for
    license_statement = {**old_bundle["statement"], "type": "ipx.license/v1", "issued_at": "2099-01-01T00:00:00Z"}
    forged["statement"] = license_statement
    forged["signature"] = base64.b64encode(signing.sign_statement(retired.private_key, license_statement)[1]).decode()
    failed = {c.name: c.detail for c in verify_bundle(forged, old_data, trusted).checks if not c.ok}
    assert failed["signing time"] == ("a ipx.license/v1 statement carries registered_at, which IPX writes only into "
                                      "another kind of statement")
    refreshed = client.get(f"/api/v1/works/{old_work['work_id']}/evidence").json()
    assert refreshed["log"]["checkpoint_key"]["key_id"] == new_work["key_id"]
    assert verify_bundle(refreshed, old_data, trusted).ok
    assert client.get(f"/api/v1/verify/{old_work['work_id']}").json()["valid"]
    assert load_public_key_pem(published["keys"][0]["public_key_pem"])

    # the retired key's private half is destroyed once its retirement is committed (`ipx keys rotate` does it)
    retired_file = settings.resolved_key_dir / f"{retired.key_id}.pem"
    assert retired_file.exists()
    with transaction(client.app.state.session_factory) as session:
        assert keys.destroy_retired_private_keys(session, settings.resolved_key_dir) == [retired.key_id]
    assert not retired_file.exists() and (settings.resolved_key_dir / f"{new_key.key_id}.pem").exists()
    assert user.register(png_bytes(13), title="Still signing").status_code == 201


def test_an_address_logs_in_however_it_was_spelled_and_makes_one_account(client):
    from ipx.accounts.service import create_user
    from ipx.db import transaction

    password = "long enough 1"
    spellings = [("bob@xn--xample-9ua.org", "Bob@éxample.org"), ("zo\u0308e@example.org", "zöe@EXAMPLE.org")]
    for signed_up_as, logged_in_as in spellings:
        made = client.post("/api/v1/auth/register",
                           json={"email": signed_up_as, "password": password, "display_name": "Someone"})
        assert made.status_code == 201, made.text
        for spelling in (signed_up_as, logged_in_as):  # log-in only lower-cased, so the first failed
            token = client.post("/api/v1/auth/token", data={"username": spelling, "password": password})
            assert token.status_code == 200, (spelling, token.text)
    with transaction(client.app.state.session_factory) as session:  # the CLI's path
        create_user(session, email="an\u0303a@example.org", password=password, display_name="Ana")  # ñ as n + ~
    assert_problem(client.post("/api/v1/auth/register", json={"email": "aña@example.org", "password": password,
                                                              "display_name": "Ana again"}), 409, "already exists")


def test_log_ins_are_throttled_per_address(make_settings):
    """Passwords could be guessed at the speed of HTTP: after `login_attempts` failures an address is refused
    (429 with Retry-After, even with the right password) until the window passes; other addresses are not."""
    with TestClient(create_app(make_settings(login_attempts=3))) as client:
        from tests.conftest import ApiUser

        ApiUser(client, "target@example.org", "Target")
        bystander = ApiUser(client, "bystander@example.org", "Bystander")
        spellings = ("Target@Example.org", "target@EXAMPLE.ORG", " target@example.org")  # respelling gains nothing
        assert [client.post("/api/v1/auth/token", data={"username": spelling, "password": "wrong guess 1"}).status_code
                for spelling in spellings] == [401] * 3
        right = client.post("/api/v1/auth/token",
                            data={"username": "target@example.org", "password": "correct horse 42"})
        body = assert_problem(right, 429, "Too many failed log-ins")
        assert 0 < int(right.headers["Retry-After"]) <= 900 and body["title"] == "Too many attempts"
        page = client.post("/login", data={"email": "target@example.org", "password": "correct horse 42"})
        assert page.status_code == 429 and "Too many failed log-ins" in page.text  # the form says it too
        assert client.post("/api/v1/auth/token", data={"username": bystander.email,
                                                       "password": "correct horse 42"}).status_code == 200


def test_the_throttle_counts_attempts_atomically_and_forgets_them_after_its_window_or_a_success():
    from concurrent.futures import ThreadPoolExecutor

    from ipx.accounts.throttle import LoginThrottle
    from ipx.errors import TooManyAttempts

    now = [1000.0]
    throttle = LoginThrottle(2, 60, clock=lambda: now[0])
    throttle.attempt("a@example.org")
    throttle.succeeded("a@example.org")  # a success clears the count
    throttle.attempt("a@example.org")
    throttle.attempt("a@example.org")
    with pytest.raises(TooManyAttempts) as refused:
        throttle.attempt("a@example.org")
    assert refused.value.headers == {"Retry-After": "60"}
    now[0] += 60
    throttle.attempt("a@example.org")  # the window passed

    def guess(_: int) -> bool:  # a burst: each attempt is counted before any password is checked
        try:
            throttle.attempt("burst@example.org")
        except TooManyAttempts:
            return False
        return True

    with ThreadPoolExecutor(16) as pool:
        assert sum(pool.map(guess, range(40))) == 2


def test_accounts_the_cli_made_before_addresses_were_checked_still_log_in(client):
    """`ipx users create` stored addresses merely lower-cased, a special-use domain or a punycode one included."""
    from ipx.accounts.service import authenticate, create_user
    from ipx.db import transaction

    with transaction(client.app.state.session_factory) as session:
        for legacy in ("admin@ipx.local", "ops@xn--xample-9ua.org"):
            user = create_user(session, email="placeholder@example.org", password="long enough 1", display_name="Op")
            user.email = legacy  # as the CLI stored it then
            session.flush()
            assert authenticate(session, email=legacy.upper(), password="long enough 1").id == user.id
        # the punycode account is the Unicode spelling's account too: found by it, and no second account for it
        assert authenticate(session, email="ops@éxample.org", password="long enough 1").id == user.id
    assert_problem(client.post("/api/v1/auth/register", json={"email": "ops@éxample.org", "password": "long enough 1",
                                                              "display_name": "Someone else"}), 409, "already exists")
