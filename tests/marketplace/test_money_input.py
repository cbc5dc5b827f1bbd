"""Prices typed by people: commas read as meant (thousands or decimals), never a price 100 times too high."""

from __future__ import annotations

import pytest

from ipx.marketplace.views import MoneyInputError, parse_major_units

HOW_TO_WRITE = ("write decimals after a point, like 1250.50, and commas only between groups of three digits, "
                "like 1,250.50")


@pytest.mark.parametrize(("text", "currency", "minor"), [
    ("25", "EUR", 2500), ("25.5", "EUR", 2550), ("1 250.50", "EUR", 125050),
    ("1,000", "EUR", 100000), ("12,345.50", "EUR", 1234550), ("1,234,567", "JPY", 1234567),
    ("9,99", "EUR", 999), ("9,9", "EUR", 990), (" 0,05 ", "USD", 5), ("1,500", "KWD", 1500000),
])
def test_commas_separate_thousands_or_stand_for_the_decimal_point(text: str, currency: str, minor: int) -> None:
    assert parse_major_units(text, currency) == minor


@pytest.mark.parametrize("text", ["1,2345", "12,34,567", "1,000,5", "1,234.5,0", ",50", "9,99.5", "0,500", "000,001"])
def test_an_ambiguous_comma_is_refused_with_how_to_write_the_price(text: str) -> None:
    with pytest.raises(MoneyInputError) as refused:
        parse_major_units(text, "EUR")
    assert str(refused.value) == f"“{text}” is unclear: {HOW_TO_WRITE}"


def test_a_decimal_comma_keeps_the_currency_decimals() -> None:
    with pytest.raises(MoneyInputError, match="JPY amounts have no decimals"):
        parse_major_units("9,99", "JPY")
