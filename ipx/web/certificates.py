"""What a registration looks like away from the site: a QR code, a one-page PDF and a thumbnail.

Bytes and plain values in, bytes out: no database, no HTTP, so the page routes stay thin and these
render the same in tests as in production.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import segno
from fpdf import FPDF
from PIL import Image

from ipx.fingerprint.image import HEIF_MEDIA_TYPES

# Debian's fonts-dejavu-core; titles and names may be in any script, which the PDF core fonts cannot show.
UNICODE_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
UNICODE_FONT_BOLD = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
UNICODE_FONT_MONO = Path("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf")
QR_BORDER_MODULES = 4  # the quiet zone ISO/IEC 18004 asks for
VERIFY_NOTE = (
    "This certificate summarises a signed registration statement appended to the IPX transparency log. "
    "To check it without trusting IPX, download the evidence bundle and IPX's signing keys from the public record "
    "and run \"ipx verify BUNDLE FILE --keys KEYS\": it checks the Ed25519 signature against IPX's published key, the "
    "Merkle inclusion proof against the signed checkpoint, and that the file's SHA-256 matches."
)


@dataclass(frozen=True)
class CertificateFacts:
    """The facts a certificate states; each one can be checked against the evidence bundle."""

    title: str
    work_type: str
    creators: list[tuple[str, str]]  # (name, share as shown, e.g. "50%")
    registered_by: str
    sha256: str
    size: int
    media_type: str
    registered_at: str  # RFC 3339 UTC, exactly as signed
    log_index: int
    key_id: str
    status: str
    url: str


def qr_code(url: str) -> segno.QRCode:
    return segno.make(url, error="m")


def qr_svg(url: str, scale: int = 4, title: str | None = None) -> str:
    """Inline SVG markup of the QR code, so the printable page needs no image request; its title (the tooltip) is
    the URL unless given."""
    return str(qr_code(url).svg_inline(scale=scale, border=QR_BORDER_MODULES, dark="#0f172a", title=title or url))


def kind_phrase(work_type: str) -> str:
    """ "image" -> "an image work", for sentences on the certificate and the record page."""
    article = "an" if work_type[:1].lower() in "aeiou" else "a"
    return f"{article} {work_type} work"


def human_size(size: int) -> str:
    """1536 -> "1.5 KiB (1,536 bytes)": readable, and still the exact figure the statement signs."""
    return size_text(size) if size < 1024 else f"{size_text(size)} ({size:,} bytes)"


def size_text(size: int) -> str:
    """1536 -> "1.5 KiB": short enough for a button."""
    if size < 1024:
        return f"{size} bytes"
    value, unit = float(size), "bytes"
    for unit in ("KiB", "MiB", "GiB"):  # noqa: B007 - the last unit tried is the one shown
        value /= 1024
        if value < 1024:
            break
    return f"{value:.1f} {unit}"


CERTIFICATES_KEPT = 256  # about 40 kB each
TITLE_SIZES = (24, 18, 14)  # points, tried in turn until the title fits TITLE_LINES
TITLE_LINES = 3
FACT_LINES = 4
SENTENCE_LINES = 2
# More than the longest line count above ever shows; laying out more only costs time (fpdf2's line breaking is
# quadratic on long runs of characters that take no width).
MAX_PRINTED_CHARACTERS = 800
MAX_MARKS_ON_A_LETTER = 3


def printable(value: str) -> str:
    """Text as the certificate prints it: control characters and line breaks as spaces, format characters (zero
    widths, direction overrides) dropped, at most MAX_MARKS_ON_A_LETTER combining marks on a letter, whitespace
    folded, MAX_PRINTED_CHARACTERS at most. The evidence bundle keeps every text whole; this only bounds what a
    page must lay out: 50 creators named with 200 zero-width spaces took 4.8 s of CPU per anonymous request."""
    kept: list[str] = []
    marks = 0
    for character in value:
        category = unicodedata.category(character)
        if category in ("Cc", "Zl", "Zp"):
            kept.append(" ")
        elif category == "Cf":
            continue
        elif category in ("Mn", "Me"):
            marks += 1
            if marks <= MAX_MARKS_ON_A_LETTER:
                kept.append(character)
        else:
            marks = 0
            kept.append(character)
    return " ".join("".join(kept).split())[:MAX_PRINTED_CHARACTERS]


class _CertificatePdf(FPDF):
    def __init__(self, fonts: tuple[Path, Path, Path] | None) -> None:
        super().__init__(format="A4", unit="mm")
        self.set_auto_page_break(auto=False)
        self.set_margins(20, 20, 20)
        if fonts is not None and all(path.exists() for path in fonts):
            regular, bold, mono = fonts
            self.add_font("body", "", str(regular))
            self.add_font("body", "B", str(bold))
            self.add_font("mono", "", str(mono))
            self.family, self.mono_family, self.unicode = "body", "mono", True
        else:  # without Unicode fonts, characters outside Latin-1 print as "?" rather than failing
            self.family, self.mono_family, self.unicode = "helvetica", "courier", False

    def text_of(self, value: str) -> str:
        value = printable(value)
        return value if self.unicode else value.encode("latin-1", "replace").decode("latin-1")

    def lines_of(self, text: str, width: float) -> list[str]:
        return self.multi_cell(width, 6, text, dry_run=True, output="LINES")

    def fitted(self, text: str, width: float, max_lines: int) -> str:
        """`text`, cut short with "…" when the current font would need more than `max_lines` lines of `width`.

        The longest prefix that fits is found by bisection (a few layouts, not one per character cut), then moved
        back to a word boundary when one is near."""
        if len(self.lines_of(text, width)) <= max_lines:
            return text
        ellipsis = " …" if self.unicode else " ..."  # the core PDF fonts have no "…"
        fits, too_long = 0, len(text)
        while too_long - fits > 1:
            middle = (fits + too_long) // 2
            if len(self.lines_of(text[:middle].rstrip() + ellipsis, width)) <= max_lines:
                fits = middle
            else:
                too_long = middle
        kept = text[:fits]
        space = kept.rfind(" ")
        return (kept[:space] if space > fits - 20 else kept).rstrip() + ellipsis

    def use(
        self, size: float, bold: bool = False, rgb: tuple[int, int, int] = (15, 23, 42), mono: bool = False
    ) -> None:
        self.set_font(self.mono_family if mono else self.family, "B" if bold else "", size)
        self.set_text_color(*rgb)

    def draw_qr(self, url: str, x: float, y: float, side: float) -> None:
        """The QR code as filled runs of modules: vector, crisp in print, no image decoder needed."""
        matrix = qr_code(url).matrix
        modules = len(matrix) + 2 * QR_BORDER_MODULES
        unit = side / modules
        self.set_fill_color(15, 23, 42)
        for row_number, row in enumerate(matrix):
            top = y + (row_number + QR_BORDER_MODULES) * unit
            start: int | None = None
            for column, dark in enumerate([*row, 0]):
                if dark and start is None:
                    start = column
                elif not dark and start is not None:
                    self.rect(x + (start + QR_BORDER_MODULES) * unit, top, (column - start) * unit, unit, style="F")
                    start = None


def certificate_pdf(
    facts: CertificateFacts,
    *,
    fonts: tuple[Path, Path, Path] | None = (UNICODE_FONT, UNICODE_FONT_BOLD, UNICODE_FONT_MONO),
) -> bytes:
    """A one-page A4 certificate whose every line can be checked against the evidence bundle.

    `fonts` are (regular, bold, monospace) TrueType files; hashes and ids are set in monospace so
    each stays on one line and can be read back character by character.
    """
    pdf = _CertificatePdf(fonts)
    pdf.set_title(pdf.text_of(f"IPX registration certificate: {facts.title}"))
    pdf.set_creator("IPX")
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    pdf.set_fill_color(31, 95, 191)
    pdf.rect(0, 0, pdf.w, 6, style="F")
    pdf.set_xy(pdf.l_margin, 18)
    pdf.use(11, bold=True, rgb=(31, 95, 191))
    pdf.cell(width, 6, "IPX  ·  CERTIFICATE OF REGISTRATION")
    pdf.ln(12)
    # A title may run to 500 characters and there may be 50 creators: both are fitted to a few lines (smaller, then
    # cut), so every fact below still lands on the one page; the evidence bundle holds them whole.
    title = pdf.text_of(facts.title)
    for size in TITLE_SIZES:
        pdf.use(size, bold=True)
        if len(pdf.lines_of(title, width - 50)) <= TITLE_LINES:
            break
    pdf.multi_cell(width - 50, size * 0.42, pdf.fitted(title, width - 50, TITLE_LINES))
    pdf.ln(2)
    pdf.use(11, rgb=(71, 85, 105))
    sentence = f"{kind_phrase(facts.work_type).capitalize()} registered by {facts.registered_by}."
    pdf.multi_cell(width - 50, 6, pdf.fitted(pdf.text_of(sentence), width - 50, SENTENCE_LINES))
    pdf.draw_qr(facts.url, pdf.w - pdf.r_margin - 42, 30, 42)

    pdf.set_y(max(pdf.get_y() + 10, 82))
    rows = [  # (label, value, monospace)
        ("Creators", ", ".join(f"{name} ({share})" for name, share in facts.creators), False),
        ("SHA-256", facts.sha256, True),
        ("Size", human_size(facts.size), False),
        ("Media type", facts.media_type, True),
        ("Registered (UTC)", facts.registered_at, True),
        ("Log index", str(facts.log_index), True),
        ("Signing key id", facts.key_id, True),
        ("Status", facts.status, False),
        ("Public record", facts.url, True),
    ]
    label_width = 38
    for label, value, mono in rows:
        pdf.set_draw_color(226, 232, 240)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + width, pdf.get_y())
        pdf.ln(2.5)
        top = pdf.get_y()
        pdf.use(9, bold=True, rgb=(100, 116, 139))
        pdf.cell(label_width, 6, label.upper())
        pdf.set_xy(pdf.l_margin + label_width, top)
        disputed = label == "Status" and value != "registered"
        pdf.use(8.8 if mono else 10.5, bold=disputed, rgb=(178, 38, 30) if disputed else (15, 23, 42), mono=mono)
        pdf.multi_cell(width - label_width, 6, pdf.fitted(pdf.text_of(value), width - label_width, FACT_LINES))
        pdf.ln(2.5)

    pdf.ln(6)
    pdf.use(9.5, rgb=(71, 85, 105))
    pdf.multi_cell(width, 5, align="L", text=pdf.text_of(VERIFY_NOTE))
    return bytes(pdf.output())


class CertificateCache:
    """The last certificate PDFs built, by their facts: building one costs about 0.1 s of CPU, and anyone may ask
    for any work's as often as they like. A status change (a dispute) changes the facts, so a new PDF is built."""

    def __init__(self, entries: int = CERTIFICATES_KEPT) -> None:
        self.entries = entries
        self._kept: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def pdf(self, facts: CertificateFacts) -> tuple[str, bytes]:
        """(a digest naming these facts, usable as an ETag; the PDF)."""
        digest = facts_digest(facts)
        with self._lock:
            if digest in self._kept:
                self._kept.move_to_end(digest)
                return digest, self._kept[digest]
        pdf = certificate_pdf(facts)  # outside the lock: two first requests may both build it, none waits on another
        with self._lock:
            self._kept[digest] = pdf
            while len(self._kept) > self.entries:
                self._kept.popitem(last=False)
        return digest, pdf


def facts_digest(facts: CertificateFacts) -> str:
    return hashlib.sha256(json.dumps(dataclasses.asdict(facts), sort_keys=True).encode()).hexdigest()


def _previewable_media_types() -> frozenset[str]:
    Image.init()
    pillow_types = {Image.MIME[f] for f in Image.OPEN if Image.MIME.get(f, "").startswith("image/")}
    return frozenset(pillow_types | HEIF_MEDIA_TYPES)


# image types Pillow can decode; an SVG or a camera's raw file gets a type tile instead of a broken preview
PREVIEWABLE_MEDIA_TYPES = _previewable_media_types()


def has_preview(media_type: str) -> bool:
    return media_type in PREVIEWABLE_MEDIA_TYPES

