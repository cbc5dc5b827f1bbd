"""What keeps a name or title on one line: certificates, pages and the log monitor's report print them that way, so
a line break or a terminal escape inside one could break a layout or forge a line of someone else's report."""

from __future__ import annotations

import unicodedata

LINE_SEPARATORS = "\u2028\u2029"


def line_breaking_character(text: str) -> str | None:
    """The first control character or line/paragraph separator in `text`, None when it is one line of text."""
    return next((c for c in text if unicodedata.category(c) == "Cc" or c in LINE_SEPARATORS), None)
