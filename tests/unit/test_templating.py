"""The words pages print around numbers and files: counts with their noun, downloads named by kind."""

from __future__ import annotations

import pytest

from ipx.web.templating import counted, file_kind, outline


@pytest.mark.parametrize(("count", "expected"), [(0, "0 matches"), (1, "1 match"), (2, "2 matches"),
                                                 (1200, "1,200 matches")])
def test_counted_says_one_in_the_singular_and_every_other_count_in_the_plural(count: int, expected: str) -> None:
    assert counted(count, "match", "matches") == expected


def test_counted_adds_an_s_unless_told_the_plural() -> None:
    assert counted(1, "order") == "1 order"
    assert counted(3, "order") == "3 orders"
    assert counted(1, "event matches", "events match") == "1 event matches"


@pytest.mark.parametrize(("filename", "media_type", "expected"), [
    ("harbour.png", "image/png", "PNG"), ("Score.final.PDF", "application/pdf", "PDF"),
    ("README", "text/plain", "TXT"), ("notes", "application/x-unknown-kind", "X-UNKNOWN-KIND"),
])
def test_file_kind_is_the_extension_people_know(filename: str, media_type: str, expected: str) -> None:
    assert file_kind(filename, media_type) == expected


def test_counted_says_none_in_words_when_told_how() -> None:
    assert counted(0, "upheld complaint", none="No upheld complaints") == "No upheld complaints"
    assert counted(1, "upheld complaint", none="No upheld complaints") == "1 upheld complaint"
    assert counted(2, "upheld complaint", none="No upheld complaints") == "2 upheld complaints"
    assert counted(0, "order") == "0 orders"


def test_an_outline_is_drawn_only_for_a_part_of_the_picture() -> None:
    assert outline([0.05, 0.125, 0.65, 0.725]) == {"x": "5.0%", "y": "12.5%", "width": "60.0%", "height": "60.0%"}
    assert outline([0.2, 0.0, 1.0, 1.0]) == {"x": "20.0%", "y": "0.0%", "width": "80.0%", "height": "100.0%"}
    assert outline([0.01, 0.0, 0.99, 1.0]) is None  # all of it, within 2%
    assert outline(None) is None
