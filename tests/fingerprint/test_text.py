"""Text fingerprinting: edited copies are found, unrelated texts are not, passages point at the copy."""

from __future__ import annotations

import random
import re
import resource
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ipx.fingerprint import text as text_module
from ipx.fingerprint.text import (
    TextFingerprint,
    TextFingerprintError,
    TextIndex,
    TextMatch,
    compare,
    extract_text,
    fingerprint_text,
    normalize_words,
)
from tests.fingerprint.documents import pdf_whose_font_maps_a_code_to

LICENCES = Path("/usr/share/common-licenses")


def invented_text(seed: int, paragraphs: int = 12) -> str:
    """Prose in an invented vocabulary: shares no phrase with any real text or other seed."""
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mir", "tu", "ven", "sa", "dro", "pel", "qui", "na", "zor", "bi", "eth", "ul"]
    vocabulary = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 3))) for _ in range(900)]
    return "\n\n".join(
        " ".join(
            " ".join(rng.choice(vocabulary) for _ in range(rng.randint(6, 16))).capitalize() + "."
            for _ in range(rng.randint(3, 6))
        )
        for _ in range(paragraphs)
    )


def system_text(name: str) -> str:
    path = LICENCES / name
    if not path.exists():
        pytest.skip(f"{path} is not installed (Debian base-files provides it)")
    return path.read_text()


@pytest.fixture(scope="module")
def works() -> dict[str, str]:
    return {
        "invented-1": invented_text(1),
        "invented-2": invented_text(2),
        "gpl-3": system_text("GPL-3"),
        "apache-2": system_text("Apache-2.0"),
    }


@pytest.fixture(scope="module")
def index(works: dict[str, str]) -> TextIndex:
    text_index = TextIndex()
    for work_id, text in works.items():
        text_index.add(work_id, fingerprint_text(text))
    return text_index


