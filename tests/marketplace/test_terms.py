"""License terms as data: validation of contradictions, the generated summary and the ODRL export."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from ipx.marketplace import terms
from tests.marketplace.builders import offer


def parse(**overrides: object) -> terms.LicenseTerms:
    return terms.LicenseTerms.model_validate(offer(**overrides))


def error_text(**overrides: object) -> str:
    with pytest.raises(ValidationError) as caught:
        parse(**overrides)
    return str(caught.value)


def test_valid_offer_normalizes_codes_and_uses():
    parsed = parse(territory=["fr", "DE", "de"], uses=["Print", "web"], duration={"until": "2030-01-31"})
    assert parsed.territory == ["DE", "FR"]
    assert parsed.uses == ["print", "web"]
    assert terms.to_data(parsed)["duration"] == {"until": "2030-01-31"}


@pytest.mark.parametrize(("overrides", "message"), [
    ({"template": "exclusive", "exclusive": True, "seats": 5}, "seats must be 1"),
    ({"template": "exclusive", "exclusive": False}, "requires exclusive: true"),
    ({"template": "standard", "exclusive": True}, "requires exclusive: false"),
    ({"template": "cc-by-nc", "commercial": True, "derivatives": True}, "requires commercial: false"),
    ({"template": "cc-by-nd", "derivatives": True}, "requires derivatives: false"),
    ({"template": "cc-by", "derivatives": True, "territory": ["DE"]}, "worldwide and perpetual"),
    ({"template": "cc0", "attribution": True, "derivatives": True}, "requires attribution: false"),
    ({"template": "editorial", "commercial": False, "uses": ["advertising"]}, "cannot include advertising"),
    ({"price": {"amount": 0, "currency": "EUR"}}, "greater than 0"),
    ({"price": {"amount": -5, "currency": "EUR"}}, "greater than 0"),
    ({"price": {"amount": 12.5, "currency": "EUR"}}, "valid integer"),
    ({"price": {"amount": 100, "currency": "EURO"}}, "pattern"),
    ({"territory": ["worldwide", "DE"]}, "give it alone"),
    ({"territory": ["XX"]}, "not ISO 3166-1"),
    ({"uses": ["telepathy"]}, "unknown uses"),
    ({"uses": []}, "at least 1 item"),
    ({"duration": {"perpetual": True, "until": "2030-01-01"}}, "either"),
    ({"duration": {}}, "either"),
    ({"ai_training": "maybe"}, "'allow' or 'deny'"),
    ({"seats": 0}, "greater than or equal to 1"),
    ({"exclusive": "yes"}, "valid boolean"),
    ({"colour": "red"}, "Extra inputs are not permitted"),
])
def test_contradictions_and_bad_values_are_refused(overrides, message):
    assert message in error_text(**overrides)


def test_summary_is_generated_from_the_data():
    text = terms.summary(parse(
        template="editorial", commercial=False, territory=["GB", "IE"], duration={"until": "2027-06-30"},
        uses=["print"], print_run_cap=5000, seats=3, price={"amount": 125050, "currency": "EUR"},
    ))
    assert text == (
        "Editorial-only license: print use in GB and IE, until 2027-06-30. Non-commercial use only. "
        "No derivative works. Attribution required. AI training not allowed. Up to 5,000 printed copies. "
        "3 seats. Price: EUR 1,250.50."
    )


@pytest.mark.parametrize(("amount", "currency", "text"), [
    (5, "EUR", "EUR 0.05"), (500, "JPY", "JPY 500"), (1234567, "KWD", "KWD 1,234.567"), (-250, "USD", "USD -2.50"),
])
def test_money_formatting_is_exact(amount, currency, text):
    assert terms.format_money(amount, currency) == text


def test_odrl_offer_and_agreement():
    cc = parse(template="cc-by-nc", commercial=False, derivatives=True, ai_training="allow")
    policy = terms.odrl_policy(cc, uid="urn:offer:1", target="urn:work:1", assigner="urn:party:a")
    assert policy["@type"] == "Offer"
    assert policy["inheritFrom"] == "https://creativecommons.org/licenses/by-nc/4.0/"
    actions = [p["action"] for p in policy["permission"]]
    assert ["derive"] in actions and {"action": "ipx:aiTraining", "target": "urn:work:1",
                                      "assigner": "urn:party:a"} in policy["permission"]
    purpose = next(c for c in policy["permission"][0]["constraint"] if c["leftOperand"] == "purpose")
    assert purpose == {"leftOperand": "purpose", "operator": "neq", "rightOperand": "commercial"}
    duties = policy["permission"][0]["duty"]
    assert {"action": "attribute"} in duties
    assert duties[0]["constraint"][0]["rightOperand"] == 2500

    closed = parse(duration={"until": "2028-01-01"}, impressions_cap=10_000)
    agreement = terms.odrl_policy(closed, uid="urn:l:1", target="urn:work:1", assigner="urn:a", assignee="urn:b")
    assert agreement["@type"] == "Agreement"
    assert agreement["permission"][0]["assignee"] == "urn:b"
    assert {"action": "derive", "target": "urn:work:1"} in agreement["prohibition"]
    assert {"action": "ipx:aiTraining", "target": "urn:work:1"} in agreement["prohibition"]
    left = {c["leftOperand"] for c in agreement["permission"][0]["constraint"]}
    assert {"spatial", "dateTime", "count", "ipx:medium"} <= left


def test_scope_overlap_is_territory_times_period():
    world = parse()
    germany_2027 = parse(territory=["DE"], duration={"until": "2027-12-31"})
    france = parse(territory=["FR"])
    start = date(2026, 1, 1)
    assert terms.scopes_overlap(world, start, france, start)
    assert not terms.scopes_overlap(germany_2027, start, france, start)
    assert terms.scopes_overlap(germany_2027, start, parse(territory=["DE", "AT"]), date(2027, 12, 31))
    assert not terms.scopes_overlap(germany_2027, start, parse(territory=["DE"]), date(2028, 1, 1))
    assert terms.expired_on(germany_2027, date(2028, 1, 1))
    assert not terms.expired_on(germany_2027, date(2027, 12, 31))
