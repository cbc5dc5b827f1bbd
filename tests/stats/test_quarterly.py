"""Quarterly statistics against a seeded dataset whose totals are known by construction."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from ipx.cli import app as cli_app
from ipx.db import transaction, utcnow
from ipx.registry.models import Work
from ipx.stats.quarters import Quarter
from tests.complaints.conftest import act, file, notice
from tests.marketplace.builders import offer
from tests.marketplace.conftest import buy, noise_png

POEM = ("Salt on the harbour wall,\nlight before the gulls,\nthe boats still asleep.\n" * 4).encode()


@dataclass
class Seeded:
    """The present quarter holds most of the data; the previous one Alice's first work and one complaint."""

    quarter: Quarter

    @property
    def previous(self) -> Quarter:
        return self.quarter.previous()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def seeded(client, make_user, make_staff) -> Seeded:
    """Known figures for the present quarter (registrations and sales happen now) and the previous one:

    registrations now: 2 images (Alice's harbour, Bob's copy of it) + 1 text (Carol); previous: 1 image (Alice's
    first work, moved back); new creators now: Bob, Carol (Alice's first work is earlier); accounts now: 6
    (3 creators, 2 buyers, 1 staff); listings now: 1; sales now: 2 (EUR 2500 and USD 1000, both "standard");
    detection alerts now: 1 (sha256); complaints: received previous 1, now 2; resolved (closed) now 2, 4 h and 10 h
    after receipt (median 7.0 h); a takedown alone (its case still open) resolves nothing.
    """
    quarter = Quarter.containing(utcnow())
    start = quarter.start
    staff = make_staff()
    alice, bob, carol = make_user("Alice"), make_user("Bob"), make_user("Carol")
    first = alice.register(noise_png(501), title="First light").json()
    data = noise_png(502)
    harbour = alice.register(data, title="Harbour").json()
    copy = bob.register(data, title="Copied harbour").json()
    poem = carol.register(POEM, title="Harbour poem", filename="poem.txt").json()
    assert poem["work_type"] == "text"
    with transaction(client.app.state.session_factory) as session:
        moved_back = quarter.previous().start + timedelta(days=40)
        session.execute(update(Work).where(Work.id == first["work_id"]).values(registered_at=moved_back))

    listing = client.post("/api/v1/listings", headers=alice.headers, json={
        "work_id": harbour["work_id"],
        "offers": [offer(), offer(price={"amount": 1000, "currency": "USD"}, uses=["web"])],
    })
    assert listing.status_code == 201, listing.text
    offers = [o["offer_id"] for o in listing.json()["offers"]]
    buy(client, make_user("Buyer one"), offers[0])
    buy(client, make_user("Buyer two"), offers[1])

    client.app.state.clock = lambda: start - timedelta(hours=1)
    late_q3 = file(client, notice(first["work_id"], {"url": "https://elsewhere.example/first.png"}))
    client.app.state.clock = lambda: start + timedelta(hours=3)
    act(client, staff, late_q3["complaint_id"], "dismiss")
    client.app.state.clock = lambda: start + timedelta(days=4, hours=10)
    q4 = file(client, notice(harbour["work_id"], {"work_id": copy["work_id"]}))
    client.app.state.clock = lambda: start + timedelta(days=4, hours=14)
    act(client, staff, q4["complaint_id"], "mark_disputed")
    client.app.state.clock = lambda: start + timedelta(days=4, hours=20)
    act(client, staff, q4["complaint_id"], "restore")
    client.app.state.clock = lambda: start + timedelta(days=5, hours=9)
    still_open = file(client, notice(harbour["work_id"], {"work_id": copy["work_id"]}))
    assert act(client, staff, still_open["complaint_id"], "mark_disputed").json()["status"] == "action_taken"
    return Seeded(quarter)


def test_quarterly_json_matches_the_seeded_totals(client, seeded: Seeded) -> None:
    response = client.get("/api/v1/stats/quarterly", params={"quarter": str(seeded.quarter)})
    assert response.status_code == 200, response.text
    stats = response.json()
    assert stats["quarter"] == str(seeded.quarter)
    assert stats["period"]["start"] == seeded.quarter.start.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert stats["registrations"] == {"total": 3, "by_type": {"image": 2, "text": 1}}
    assert stats["creators"] == {"new": 2}
    assert stats["accounts"] == {"new": 6}
    assert stats["listings"] == {"new": 1}
    assert stats["sales"]["count"] == 2
    assert stats["sales"]["by_currency"] == {"EUR": 2500, "USD": 1000}
    assert stats["sales"]["by_license_type"] == {"standard": {"count": 2, "by_currency": {"EUR": 2500, "USD": 1000}}}
    assert stats["complaints"] == {"received": 2, "resolved": 2, "median_resolution_hours": 7.0}
    assert stats["detection"] == {"alerts": 1, "by_method": {"sha256": 1}}
    headline = {m["metric"]: (m["current"], m["previous"]) for m in stats["comparison"]["metrics"]}
    assert stats["comparison"]["previous_quarter"] == str(seeded.previous)
    assert headline["registrations"] == (3, 1)
    assert headline["new creators"] == (2, 1)
    assert headline["complaints received"] == (2, 1)
    assert headline["complaints resolved"] == (2, 0)
    assert stats["previous"]["registrations"] == {"total": 1, "by_type": {"image": 1}}