def quarter(text: str, rng: random.Random) -> str:
    words = text.split()
    start = len(words) // 3
    return " ".join(words[start : start + len(words) // 4])


def reorder(text: str, rng: random.Random) -> str:
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    rng.shuffle(paragraphs)
    return "\n\n".join(paragraphs)


def modernize(text: str, rng: random.Random) -> str:
    """Every occurrence of the ten most frequent long words gets a new word, half of them two words."""
    frequent = Counter(word for word in re.findall(r"\w+", text) if len(word) >= 5).most_common(10)
    replacements = {word: f"neo{word}" if i % 2 else f"the {word}ish" for i, (word, _) in enumerate(frequent)}
    return re.sub(r"\w+", lambda m: replacements.get(m.group(), m.group()), text)


def swap_one_in_ten(text: str, rng: random.Random) -> str:
    words = text.split()
    for block in range(0, len(words) - 10, 10):
        words[block + rng.randrange(10)] = rng.choice(["banana", "quantum", "velvet", "orbit"])
    return " ".join(words)


def paste_into_article(text: str, rng: random.Random) -> str:
    article = invented_text(99, paragraphs=40)
    cut = len(article) // 2
    return f"{article[:cut]}\n\n{text}\n\n{article[cut:]}"


def restyle(text: str, rng: random.Random) -> str:
    shouted = re.sub(r"\s+", lambda m: rng.choice([" ", "\n", "\t  "]), text.upper())
    return re.sub(r"[.,;]", lambda m: rng.choice(["!", " -", ""]), shouted)


def to_markdown(text: str, rng: random.Random) -> str:
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "\n\n".join(
        f"## Part {i}\n\n**{p}** [see](https://example.org/{i})" for i, p in enumerate(paragraphs)
    )


def to_html(text: str, rng: random.Random) -> str:
    body = "".join(f"<p><em>{p.replace('&', '&amp;')}</em></p>" for p in re.split(r"\n\s*\n", text))
    return f"<html><head><script>var a = 1;</script></head><body>{body}</body></html>"


EDITS: dict[str, tuple[Callable[[str, random.Random], str], str]] = {
    "quarter": (quarter, "text/plain"),
    "reorder": (reorder, "text/plain"),
    "modernize": (modernize, "text/plain"),
    "swap_one_in_ten": (swap_one_in_ten, "text/plain"),
    "paste_into_article": (paste_into_article, "text/plain"),
    "restyle": (restyle, "text/plain"),
    "markdown": (to_markdown, "text/markdown"),
    "html": (to_html, "text/html"),
}


@pytest.mark.parametrize("source", ["invented-1", "gpl-3"])
@pytest.mark.parametrize("edit_name", sorted(EDITS))
def test_edited_copy_is_matched_first(
    works: dict[str, str], index: TextIndex, source: str, edit_name: str
) -> None:
    edit, media_type = EDITS[edit_name]
    edited = edit(works[source], random.Random(edit_name))
    matches = index.query(fingerprint_text(extract_text(edited.encode(), media_type)))
    assert [m.work_id for m in matches] == [source], f"{edit_name} copy of {source}"
    assert matches[0].method == "text-containment"
    assert matches[0].distance == pytest.approx(1 - matches[0].similarity)


@pytest.mark.parametrize("source", ["invented-1", "gpl-3"])
@pytest.mark.parametrize("edit_name", ["modernize", "swap_one_in_ten"])
def test_word_edits_interrupt_but_never_split_the_passage(
    works: dict[str, str], index: TextIndex, source: str, edit_name: str
) -> None:
    """Substituted words (some multi-word, shifting the alignment) are bridged, not cut out: only
    clusters of several edits within a few words may end a passage (hundreds of edits, <= 15 cuts)."""
    edit, _ = EDITS[edit_name]
    [match] = index.query(fingerprint_text(edit(works[source], random.Random(edit_name))))
    assert match.containment_of_registered > 0.95
    assert len(match.passages) <= 15


def test_quarter_copy_covers_query_not_registered(works: dict[str, str], index: TextIndex) -> None:
    match = index.query(fingerprint_text(quarter(works["invented-2"], random.Random(0))))[0]
    assert match.work_id == "invented-2"
    assert match.containment_of_query > 0.95
    assert 0.2 < match.containment_of_registered < 0.3


def test_short_work_is_found_whole_inside_an_article() -> None:
    slogan = "Every registered poem deserves a fair hearing before the quiet courts of tomorrow"
    text_index = TextIndex()
    text_index.add("slogan", fingerprint_text(slogan))
    article = invented_text(7, paragraphs=4)
    [match] = text_index.query(fingerprint_text(f"{article}\n{slogan.upper()}!\n{article}"))
    assert match.work_id == "slogan"
    assert match.containment_of_registered == 1.0
    assert (
        text_index.query(fingerprint_text(f"{article} every registered poem deserves a fair hearing")) == []
    )


def test_unrelated_texts_are_not_matched(index: TextIndex) -> None:
    assert index.query(fingerprint_text(invented_text(3))) == []
    assert [m.work_id for m in index.query(fingerprint_text(system_text("BSD")))] == []


def test_passages_report_word_offsets_in_both_texts(works: dict[str, str]) -> None:
    registered = fingerprint_text(works["invented-1"])
    filler = normalize_words(invented_text(50, paragraphs=3))
    copied = registered.words[200:320]
    query = fingerprint_text(" ".join(filler[:150] + copied + filler[150:]))
    text_index = TextIndex()
    text_index.add("work", registered)
    [match] = text_index.query(query)
    assert isinstance(match, TextMatch)
    [passage] = match.passages
    assert passage["registered"] == [200, 320]
    assert passage["query"] == [150, 270]
    assert str(passage["snippet"]).startswith(" ".join(copied[:10]))
    assert match.containment_of_registered == pytest.approx(120 / len(registered.words), abs=1e-6)


def test_html_extraction_keeps_visible_text_only() -> None:
    html = (
        b"<html><head><style>p {color: red}</style></head><body>"
        b"<script>var secret = 1;</script><p>Fish &amp; chips</p><p>caf\xc3\xa9<br>menu</p></body></html>"
    )
    assert normalize_words(extract_text(html, "text/html; charset=utf-8")) == (
        "fish",
        "chips",
        "cafe",
        "menu",
    )


def test_html_with_unclosed_head_keeps_its_body() -> None:
    html = b"<html><head><title>Poem</title><meta charset=utf-8><body><p>roses are red</p></html>"
    assert normalize_words(extract_text(html, "text/html")) == ("poem", "roses", "are", "red")


def test_markdown_extraction_drops_link_targets() -> None:
    markdown = b"# Title\n\nSee [the docs](https://example.org/path/x) and *this*.\n\n[ref]: https://x.y/z\n"
    assert normalize_words(extract_text(markdown, "text/markdown")) == (
        "title",
        "see",
        "the",
        "docs",
        "and",
        "this",
    )


def test_pdf_text_is_extracted_and_matched(works: dict[str, str], index: TextIndex) -> None:
    fpdf = pytest.importorskip("fpdf", reason="fpdf2 is needed to write a PDF in the test")
    pdf = fpdf.FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=10)
    pdf.multi_cell(0, 5, quarter(works["invented-1"], random.Random(0)))
    matches = index.query(fingerprint_text(extract_text(bytes(pdf.output()), "application/pdf")))
    assert [m.work_id for m in matches] == ["invented-1"]


def test_image_only_pdf_is_reported_as_having_no_text() -> None:
    fpdf = pytest.importorskip("fpdf", reason="fpdf2 is needed to write a PDF in the test")
    pdf = fpdf.FPDF()
    pdf.add_page()
    pdf.rect(10, 10, 50, 50)
    with pytest.raises(TextFingerprintError, match="no extractable text"):
        extract_text(bytes(pdf.output()), "application/pdf")


@pytest.mark.parametrize(
    ("data", "media_type"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "text/plain"),
        (random.Random(1).randbytes(4000), "text/markdown"),
        (b"\x01\x02\x03\x04 hello \x05\x06\x07\x08\x0e\x0f", "text/html"),
        (b"%PDF-1.7 this is not really a pdf", "application/pdf"),
        (b"plain words", "image/png"),
    ],
)
def test_binary_or_unsupported_input_raises_clear_error(data: bytes, media_type: str) -> None:
    with pytest.raises(TextFingerprintError) as raised:
        extract_text(data, media_type)
    assert str(raised.value).endswith(".")


