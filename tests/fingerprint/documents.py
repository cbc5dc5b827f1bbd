"""Documents built byte by byte for tests: shapes a PDF writer library would never produce."""

from __future__ import annotations

import io
import zlib


def pdf_whose_font_maps_a_code_to(mapped: str, codes: int) -> bytes:
    """One page showing code 0x41 ``codes`` times in a font whose ToUnicode map turns that code into ``mapped``.

    The page content compresses to almost nothing, so a 2 kB file can claim megabytes of text.
    """
    utf16 = mapped.encode("utf-16-be").hex().upper()
    cmap = (
        "/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /Mapped def "
        f"1 begincodespacerange <00> <FF> endcodespacerange 1 beginbfchar <41> <{utf16}> endbfchar "
        "endcmap CMapName currentdict /CMap defineresource pop end end"
    ).encode()
    content = zlib.compress(b"BT /F1 12 Tf 10 700 Td (" + b"A" * codes + b") Tj ET", 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode 6 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n%b\nendstream" % (len(content), content),
        b"<< /Length %d >>\nstream\n%b\nendstream" % (len(cmap), cmap),
    ]
    pdf = io.BytesIO()
    pdf.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(pdf.tell())
        pdf.write(b"%d 0 obj\n%b\nendobj\n" % (number, body))
    xref = pdf.tell()
    pdf.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    pdf.write(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
    pdf.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return pdf.getvalue()
