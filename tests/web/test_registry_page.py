"""The public registry page (/works): every registration newest first, searched by title or creator name, one
account's works, and the links that lead there, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from ipx.web import pages
from tests.conftest import ApiUser, get_counting_queries, png_bytes


def titles(page: str) -> list[str]:
    return re.findall(r'<h3 dir="auto">([^<]*)</h3>', page)


@pytest.fixture
def catalogue(client: TestClient) -> dict[str, dict]:
    """Three works by Ada and one by a creator whose name holds LIKE's wildcards, registered in this order."""
    ada = ApiUser(client, "ada@example.org", "Ada Lovelace")
    odd = ApiUser(client, "odd@example.org", "Per_cent 100%")
    works = {title: ada.register(png_bytes(seed), title=title).json()
             for seed, title in enumerate(["Engine notes", "Loom pattern", "Bernoulli table"])}
    works["Harbour at dusk"] = odd.register(png_bytes(9), title="Harbour at dusk").json()
    return works


def test_lists_every_registration_newest_first_with_its_count(client: TestClient, catalogue: dict) -> None:
    page = client.get("/works")
    assert page.status_code == 200 and "<h1>The registry</h1>" in page.text
    assert titles(page.text) == ["Harbour at dusk", "Bernoulli table", "Loom pattern", "Engine notes"]
    assert "4 registrations." in page.text
    harbour = catalogue["Harbour at dusk"]
    assert f'href="/works/{harbour["work_id"]}"' in page.text and f"#{harbour['log_index']}" in page.text


def test_searches_titles_and_creator_names_whatever_the_case(client: TestClient, catalogue: dict) -> None:
    assert titles(client.get("/works", params={"q": "LOOM"}).text) == ["Loom pattern"]
    by_name = client.get("/works", params={"q": "lovelace"}).text
    assert titles(by_name) == ["Bernoulli table", "Loom pattern", "Engine notes"]
    assert "3 registrations whose title or creator's name contains “<span dir=\"auto\">lovelace</span>”" in by_name
    # LIKE's wildcards are searched for as characters: "%" and "_" find only the name that holds them
    for literal in ("100%", "_", "%"):
        assert titles(client.get("/works", params={"q": literal}).text) == ["Harbour at dusk"], literal


def test_a_search_that_finds_nothing_says_so_and_points_to_verify_by_content(client: TestClient, catalogue) -> None:
    page = client.get("/works", params={"q": "<b>Nightjar</b>"}).text
    assert titles(page) == [] and "No registration matches" in page
    assert "&lt;b&gt;Nightjar&lt;/b&gt;" in page and "<b>Nightjar" not in page
    assert 'href="/verify"' in page


def test_one_accounts_works_under_its_name(client: TestClient, catalogue: dict) -> None:
    ada_id = catalogue["Loom pattern"]["creator"]["account_id"]
    page = client.get("/works", params={"creator": ada_id}).text
    assert '<h1>Works registered by <span dir="auto">Ada Lovelace</span></h1>' in page
    assert titles(page) == ["Bernoulli table", "Loom pattern", "Engine notes"]
    narrowed = client.get("/works", params={"creator": ada_id, "q": "table"}).text
    assert titles(narrowed) == ["Bernoulli table"]
    assert f'<input type="hidden" name="creator" value="{ada_id}">' in narrowed  # the next search stays on Ada's


def test_an_account_without_registrations_has_no_page(client: TestClient, catalogue: dict) -> None:
    """A buyer's name is not the registry's to publish: an account that registered nothing is not found, like an
    account that does not exist."""
    buyer = ApiUser(client, "grace@example.org", "Grace Hopper")
    me = client.get("/api/v1/auth/me", headers=buyer.headers)
    assert me.status_code == 200, me.text
    for account_id in (me.json()["account_id"], "3f2a1b2c-0000-4000-8000-000000000000"):
        page = client.get("/works", params={"creator": account_id})
        assert page.status_code == 404 and "No works are registered by this account." in page.text
        assert "Grace Hopper" not in page.text
    assert client.get("/works", params={"creator": "not-an-id"}).status_code == 422