def test_legacy_encodings_and_utf16_decode() -> None:
    assert extract_text("Café crème".encode("cp1252"), "text/plain") == "Café crème"
    assert extract_text("Grüße".encode("utf-16"), "text/plain") == "Grüße"
    assert extract_text("Grüße".encode("utf-16-le"), "text/plain; charset=UTF-16LE") == "Grüße"


def test_too_short_text_raises() -> None:
    with pytest.raises(TextFingerprintError, match="at least 3"):
        fingerprint_text("two words")


def test_serialisation_round_trip_and_corruption() -> None:
    fp = fingerprint_text(invented_text(4))
    restored = TextFingerprint.from_bytes(fp.to_bytes())
    assert restored == fp
    assert (restored.shingles == fp.shingles).all()
    assert fp.public()["words"] == len(fp.words)
    with pytest.raises(TextFingerprintError):
        TextFingerprint.from_bytes(b"something else")
    with pytest.raises(TextFingerprintError):
        TextFingerprint.from_bytes(fp.to_bytes()[:20] + b"garbage")


def test_re_adding_a_work_replaces_it(works: dict[str, str]) -> None:
    text_index = TextIndex()
    text_index.add("w", fingerprint_text(works["invented-1"]))
    text_index.add("w", fingerprint_text(works["invented-2"]))
    assert len(text_index) == 1
    assert text_index.query(fingerprint_text(works["invented-1"])) == []
    assert [m.work_id for m in text_index.query(fingerprint_text(works["invented-2"]))] == ["w"]


def test_concurrent_adds_and_queries_are_consistent() -> None:
    fingerprints = [fingerprint_text(invented_text(100 + i, paragraphs=3)) for i in range(16)]
    text_index = TextIndex()
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for i in range(offset, len(fingerprints), 4):
                text_index.add(f"w{i}", fingerprints[i])
                assert [m.work_id for m in text_index.query(fingerprints[i])] == [f"w{i}"]
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(text_index) == len(fingerprints)


def test_cjk_text_is_tokenised_per_character() -> None:
    assert normalize_words("知的財産の登録") == ("知", "的", "財", "産", "の", "登", "録")


@pytest.mark.parametrize(
    ("document", "media_type"),
    [
        ("<a " * 20_000, "text/html"),  # Python 3.11's HTMLParser: 28 s in-process
        ("[a](" * 200_000, "text/markdown"),  # the link pattern rescans every unclosed bracket
    ],
    ids=["html", "markdown"],
)
def test_a_document_built_to_be_slow_to_parse_is_stopped_at_the_cpu_limit(
    document: str, media_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(text_module, "EXTRACTION_CPU_SECONDS", 1)
    with pytest.raises(TextFingerprintError, match="took more than 1 s of processing"):
        extract_text(document.encode(), media_type)


def test_parsed_documents_keep_their_text_and_their_reasons_across_the_child_process() -> None:
    words = "café, 東京 \U0001f600"
    assert extract_text(f"<p>{words}</p>".encode(), "text/html; charset=utf-8") == f"\n{words}\n"
    with pytest.raises(TextFingerprintError, match="binary data"):
        extract_text(bytes(range(32)) * 10, "text/markdown")


def test_a_tiny_pdf_claiming_more_text_than_the_limit_is_refused_by_the_reader() -> None:
    """2 kB: 40,000 codes each mapped to 256 x U+FDFA. It once cost the server 32 s and 7 GB, then a 500."""
    pdf = pdf_whose_font_maps_a_code_to("\ufdfa" * 256, codes=40_000)
    assert len(pdf) < 2048
    with pytest.raises(TextFingerprintError, match="too long to fingerprint: at least 10,240,000 characters"):
        extract_text(pdf, "application/pdf")


def test_a_pdf_reader_that_runs_out_of_memory_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text_module, "EXTRACTION_MEMORY_BYTES", 400 * 1024**2)  # the reader starts in ~180 MB
    with pytest.raises(TextFingerprintError, match="needed more than 400 MB of memory"):
        extract_text(pdf_whose_font_maps_a_code_to("\ufdfa" * 256, codes=1_000_000), "application/pdf")


