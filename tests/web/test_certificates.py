"""The certificate's pure parts: wording, sizes, the PDF with and without Unicode fonts."""

from __future__ import annotations

import dataclasses
import io

import pytest
from pypdf import PdfReader

from ipx.web import certificates

FACTS = certificates.CertificateFacts(
    title="Łódź — nocą", work_type="image", creators=[("Zoë", "50%"), ("Ada", "50%")], registered_by="Zoë",
    sha256="ab" * 32, size=1536, media_type="image/png", registered_at="2026-01-02T03:04:05.000006Z", log_index=41,
    key_id="cd" * 32, status="registered", url="https://ipx.example/works/00000000-0000-4000-8000-000000000000",
)


@pytest.mark.parametrize(
    ("work_type", "phrase"), [("image", "an image work"), ("audio", "an audio work"), ("text", "a text work")]
)
def test_kind_phrase_uses_the_right_article(work_type: str, phrase: str) -> None:
    assert certificates.kind_phrase(work_type) == phrase


@pytest.mark.parametrize(
    ("size", "shown"),
    [(0, "0 bytes"), (1023, "1023 bytes"), (1536, "1.5 KiB (1,536 bytes)"), (5 * 1024**2, "5.0 MiB (5,242,880 bytes)"),
     (3 * 1024**4, "3072.0 GiB (3,298,534,883,328 bytes)")],
)
def test_human_size_keeps_the_exact_figure(size: int, shown: str) -> None:
    assert certificates.human_size(size) == shown


def _pdf_text(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 1
    return reader.pages[0].extract_text()


def test_pdf_with_unicode_fonts_keeps_every_character() -> None:
    text = _pdf_text(certificates.certificate_pdf(FACTS))
    for fact in ("Łódź — nocą", "Zoë (50%)", FACTS.sha256, FACTS.key_id, FACTS.registered_at, FACTS.url):
        assert fact in text


def test_pdf_without_unicode_fonts_still_renders_with_replacements() -> None:
    text = _pdf_text(certificates.certificate_pdf(FACTS, fonts=None))
    assert "?ód? ? noc?" in text  # Ł, ź, — and ą are outside Latin-1; ó and ë are inside and survive
    assert "Zoë" in text and FACTS.sha256 in text and FACTS.url in text


def test_qr_svg_is_inline_markup_naming_the_url() -> None:
    svg = certificates.qr_svg(FACTS.url)
    assert svg.startswith("<svg") and f"<title>{FACTS.url}</title>" in svg


@pytest.mark.parametrize("fonts", ["unicode", "core"])
def test_longest_title_and_most_creators_keep_every_fact_on_the_page(fonts: str) -> None:
    """A 500-character title and 50 creators (the limits) once pushed every fact below them off the page."""
    facts = dataclasses.replace(
        FACTS, title=" ".join(["Nocturne"] * 55)[:500], creators=[(f"Creator number {n}", "2%") for n in range(50)]
    )
    pdf = certificates.certificate_pdf(facts, **({"fonts": None} if fonts == "core" else {}))  # type: ignore[arg-type]
    page = PdfReader(io.BytesIO(pdf)).pages[0]
    heights: dict[str, float] = {}

    def note_height(text: str, cm: list[float], tm: list[float], *_: object) -> None:
        text = " ".join(text.split())  # justified lines space their words out
        for fact in (FACTS.sha256, FACTS.key_id, FACTS.url, "Creator number 0", "Nocturne"):
            if fact in text:
                heights[fact] = tm[5]

    text = page.extract_text(visitor_text=note_height)
    assert set(heights) == {FACTS.sha256, FACTS.key_id, FACTS.url, "Creator number 0", "Nocturne"}
    assert all(0 < y < float(page.mediabox.height) for y in heights.values()), heights
    # cut, and said to be cut; the bundle has them all
    assert ("…" if fonts == "unicode" else "...") in text and "number 49" not in text
