"""Media type from content, never from the client's claim, and mislabel detection."""

from __future__ import annotations

import mimetypes

import magic

SNIFF_BYTES = 8192

WORK_TYPES = ("image", "text", "audio", "video", "software", "other")
_TYPE_BY_MAJOR = {"image": "image", "text": "text", "audio": "audio", "video": "video"}
_TEXT_DOCUMENTS = {"application/pdf", "application/json", "application/xml", "application/rtf"}


def sniff(head: bytes) -> str:
    """libmagic's verdict on the first bytes; empty input is refused earlier."""
    return magic.from_buffer(head[:SNIFF_BYTES], mime=True) or "application/octet-stream"


def work_type_for(media_type: str) -> str:
    major = media_type.split("/", 1)[0]
    if media_type in _TEXT_DOCUMENTS:
        return "text"
    return _TYPE_BY_MAJOR.get(major, "other")


def claimed_media_type(filename: str | None, content_type: str | None) -> str | None:
    """What the client says the file is: its declared Content-Type, else its file extension."""
    if content_type and content_type not in ("application/octet-stream", ""):
        return content_type.split(";", 1)[0].strip().lower()
    if filename:
        return mimetypes.guess_type(filename)[0]
    return None


def mislabel(claimed: str | None, sniffed: str) -> str | None:
    """A sentence when the client claims an image/audio/video but the bytes are something else."""
    if not claimed:
        return None
    claimed_major, sniffed_major = claimed.split("/", 1)[0], sniffed.split("/", 1)[0]
    if claimed_major in ("image", "audio", "video") and claimed_major != sniffed_major:
        return f"The file claims to be {claimed} but its content is {sniffed}."
    return None