def test_text_that_normalisation_would_expand_past_the_limit_is_refused_before_expanding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """NFKC turns U+FDFA into 18 characters and U+3316 into 6: the bound counts them per code point."""
    monkeypatch.setattr(text_module, "MAX_TEXT_CHARACTERS", 1_000)
    assert len(normalize_words("\ufdfa " * 52)) == 52 * 4  # 52 x 19 = 988 characters: within the limit
    with pytest.raises(TextFingerprintError, match="at least 1,007 characters once normalised"):
        normalize_words("\ufdfa " * 53)
    with pytest.raises(TextFingerprintError, match="at least 1,006 characters"):
        normalize_words("word " * 80 + "\u3316" * 101)  # 501 characters before NFKC
    with pytest.raises(TextFingerprintError, match="at least 1,001 characters"):
        normalize_words("x" * 1_001)


def test_at_full_size_the_expansion_bound_refuses_without_expanding() -> None:
    """600,000 x U+FDFA is 1.2 MB of UTF-16 and 10.8 million characters once normalised."""
    with pytest.raises(TextFingerprintError, match="at least 10,800,000 characters"):
        fingerprint_text("\ufdfa" * 600_000)


def test_marks_past_the_thirtieth_of_a_run_are_dropped_before_normalising() -> None:
    marks = "\u0301\u0316" * 40
    assert normalize_words(f"one e{marks} three") == ("one", "e", "three")
    tibetan = "\u0f40" + "\u0f73" * 40  # U+0F73 is a starter whose decomposition is two marks
    assert normalize_words(tibetan) == normalize_words("\u0f40" + "\u0f73" * 30)
    kept = text_module._cap_mark_runs(text_module._code_points(f"a{marks}b{marks[:30]}c"))
    assert text_module._text_of(kept) == f"a{marks[:30]}b{marks[:30]}c"


def test_a_long_run_of_marks_is_normalised_in_linear_time() -> None:
    """CPython sorts marks by insertion: 200,000 alternating marks took 39 s and 2 million ~1,000 s.

    Run in a fresh process allowed 60 s of CPU: the whole run takes well under a second now.
    """
    probe = (
        "from ipx.fingerprint.text import normalize_words\n"
        "print(normalize_words('one a' + '\\u0301\\u0316' * 1_000_000 + ' three'))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        check=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CPU, (60, 61)),
    )
    assert run.stdout == b"('one', 'a', 'three')\n"


def test_words_are_normalised_as_before_in_every_script() -> None:
    """Accents, compatibility forms, case and the Greek iota subscript (which case folding turns into a letter)."""
    fullwidth_wide = "\uff37\uff49\uff44\uff45"
    assert normalize_words(f"Việt Nam \u1fb3 İstanbul ﬁne ① {fullwidth_wide} naïve ÅNGSTRÖM") == (
        "viet", "nam", "\u03b1\u03b9", "istanbul", "fine", "1", "wide", "naive", "angstrom"
    )
    assert normalize_words("한국어 텍스트") == ("한국어", "텍스트")


@pytest.mark.parametrize("seed", range(5))
def test_sorted_query_shingles_find_what_isin_finds(seed: int) -> None:
    """Aligning a 1-million-word query with 100 candidates took 39 s through np.isin, 1.5 s through SortedShingles."""
    rng = np.random.default_rng(seed)
    words = tuple(f"w{n}" for n in rng.integers(0, 50, size=400))  # a small vocabulary: shingles repeat
    query = TextFingerprint(words)
    registered = rng.choice(np.concatenate([query.shingles, rng.integers(0, 2**63, 200, dtype=np.uint64)]), 300)
    sorted_query = text_module.SortedShingles.of(query)
    assert np.array_equal(sorted_query.contains(registered), np.isin(registered, query.shingles))
    shared = np.unique(registered[np.isin(registered, query.shingles)])
    everywhere = sorted_query.positions_of(shared, first=len(words))
    assert np.array_equal(everywhere, np.flatnonzero(np.isin(query.shingles, shared)))
    assert sorted_query.counts(shared).tolist() == [int((query.shingles == v).sum()) for v in shared]
    first_two = [p for p in everywhere.tolist() if (query.shingles[: p + 1] == query.shingles[p]).sum() <= 2]
    assert sorted_query.positions_of(shared, first=2).tolist() == first_two
    assert len(sorted_query.positions_of(shared[:0], first=2)) == 0