def test_previous_quarter_on_its_own(client, seeded: Seeded) -> None:
    stats = client.get("/api/v1/stats/quarterly", params={"quarter": str(seeded.previous)}).json()
    assert stats["registrations"]["total"] == 1
    assert stats["creators"]["new"] == 1
    assert stats["complaints"] == {"received": 1, "resolved": 0, "median_resolution_hours": None}
    assert stats["sales"] == {"count": 0, "by_currency": {}, "by_license_type": {}}


def test_csv_export(client, seeded: Seeded) -> None:
    response = client.get("/api/v1/stats/quarterly", params={"quarter": str(seeded.quarter), "format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert f'filename="ipx-stats-{seeded.quarter}.csv"' in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["quarter", "section", "key", "value"]
    values = {(section, key): value for _, section, key, value in rows[1:]}
    assert values[("registrations", "total")] == "3"
    assert values[("registrations", "by_type.text")] == "1"
    assert values[("sales", "by_currency.EUR")] == "2500"
    assert values[("complaints", "median_resolution_hours")] == "7.0"


ARABIC_INDIC_2026 = "\u0662\u0660\u0662\u0666"  # digits to \\d, not to a year


@pytest.mark.parametrize("bad", ["2026Q5", "2026Q0", "26Q1", "2026-Q3", "Q3 2026", "abcd", f"{ARABIC_INDIC_2026}Q3",
                                 "9" * 5000])
def test_invalid_quarters_are_422_with_a_clear_message(client, bad: str) -> None:
    response = client.get("/api/v1/stats/quarterly", params={"quarter": bad})
    assert response.status_code == 422
    assert "like 2026Q3" in response.json()["detail"]
    assert response.json()["errors"] == [{"loc": ["query", "quarter"], "msg": "expected YYYYQn with n from 1 to 4"}]
    page = client.get("/stats", params={"quarter": bad})
    assert page.status_code == 422 and "like 2026Q3" in page.text


def test_unknown_format_is_422(client) -> None:
    assert client.get("/api/v1/stats/quarterly", params={"quarter": "2026Q3", "format": "xml"}).status_code == 422


def test_stats_page_draws_svg_charts_without_scripts(client, seeded: Seeded) -> None:
    page = client.get("/stats", params={"quarter": str(seeded.quarter)})
    assert page.status_code == 200
    assert page.text.count('<svg class="chart chart-wide"') == page.text.count('<svg class="chart chart-narrow"') == 2
    assert "<script" not in page.text
    assert "Registrations by work type" in page.text and str(seeded.previous) in page.text


def test_stats_page_names_every_column_and_label_for_people(client, seeded: Seeded) -> None:
    """The sales table's first column had no header, and chart labels were the API's lowercase metric names."""
    page = client.get("/stats", params={"quarter": str(seeded.quarter)}).text
    assert '<th scope="col">Currency</th><th class="num" scope="col">Gross</th>' in page
    assert re.search(r'<th scope="row">EUR</th><td class="num">25.00</td>', page)
    labels = re.findall(r'class="chart-label">([^<]*)<', page)
    assert {"Image", "Text", "Sales", "Complaints received", "New creators"} <= set(labels)
    assert all(label[:1].isupper() for label in labels), labels
    assert '<div class="st-label">Complaints received</div>' in page


def test_stats_page_shows_money_as_money(client, seeded: Seeded) -> None:
    page = client.get("/stats", params={"quarter": str(seeded.quarter)}).text
    assert "EUR 25.00" in page and "USD 10.00" in page and "minor units" not in page
    assert "<td>Standard license</td><td class=\"num\">2</td><td class=\"num\">EUR 25.00, USD 10.00</td>" in page


def test_cli_prints_the_same_figures(client, seeded: Seeded, settings, monkeypatch) -> None:
    monkeypatch.setenv("IPX_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("IPX_DATA_DIR", str(settings.data_dir))
    result = CliRunner().invoke(cli_app, ["stats", "--quarter", str(seeded.quarter)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["registrations"]["total"] == 3
    as_csv = CliRunner().invoke(cli_app, ["stats", "--quarter", str(seeded.quarter), "--csv"])
    assert f"{seeded.quarter},sales,count,2" in as_csv.output
    bad = CliRunner().invoke(cli_app, ["stats", "--quarter", "2026Q9"])
    assert bad.exit_code == 2


def test_quarter_arithmetic() -> None:
    q1 = Quarter.parse("2027q1")
    assert (str(q1.previous()), str(q1.next())) == ("2026Q4", "2027Q2")
    assert q1.start == at("2027-01-01T00:00") and q1.end == at("2027-04-01T00:00")
    assert Quarter.containing(at("2026-12-31T23:59")) == Quarter(2026, 4)


def test_an_empty_quarter_is_refused_and_the_message_stays_short(client) -> None:
    assert client.get("/api/v1/stats/quarterly", params={"quarter": ""}).status_code == 422
    long = client.get("/api/v1/stats/quarterly", params={"quarter": "9" * 5000}).json()["detail"]
    assert len(long) < 200


@pytest.mark.parametrize(("quarter", "beyond"), [("1970Q1", "1969Q4"), ("9998Q4", "9999Q1")])
def test_the_first_and_last_quarters_link_to_no_quarter_beyond(client, quarter: str, beyond: str) -> None:
    page = client.get("/stats", params={"quarter": quarter}).text
    assert page.count('href="/stats?quarter=') == 1 and f'href="/stats?quarter={beyond}"' not in page
