"""The one Jinja2 environment every domain's pages render with."""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from ipx.web.certificates import size_text

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))


# How each matching method is named to people (the API keeps the short names).
METHOD_NAMES = {
    "sha256": "Identical file (SHA-256)", "pdq": "PDQ perceptual hash", "phash": "pHash perceptual hash",
    "orb": "Local features (ORB, geometrically verified)", "pixels": "Aligned pixels (thumbnail correlation)",
    "text-containment": "Shared passages",
    "chromaprint": "Audio fingerprint (Chromaprint)",
}


def method_name(method: str) -> str:
    return METHOD_NAMES.get(method, method)


def distance_text(distance: float | str) -> str:
    """A match's distance to three significant digits: 0.29600000000000004 is 0.296, 12 stays 12."""
    return f"{float(distance):.3g}"


def identified_by_text(identified_by: str) -> str:
    """How a complaint's registered work was found: from its id in the notice, or by matching an uploaded file."""
    if identified_by == "work_id":
        return "its registration id, given in the notice"
    return f"matching the uploaded file ({method_name(identified_by.removeprefix('upload:'))})"


def when(moment: datetime | str) -> Markup:
    """A moment in a sentence, one way on every page: "6 Dec 2026, 01:26 UTC", the exact RFC 3339 value kept in the
    element (machines, and a hover, read it); fact tables and certificates print the exact value itself."""
    if isinstance(moment, str):
        exact, moment = moment, datetime.fromisoformat(moment.replace("Z", "+00:00"))
    else:
        exact = moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    utc = moment.astimezone(UTC)
    shown = f"{utc.day} {utc:%b %Y, %H:%M} UTC"
    return Markup(f'<time datetime="{escape(exact)}" title="{escape(exact)}">{shown}</time>')


def counted(count: int, singular: str, plural: str | None = None, *, none: str | None = None) -> str:
    """"1 match", "2 matches", "0 orders": one rule for every count a page prints, instead of "match(es)"; `none`
    is said instead of a zero where a sentence reads better in words ("No upheld complaints against ...")."""
    if count == 0 and none is not None:
        return none
    return f"{count:,} {singular if count == 1 else plural or singular + 's'}"


WHOLE_PICTURE_MARGIN = 0.02  # a region this close to every edge of a picture is all of it: nothing to point at


def outline(region: Sequence[float] | None) -> dict[str, str] | None:
    """A match's region of a picture ([left, top, right, bottom] fractions) as an SVG rectangle over the picture, in
    percent; None when there is none (a card without one, too), or it is the whole picture."""
    if not region:
        return None
    left, top, right, bottom = region
    if max(left, top) <= WHOLE_PICTURE_MARGIN and min(right, bottom) >= 1 - WHOLE_PICTURE_MARGIN:
        return None
    left, top, right, bottom = (100 * side for side in region)
    return {"x": f"{left:.1f}%", "y": f"{top:.1f}%", "width": f"{right - left:.1f}%", "height": f"{bottom - top:.1f}%"}


def file_kind(filename: str, media_type: str) -> str:
    """What a download is, as people name files: "PNG" from harbour.png (else from its media type, "PDF")."""
    extension = PurePosixPath(filename).suffix or mimetypes.guess_extension(media_type) or ""
    return extension.lstrip(".").upper() or media_type.rpartition("/")[2].upper()


templates.env.filters.update(
    method_name=method_name, distance=distance_text, identified_by=identified_by_text, when=when, filesize=size_text,
    counted=counted, file_kind=file_kind, outline=outline,
)
