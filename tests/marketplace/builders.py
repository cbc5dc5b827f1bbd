"""Offers as data, importable by pure unit tests (no app, no database)."""

from __future__ import annotations

from typing import Any


def offer(**overrides: Any) -> dict[str, Any]:
    """A valid standard offer; override any field."""
    body: dict[str, Any] = {
        "template": "standard", "exclusive": False, "territory": ["worldwide"], "duration": {"perpetual": True},
        "uses": ["web", "print"], "ai_training": "deny", "derivatives": False, "attribution": True,
        "commercial": True, "seats": 1, "price": {"amount": 2500, "currency": "EUR"},
    }
    body.update(overrides)
    return body


def exclusive_offer(**overrides: Any) -> dict[str, Any]:
    return offer(template="exclusive", exclusive=True, price={"amount": 50000, "currency": "EUR"}, **overrides)