def test_more_words_than_the_limit_are_refused_and_every_cjk_character_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """9.9 million ideographs are under the character limit and were 9.9 million words: 21 s and 1.6 GB."""
    monkeypatch.setattr(text_module, "MAX_TEXT_WORDS", 100)
    assert len(normalize_words("word " * 100)) == 100
    assert len(normalize_words("\u4e00" * 100)) == 100
    for too_long in ("word " * 101, "\u4e00" * 101):
        with pytest.raises(TextFingerprintError, match="more than 100 words"):
            normalize_words(too_long)


@pytest.mark.parametrize(
    "media_type",
    [
        "text/plain; charset=undefined",  # a codec that always raises a bare UnicodeError: was a 500
        "text/plain; charset=punycode",  # quadratic: 400 kB took 10-15 s
        "text/plain; charset=idna",
        "text/html; charset=utf-8\x00",  # a NUL in the child's argv: ValueError
        "text/markdown; x=\ud800",  # a lone surrogate in argv: UnicodeEncodeError
        "text/html; " + "a" * 200_000,  # "Argument list too long": OSError
    ],
    ids=["undefined", "punycode", "idna", "nul", "surrogate", "long-parameters"],
)
def test_media_type_parameters_that_are_no_charset_are_ignored(media_type: str) -> None:
    assert extract_text(b"hello wide world", media_type).strip() == "hello wide world"


def test_a_pdf_readers_repair_messages_stay_out_of_the_reason_given() -> None:
    """pypdf logs what it repairs to stderr, which became the note: 6 million characters for one 3 MB PDF."""
    pdf = pdf_whose_font_maps_a_code_to("x", codes=0)
    head, _, tail = pdf.rpartition(b"startxref\n")
    offset, _, rest = tail.partition(b"\n")
    misplaced = head + b"startxref\n%d\n" % (int(offset) + 7) + rest  # pypdf: "incorrect startxref pointer"
    with pytest.raises(TextFingerprintError) as refused:
        extract_text(misplaced, "application/pdf")
    assert str(refused.value) == "The PDF has no extractable text (it may be a scanned image)."


def test_shingles_that_pair_too_often_start_no_passage() -> None:
    """A query over a tiny vocabulary against a work holding each of its shingles a few times: every query word hit
    up to 8 registered positions and started a chain for each (a 2 MB query: 8 million chains, 30 s, 1 GB)."""
    rng = random.Random(3)
    vocabulary = ["ka", "lo", "mir", "tu", "ven", "sa"]
    registered = fingerprint_text(" ".join(rng.choice(vocabulary) for _ in range(2_000)))
    query = fingerprint_text(" ".join(rng.choice(vocabulary) for _ in range(20_000)))
    assert text_module._seed_chains(registered.shingles, text_module.SortedShingles.of(query)) == []


def test_a_work_pasted_into_a_query_a_thousand_times_is_found_by_its_first_copies(works: dict[str, str]) -> None:
    registered = fingerprint_text(works["invented-1"])
    query = fingerprint_text(" ".join([works["invented-1"]] * 1_000))
    chains = text_module._seed_chains(registered.shingles, text_module.SortedShingles.of(query))
    assert max(chain.query_end for chain in chains) < 9 * len(registered.words)  # only the first 8 copies aligned
    match = compare("invented-1", registered, query)
    assert match is not None and match.containment_of_registered > 0.99


def test_a_work_shuffled_in_short_pieces_is_covered_piece_by_piece() -> None:
    """8,000 such pieces took 21 s when each passage was checked against every kept one in Python."""
    rng = random.Random(4)
    words = invented_text(5, paragraphs=60).split()
    pieces = [words[start : start + 12] for start in range(0, len(words) - 11, 12)]
    shuffled = pieces[:]
    rng.shuffle(shuffled)
    alignment = text_module.align(
        fingerprint_text(" ".join(" ".join(piece) for piece in pieces)),
        fingerprint_text(" ".join(" ".join(piece) for piece in shuffled)),
    )
    assert alignment.containment_of_registered > 0.9
    assert len(alignment.passages) > 0.9 * len(pieces)