def test_a_work_id_or_hash_typed_in_the_search_is_looked_up_on_the_verify_page(client: TestClient, catalogue) -> None:
    work = catalogue["Engine notes"]
    for typed in (work["sha256"], work["work_id"], f"http://testserver/works/{work['work_id']}"):
        answer = client.get("/works", params={"q": typed}, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/verify?q="), typed
        followed = client.get(answer.headers["location"])
        assert f'href="/works/{work["work_id"]}"' in followed.text, typed


def test_pages_keep_the_search_and_say_when_past_the_last(client: TestClient, catalogue, monkeypatch) -> None:
    monkeypatch.setattr(pages, "REGISTRY_PAGE_SIZE", 2)
    ada_id = catalogue["Loom pattern"]["creator"]["account_id"]
    first = client.get("/works", params={"creator": ada_id, "q": "e"}).text
    assert titles(first) == ["Bernoulli table", "Loom pattern"]
    older = re.search(r'<a href="([^"]+)">Older →</a>', first)
    assert older and "← Newer" not in first
    second = client.get(older.group(1).replace("&amp;", "&")).text
    assert titles(second) == ["Engine notes"] and "Older →" not in second and "← Newer" in second
    past = client.get("/works", params={"q": "e", "page": "9"}).text
    assert "There is no page 9." in past and "The 4 registrations found fill fewer pages." in past
    assert 'href="/works?q=e"' in past
    one_page = client.get("/works", params={"q": "loom"}).text
    assert titles(one_page) == ["Loom pattern"] and 'class="pager"' not in one_page  # nothing to page through
    assert 'class="pager"' in first and 'class="pager"' in second


def test_an_empty_registry_invites_the_first_registration(client: TestClient) -> None:
    page = client.get("/works").text
    assert "No works registered yet." in page and 'href="/works/new"' in page and "0 registrations." in page


def test_the_header_home_records_and_a_failed_look_up_lead_to_the_registry(client: TestClient, catalogue) -> None:
    work = catalogue["Harbour at dusk"]
    for path in ("/", "/market", "/verify", "/stats"):  # the header's navigation, on every page
        assert '<a href="/works">Registry</a>' in client.get(path).text
    assert 'href="/works">Browse the registry' in client.get("/").text
    record = client.get(f"/works/{work['work_id']}").text
    assert f'href="/works?creator={work["creator"]["account_id"]}"' in record  # "registered by" leads to the rest
    look_up = client.get("/verify", params={"q": "harbour"}).text
    assert 'href="/works?q=harbour">Search the registry for' in look_up
    assert titles(client.get("/works", params={"q": "harbour"}).text) == ["Harbour at dusk"]


def test_quotes_and_backslashes_are_searched_as_typed(client: TestClient) -> None:
    """The search pattern is written into the SQL (ipx.registry.service.search_works, for PostgreSQL's planner):
    quotes and backslashes must stay characters to find."""
    owner = ApiUser(client, "ada@example.org", "Ada O'Brien")
    owner.register(png_bytes(1), title="Maps \\ drafts: 'north' \"coast\"")
    owner.register(png_bytes(2), title="Plain title")
    for typed in ("\\ drafts: 'north' \"coast", "'north'", "\\", '"', "o'brien"):
        found = client.get("/api/v1/works", params={"q": typed}).json()
        expected = 2 if typed == "o'brien" else 1
        assert found["total"] == expected and len(found["items"]) == expected, typed
    assert client.get("/api/v1/works", params={"q": "'; DROP TABLE works; --"}).json()["total"] == 0
    assert client.get("/api/v1/works").json()["total"] == 2
    page = client.get("/works", params={"q": "'north'"}).text
    assert titles(page) == ["Maps \\ drafts: &#39;north&#39; &#34;coast&#34;"]


def test_lists_ask_the_same_queries_for_one_registrant_or_many(client: TestClient) -> None:
    """Each card shows its registrant's name, which was read work by work: 24 queries more for a page of 24 works."""
    paths = ["/", "/works", "/works?q=harbour", "/api/v1/works", "/api/v1/works?q=harbour"]
    ApiUser(client, "first@example.org", "First").register(png_bytes(0), title="Harbour 0")
    one = {path: get_counting_queries(client, path)[1] for path in paths}
    for number in range(1, 5):
        creator = ApiUser(client, f"c{number}@example.org", f"Creator {number}")
        creator.register(png_bytes(number), title=f"Harbour {number}")
    five = {path: get_counting_queries(client, path) for path in paths}
    assert all(response.status_code == 200 and "Creator 4" in response.text for response, _ in five.values())
    assert {path: queries for path, (_, queries) in five.items()} == one
