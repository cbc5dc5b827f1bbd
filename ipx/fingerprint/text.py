"""Text fingerprints that still find a registered work after a plagiarist has edited it.

Copies are rarely whole: an infringer takes a quarter of a chapter, reorders paragraphs, modernises
words, swaps one word in ten or pastes the passage into a longer article. Whole-document Jaccard
similarity misses nearly all of that, so matching here is passage based:

1. Normalise (NFKC, casefold, strip accents, punctuation and markup) into a word sequence.
2. Hash every 3-word shingle with its position; winnow the hashes (Schleimer et al., 2003) into a
   small set that is guaranteed to share a value with any copied run of >= 6 words.
3. An inverted index of winnowed hashes yields candidate works (it accepts incremental ``add``,
   which datasketch's ``MinHashLSHEnsemble`` does not: that one must be built in one go).
4. For each candidate, shingle seeds are chained along near-diagonals (tolerating substituted,
   inserted and deleted words) into passages; containment is the share of words covered by passages.

Only passage-level evidence counts, so the common phrases that any two English texts share
("in order to", "one of the") never add up to a match.
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import io
import logging
import re
import resource
import signal
import subprocess
import sys
import threading
import unicodedata
import warnings
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from itertools import islice

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SHINGLE_WORDS = 3
"""Short shingles survive one substituted word in ten: 0.9**3 = 73 % of them stay intact."""
WINNOW_WINDOW = 4
"""Any copied run of WINNOW_WINDOW + SHINGLE_WORDS - 1 = 6 words shares a winnowed hash."""
MAX_SEED_REPEATS = 8
"""A shingle repeated more often inside one work is refrain or boilerplate: it may extend a passage
but never start one."""
MAX_GAP_SHINGLES = 8
"""Consecutive seeds of one passage may be this far apart in the registered work (two nearby edited
words kill ~6 shingles); in the query the gap may differ by the drift."""
MAX_DIAGONAL_DRIFT = 3
"""Words inserted or deleted inside a passage shift the alignment by at most this much per step."""
MIN_PASSAGE_SEEDS = 4
MIN_PASSAGE_WORDS = 10
"""A passage is >= 10 words carried by >= 4 matching shingles; chance phrase overlaps are shorter."""
MIN_MATCHED_WORDS = 25
"""Below this many covered words a "match" is a quotation-sized coincidence, not a copy (a shorter
work must be covered whole; one under MIN_PASSAGE_WORDS words cannot be told from coincidence)."""
MIN_SIMILARITY = 0.30
"""Containment (of the registered work or of the query) needed to report a match ...
bench/text_robustness.py: distinct texts reach at most 0.18; copies at least 0.23 (a quarter of a
work inside an article three times its size, caught by the passage rule below), mostly > 0.95."""
MIN_LONG_PASSAGE_WORDS = 40
"""... unless one passage is this long: a copy whatever the surrounding text. Scattered boilerplate
(compiler output, legal phrases) forms many short passages, never one long one. Bench: distinct
texts reach at most 26 words; the smallest copied quarter 56."""
MAX_TEXT_CHARACTERS = 10_000_000
"""Longer texts (after NFKC, which turns one U+FDFA into 18 characters) are matched by SHA-256 only. Ten million
characters is about 1.7 million English words, longer than any novel; fingerprinting that takes ~2 s and 0.3 GB.
Without a bound a 2 kB PDF whose font maps each code to 256 x U+FDFA grew to 180 million characters in
normalisation: 32 s and 7 GB in the server's own process before a MemoryError."""
MAX_TEXT_WORDS = 2_000_000
"""Longer texts are matched by SHA-256 only too. Words, not characters, are what fingerprinting costs, and in Chinese
or Japanese every character is a word: 9.9 million ideographs (under the character limit) took 21 s and 1.6 GB."""
MAX_MARKS_IN_A_RUN = 30
"""Unicode's Stream-Safe Text Format bound. CPython sorts a run of combining marks by insertion: a letter followed
by 200,000 marks of alternating classes took 39 s to normalise. Marks are dropped from the words anyway, and no
writing system stacks more than a handful, so marks past the 30th of a run are dropped before normalising."""
MAX_PASSAGES = 10_000
"""Passages weighed per alignment, strongest first: each is checked against every one kept, and a 96,000-word work
shuffled in 12-word pieces makes 8,000 of them (21 s one pair at a time, 0.3 s in arrays). Ten thousand passages of
>= 10 words cover any copy that matters; past that, containment is a lower bound."""
MAX_CANDIDATES = 100
"""Works aligned exactly per query, ranked by shared winnowed hashes."""
SNIPPET_WORDS = 24

_FORMAT_MAGIC = b"IPX-TEXT-FP/1\n"
_CJK = r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
_TOKEN = re.compile(rf"{_CJK}|[^\W_]+")
"""Words are letter/digit runs; CJK characters count as words because those scripts use no spaces."""
_SHINGLE_MULTIPLIERS = (
    np.uint64(0x9E3779B97F4A7C15),
    np.uint64(0xC2B2AE3D27D4EB4F),
    np.uint64(0x165667B19E3779F9),
)


class TextFingerprintError(ValueError):
    """The input is not text we can fingerprint; the message is a sentence for the end user."""


# --------------------------------------------------------------------------- extraction


def extract_text(data: bytes, media_type: str) -> str:
    """Return the human-readable text of a document so markup and layout cannot hide a copy.

    HTML/XHTML lose tags, scripts and styles; Markdown loses link targets; PDF yields its text layer;
    any other ``text/*`` type, JSON and XML are read as plain text.

    PDF, HTML and Markdown are parsed in a child process allowed EXTRACTION_CPU_SECONDS of CPU and
    EXTRACTION_MEMORY_BYTES of address space (it starts in ~180 MB): their parsers can be made to spin, or to
    balloon, on small uploads. Python 3.11's HTMLParser is quadratic on some malformed markup (60 kB of "<a " took
    28 s), so are the Markdown link patterns on unclosed brackets, and pypdf spent 3.6 s on a 5 kB PDF whose page
    repeats one text operator 100,000 times (and a PDF can hold hundreds of such pages); a font's ToUnicode map can
    turn each byte of a page into 256 characters.
    """
    mime, charset = _parse_media_type(media_type)
    if mime in _PARSED_MEDIA_TYPES:
        return _extract_in_child(data, mime, charset)
    return _extract_here(data, mime, charset)


_NOT_CHARACTER_ENCODINGS = frozenset({"idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape"})
"""Text codecs Python would accept as a charset that are no character set: domain names, escape syntaxes, a codec
that always fails. Decoding 400 kB as punycode took 10-15 s (it is quadratic); 'undefined' raised a UnicodeError."""


def _parse_media_type(media_type: str) -> tuple[str, str | None]:
    """The bare media type, and the charset parameter as Python's codec name (None when absent or no charset)."""
    mime, _, params = media_type.partition(";")
    declared = re.search(r"charset\s*=\s*\"?([\w.:-]+)", params, re.IGNORECASE)
    try:
        charset = codecs.lookup(declared.group(1)).name if declared else None
    except LookupError:
        charset = None
    return mime.strip().lower(), None if charset in _NOT_CHARACTER_ENCODINGS else charset


EXTRACTION_CPU_SECONDS = 20
EXTRACTION_MEMORY_BYTES = 2 * 1024**3
_PARSED_MEDIA_TYPES = frozenset(
    {"application/pdf", "text/html", "application/xhtml+xml", "text/markdown", "text/x-markdown"}
)
_REFUSED_EXIT = 3  # the child's exit status when the document is not readable text (its reason on stderr)


def _extract_in_child(data: bytes, mime: str, charset: str | None) -> str:
    """`_extract_here` in `python -m ipx.fingerprint.text`, within the CPU and memory limits.

    Its arguments are a known media type and a codec's own name: never the upload's raw parameters, which once
    carried a NUL, a lone surrogate or 200 kB into argv (three different exceptions, each a 500).
    """
    limits = [str(EXTRACTION_CPU_SECONDS), str(EXTRACTION_MEMORY_BYTES)]
    command = [sys.executable, "-m", "ipx.fingerprint.text", mime, charset or "", *limits]
    too_costly = TextFingerprintError(
        f"Reading the text of this document took more than {EXTRACTION_CPU_SECONDS} s of processing, so IPX "
        "stopped (its markup or page content is built to be slow to parse)."
    )
    try:  # the wall-clock bound only matters on a machine too busy to give the child its CPU seconds
        child = subprocess.run(command, input=data, capture_output=True, timeout=3 * EXTRACTION_CPU_SECONDS)
    except subprocess.TimeoutExpired as exc:
        raise too_costly from exc
    if child.returncode == 0:
        return child.stdout.decode("utf-8", "surrogatepass")
    if child.returncode == _REFUSED_EXIT:
        raise TextFingerprintError(child.stderr.decode("utf-8", "replace"))
    if child.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        raise too_costly
    said = child.stderr.decode("utf-8", "replace").strip().splitlines()
    raise TextFingerprintError(
        f"The document's text could not be read (the reader stopped with status {child.returncode}: "
        f"{said[-1] if said else 'no message'})."
    )


def _child_main(mime: str, charset: str, cpu_seconds: int, memory_bytes: int) -> None:
    """Extract within the limits; an over-long text is refused here, so the pipe never carries more than ~40 MB.

    Stderr carries only the refusal shown to the user: pypdf logs its repairs there ("incorrect startxref pointer"),
    6 million characters of them for a 3 MB PDF repeating one dictionary key.
    """
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))  # SIGXCPU, then SIGKILL
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    try:
        text = _extract_here(sys.stdin.buffer.read(), mime, charset or None)
        _refuse_overlong(len(text))
    except TextFingerprintError as exc:
        sys.stderr.write(str(exc))
        sys.exit(_REFUSED_EXIT)
    except MemoryError:
        sys.stderr.write(
            f"Reading the text of this document needed more than {memory_bytes // 1024**2} MB of memory, so IPX "
            "stopped (its fonts or pages are built to expand into far more text than the file holds)."
        )
        sys.exit(_REFUSED_EXIT)
    sys.stdout.buffer.write(text.encode("utf-8", "surrogatepass"))


def _extract_here(data: bytes, mime: str, charset: str | None) -> str:
    if mime == "application/pdf":
        return _pdf_text(data)
    if mime in ("text/html", "application/xhtml+xml"):
        return _html_text(_decode(data, charset))
    if mime in ("text/markdown", "text/x-markdown"):
        return _markdown_text(_decode(data, charset))
    if mime.startswith("text/") or mime in ("application/json", "application/xml"):
        return _decode(data, charset)
    raise TextFingerprintError(f"Media type {mime or '(empty)'!r} is not a supported text format.")


_WITHOUT_CONTROLS = dict.fromkeys([*range(0x00, 0x09), *range(0x0E, 0x20), *range(0x7F, 0xA0)])
"""Deletes Unicode category Cc except the whitespace controls (tab, line and form feeds, carriage return). In C:
a Python loop over 100 MB of NULs labelled text/plain took 7 s (now 0.2 s), a regex's match list 1 GB."""


def _decode(data: bytes, charset: str | None) -> str:
    """Decode text bytes, refusing binary data instead of turning it into gibberish words."""
    boms = (
        (b"\xef\xbb\xbf", "utf-8-sig"),
        (b"\xff\xfe\x00\x00", "utf-32"),
        (b"\x00\x00\xfe\xff", "utf-32"),
        (b"\xff\xfe", "utf-16"),
        (b"\xfe\xff", "utf-16"),
    )
    bom_encoding = next((enc for bom, enc in boms if data.startswith(bom)), None)
    for encoding in filter(None, [bom_encoding] if bom_encoding else [charset, "utf-8", "cp1252"]):
        try:
            text = data.decode(encoding)
        except (UnicodeError, LookupError):  # UnicodeError, not only UnicodeDecodeError: some codecs raise it
            continue
        if len(text) - len(text.translate(_WITHOUT_CONTROLS)) > max(2, len(text) // 100):
            raise TextFingerprintError(
                "The file contains binary data (control characters), so it is not text."
            )
        return text
    raise TextFingerprintError("The file is not valid text in UTF-8, UTF-16 or Windows-1252.")


class _HTMLTextCollector(HTMLParser):
    _INVISIBLE = frozenset({"script", "style", "template", "noscript", "svg"})
    """Not "head": pages often never close it, which would hide the whole body."""
    _BLOCK = re.compile(r"p|div|br|li|tr|t[dh]|h[1-6]|section|article|blockquote|pre|title|hr|d[dt]")
    """Block elements end a line, so words in adjacent cells or paragraphs are never glued together."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._INVISIBLE:
            self._hidden_depth += 1
        if self._BLOCK.fullmatch(tag):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._INVISIBLE and self._hidden_depth:
            self._hidden_depth -= 1
        if self._BLOCK.fullmatch(tag):
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden_depth:
            self.parts.append(data)


def _html_text(html: str) -> str:
    """Visible text only: scripts, styles and the head would otherwise dilute containment."""
    collector = _HTMLTextCollector()
    collector.feed(html)
    collector.close()
    return "".join(collector.parts)


_MD_LINK_TARGET = re.compile(r"(!?\[[^\]]*\])\([^)]*\)")
_MD_REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*\S+.*$", re.MULTILINE)
_MD_HTML_TAG = re.compile(r"</?[A-Za-z][^>]*>")


def _markdown_text(markdown: str) -> str:
    """Drop link targets and inline HTML; emphasis and heading marks vanish as punctuation later."""
    text = _MD_LINK_TARGET.sub(r"\1", markdown)
    text = _MD_REFERENCE_DEFINITION.sub("", text)
    return _MD_HTML_TAG.sub(" ", text)


def _pdf_text(data: bytes) -> str:
    """Text layer of a PDF; a scanned (image-only) PDF is reported as such, never as an empty match."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise TextFingerprintError("The PDF is password protected, so its text cannot be read.")
        text = "\n".join(page.extract_text() or "" for page in reader.pages)
    except (TextFingerprintError, MemoryError):
        raise
    except Exception as exc:  # pypdf raises many exception types on malformed files
        raise TextFingerprintError(f"The file is not a readable PDF ({type(exc).__name__}).") from exc
    if not _TOKEN.search(text):
        raise TextFingerprintError("The PDF has no extractable text (it may be a scanned image).")
    return text


# --------------------------------------------------------------------------- fingerprint


def normalize_words(text: str) -> tuple[str, ...]:
    """Word sequence immune to case, width, accents, punctuation and whitespace changes.

    Words are interned: a vocabulary is far smaller than a text, so an index holding many works
    pays one pointer per word instead of one string object per word.
    """
    _refuse_overlong(len(text))
    code_points = _cap_mark_runs(_code_points(text))
    _refuse_overlong(_nfkc_length(code_points))
    nfkc = unicodedata.normalize("NFKC", _text_of(code_points))
    folded = _code_points(unicodedata.normalize("NFKD", nfkc.casefold()))
    is_mark, _ = _mark_tables()
    stripped = unicodedata.normalize("NFC", _text_of(folded[~is_mark[folded]]))
    words = tuple(map(sys.intern, map(re.Match.group, islice(_TOKEN.finditer(stripped), MAX_TEXT_WORDS + 1))))
    if len(words) > MAX_TEXT_WORDS:
        raise TextFingerprintError(
            f"The text is too long to fingerprint: more than {MAX_TEXT_WORDS:,} words (each Chinese, Japanese or "
            "Korean character counts as one), the most IPX compares."
        )
    return words


def _refuse_overlong(characters: int) -> None:
    if characters > MAX_TEXT_CHARACTERS:
        raise TextFingerprintError(
            f"The text is too long to fingerprint: at least {characters:,} characters once normalised, and IPX "
            f"compares texts of up to {MAX_TEXT_CHARACTERS:,} (longer than any novel)."
        )


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


def _text_of(code_points: np.ndarray) -> str:
    return code_points.tobytes().decode("utf-32-le", "surrogatepass")


def _cap_mark_runs(code_points: np.ndarray) -> np.ndarray:
    """Drop the characters past the MAX_MARKS_IN_A_RUN-th of every run of characters that decompose into marks."""
    _, decomposes_to_marks = _mark_tables()
    in_run = np.concatenate(([False], decomposes_to_marks[code_points], [False]))
    edges = np.flatnonzero(in_run[1:] != in_run[:-1])
    starts, ends = edges[::2], edges[1::2]
    too_long = ends - starts > MAX_MARKS_IN_A_RUN
    if not too_long.any():
        return code_points
    dropped = np.zeros(len(code_points) + 1, dtype=np.int8)
    dropped[starts[too_long] + MAX_MARKS_IN_A_RUN] = 1  # runs are separated, so no index is both a start and an end
    dropped[ends[too_long]] = -1
    return code_points[np.cumsum(dropped[:-1]) == 0]


def _nfkc_length(code_points: np.ndarray) -> int:
    """Length of the text once NFKC has expanded it, counted per distinct code point instead of expanding."""
    counts = np.bincount(code_points)
    present = np.flatnonzero(counts)
    growth = np.fromiter((_nfkc_growth(code_point) for code_point in present.tolist()), dtype=np.int64)
    return len(code_points) + int(counts[present] @ growth)


@functools.lru_cache(maxsize=1 << 16)  # bounded: an upload holding every code point must not grow every worker
def _nfkc_growth(code_point: int) -> int:
    return len(unicodedata.normalize("NFKC", chr(code_point))) - 1


@functools.cache
def _mark_tables() -> tuple[np.ndarray, np.ndarray]:
    """Per code point: is it a combining mark (canonical class > 0); does its NFKD start with one.

    Built once per process from the interpreter's own Unicode database (0.2 s), so the tables always agree with
    unicodedata: 912 marks, and five more characters made only of marks (U+0F73, U+0F75, U+0F81, U+FF9E, U+FF9F).
    """
    is_mark = np.zeros(sys.maxunicode + 1, dtype=bool)
    decomposes_to_marks = np.zeros_like(is_mark)
    for code_point in range(sys.maxunicode + 1):
        character = chr(code_point)
        if unicodedata.combining(character):
            is_mark[code_point] = decomposes_to_marks[code_point] = True
        elif unicodedata.decomposition(character):
            decomposes_to_marks[code_point] = unicodedata.combining(unicodedata.normalize("NFKD", character)[0]) > 0
    return is_mark, decomposes_to_marks


def _shingle_hashes(words: Sequence[str]) -> np.ndarray:
    """64-bit hash per shingle start position; blake2b keeps values stable across processes."""
    word_hashes = np.frombuffer(
        b"".join(hashlib.blake2b(word.encode(), digest_size=8).digest() for word in words), dtype="<u8"
    )
    count = len(words) - SHINGLE_WORDS + 1
    combined = np.zeros(count, dtype=np.uint64)
    for offset, multiplier in enumerate(_SHINGLE_MULTIPLIERS):
        combined ^= word_hashes[offset : offset + count] * multiplier
    return combined


def _winnow(hashes: np.ndarray) -> frozenset[int]:
    """Rightmost minimum of every window: identical windows pick identical hashes in any document."""
    if len(hashes) <= WINNOW_WINDOW:
        return frozenset({int(hashes.min())})
    windows = sliding_window_view(hashes, WINNOW_WINDOW)
    rightmost = WINNOW_WINDOW - 1 - np.argmin(windows[:, ::-1], axis=1)
    positions = np.unique(np.arange(len(windows)) + rightmost)
    return frozenset(int(value) for value in hashes[positions])


@dataclass(frozen=True)
class TextFingerprint:
    """Normalised word sequence of a text plus derived shingle hashes.

    The words are kept (compressed in ``to_bytes``) because passages must be reported with
    snippets and because hash parameters can change without re-reading the original files. Treat
    the serialised form as confidential as the work itself; ``public()`` reveals only a digest.
    """

    words: tuple[str, ...]
    shingles: np.ndarray = field(init=False, repr=False, compare=False)
    winnowed: frozenset[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.words) < SHINGLE_WORDS:
            raise TextFingerprintError(
                f"The text has {len(self.words)} words; fingerprinting needs at least {SHINGLE_WORDS}."
            )
        shingles = _shingle_hashes(self.words)
        object.__setattr__(self, "shingles", shingles)
        object.__setattr__(self, "winnowed", _winnow(shingles))

    def to_bytes(self) -> bytes:
        return _FORMAT_MAGIC + zlib.compress(" ".join(self.words).encode(), 9)

    @classmethod
    def from_bytes(cls, blob: bytes) -> TextFingerprint:
        if not blob.startswith(_FORMAT_MAGIC):
            raise TextFingerprintError("The data is not a serialised IPX text fingerprint.")
        try:
            words = zlib.decompress(blob[len(_FORMAT_MAGIC) :]).decode()
        except (zlib.error, UnicodeDecodeError) as exc:
            raise TextFingerprintError("The serialised text fingerprint is corrupt.") from exc
        return cls(tuple(map(sys.intern, words.split(" "))))

    def public(self) -> dict[str, int | str]:
        digest = hashlib.sha256(" ".join(self.words).encode()).hexdigest()
        return {"words": len(self.words), "winnowed_hashes": len(self.winnowed), "normalized_sha256": digest}


def fingerprint_text(text: str) -> TextFingerprint:
    return TextFingerprint(normalize_words(text))


# --------------------------------------------------------------------------- alignment


@dataclass(slots=True)
class _Chain:
    registered_start: int
    query_start: int
    registered_end: int
    query_end: int
    seeds: int = 1


@dataclass(frozen=True)
class TextMatch:
    """A registered work found in the query.

    Passage offsets are half-open WORD offsets into the normalised word sequences
    (``TextFingerprint.words``) of the registered work and of the query; the snippet is query text.
    """

    work_id: str
    method: str
    distance: float
    similarity: float
    containment_of_registered: float
    containment_of_query: float
    matched_words: int
    passages: list[dict[str, list[int] | str]]


_DRIFTS = sorted(range(-MAX_DIAGONAL_DRIFT, MAX_DIAGONAL_DRIFT + 1), key=abs)


@dataclass(frozen=True)
class SortedShingles:
    """A query's shingle hashes, sorted once so that each candidate is aligned in time proportional to its own size.

    np.isin sorts both arrays on every call: a 1-million-word query against 100 candidates spent 37 of 39 s there.
    """

    shingles: np.ndarray
    order: np.ndarray
    values: np.ndarray

    @classmethod
    def of(cls, fp: TextFingerprint) -> SortedShingles:
        order = np.argsort(fp.shingles, kind="stable")
        return cls(fp.shingles, order, fp.shingles[order])

    def contains(self, values: np.ndarray) -> np.ndarray:
        at = np.minimum(np.searchsorted(self.values, values), len(self.values) - 1)
        return self.values[at] == values

    def counts(self, distinct_values: np.ndarray) -> np.ndarray:
        """How often each of `distinct_values` occurs."""
        return np.searchsorted(self.values, distinct_values, "right") - np.searchsorted(self.values, distinct_values)

    def positions_of(self, distinct_values: np.ndarray, first: int) -> np.ndarray:
        """Positions, ascending, of the first `first` occurrences of each of `distinct_values`."""
        starts = np.searchsorted(self.values, distinct_values, "left")
        lengths = np.minimum(np.searchsorted(self.values, distinct_values, "right") - starts, first)
        ranges = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        return np.sort(self.order[ranges])  # a stable sort kept each value's positions ascending


def _seed_chains(registered: np.ndarray, query: SortedShingles) -> list[_Chain]:
    """Chain equal shingles along near-diagonals so edited words only interrupt, never split, passages.

    A shingle that pairs more than MAX_SEED_REPEATS times (its occurrences in the registered work times those in
    the query: "of this license", a refrain) may extend a chain that is already running but never starts one: it
    confirms an alignment without being able to invent one. Only its first MAX_SEED_REPEATS occurrences in the query
    are aligned: a work pasted into a query a thousand times is found by its first copies. Both bounds keep an
    alignment's cost linear in the texts' lengths (fuzzing: a 2 MB query over a 20-word vocabulary against a
    work holding each of its shingles 8 times made 8 million chains, 30 s and 1 GB).
    """
    shared = np.flatnonzero(query.contains(registered))
    positions: dict[int, list[int]] = {}
    for index in shared.tolist():
        positions.setdefault(int(registered[index]), []).append(index)
    shared_values = np.unique(registered[shared])
    in_query = dict(
        zip(shared_values.tolist(), np.minimum(query.counts(shared_values), MAX_SEED_REPEATS).tolist(), strict=True)
    )
    confirming: dict[int, set[int]] = {}  # positions of shingles that may only extend chains, as sets
    chains: list[_Chain] = []
    latest_on_diagonal: dict[int, _Chain] = {}
    running: list[_Chain] = []
    for query_index in query.positions_of(shared_values, first=MAX_SEED_REPEATS).tolist():
        value = int(query.shingles[query_index])
        hits = positions[value]
        frequent = len(hits) * in_query[value] > MAX_SEED_REPEATS
        if frequent:
            running = [
                c for c in running if query_index - c.query_end <= MAX_GAP_SHINGLES + MAX_DIAGONAL_DRIFT
            ]
            if not running:
                continue
            hit_set = confirming.get(value) or confirming.setdefault(value, set(hits))
            expected = {c.registered_end + query_index - c.query_end + d for c in running for d in _DRIFTS}
            hits = sorted(expected & hit_set)
        for registered_index in hits:
            diagonal = query_index - registered_index
            best = next(
                (
                    chain
                    for drift in _DRIFTS
                    if (chain := latest_on_diagonal.get(diagonal + drift)) is not None
                    and query_index > chain.query_end
                    and 0 < registered_index - chain.registered_end <= MAX_GAP_SHINGLES
                ),
                None,
            )
            if best is None:
                if frequent:
                    continue
                best = _Chain(registered_index, query_index, registered_index, query_index)
                chains.append(best)
                running.append(best)
            else:
                best.registered_end, best.query_end = registered_index, query_index
                best.seeds += 1
            latest_on_diagonal[diagonal] = best
    return chains


def _covered(spans: Iterable[tuple[int, int]]) -> int:
    total, reach = 0, 0
    for start, end in sorted(spans):
        start = max(start, reach)
        if end > start:
            total += end - start
            reach = end
    return total


def _much_inside(start: int, end: int, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Whether more than half of the span [start, end) lies inside each span [starts, ends)."""
    return np.minimum(end, ends) - np.maximum(start, starts) > (end - start) // 2


@dataclass(frozen=True)
class TextAlignment:
    """Raw passage evidence between a registered work and a query, before any decision."""

    passages: tuple[_Chain, ...]
    registered_words: int
    matched_words: int
    """Words of the registered work covered by passages."""
    containment_of_registered: float
    containment_of_query: float

    @property
    def similarity(self) -> float:
        """The larger containment: a quarter copied, or a whole work buried in an article, both score 1."""
        return max(self.containment_of_registered, self.containment_of_query)

    @property
    def longest_passage_words(self) -> int:
        return max((c.registered_end - c.registered_start + SHINGLE_WORDS for c in self.passages), default=0)

    @property
    def is_copy(self) -> bool:
        enough_words = min(MIN_MATCHED_WORDS, self.registered_words)
        return self.matched_words >= enough_words and (
            self.similarity >= MIN_SIMILARITY or self.longest_passage_words >= MIN_LONG_PASSAGE_WORDS
        )


def _one_to_one(chains: Iterable[_Chain]) -> tuple[_Chain, ...]:
    """Strongest chains first; a chain mostly re-using words of a kept one (either side) is dropped.

    Without this, boilerplate repeated in one text (compiler output, refrains) matches the single
    copy in the other text once per repetition and inflates containment.
    """
    ordered = sorted(chains, key=lambda c: (-c.seeds, c.query_start, c.registered_start))[:MAX_PASSAGES]
    spans = np.array(
        [(c.registered_start, c.registered_end + SHINGLE_WORDS, c.query_start, c.query_end + SHINGLE_WORDS)
         for c in ordered],
        dtype=np.int64,
    ).reshape(-1, 4)
    kept: list[_Chain] = []
    kept_spans = np.empty_like(spans)
    for chain, (registered_start, registered_end, query_start, query_end) in zip(ordered, spans.tolist(), strict=True):
        held = kept_spans[: len(kept)]
        if not (
            _much_inside(registered_start, registered_end, held[:, 0], held[:, 1]).any()
            or _much_inside(query_start, query_end, held[:, 2], held[:, 3]).any()
        ):
            kept_spans[len(kept)] = registered_start, registered_end, query_start, query_end
            kept.append(chain)
    return tuple(sorted(kept, key=lambda c: c.query_start))


def align(
    registered: TextFingerprint, query: TextFingerprint, sorted_query: SortedShingles | None = None
) -> TextAlignment:
    """Passages (>= MIN_PASSAGE_WORDS words, >= MIN_PASSAGE_SEEDS shingles) and the containments they give.

    `sorted_query` is `SortedShingles.of(query)`, for a caller aligning one query with many works.
    """
    passages = _one_to_one(
        chain
        for chain in _seed_chains(registered.shingles, sorted_query or SortedShingles.of(query))
        if chain.seeds >= MIN_PASSAGE_SEEDS
        and chain.query_end - chain.query_start + SHINGLE_WORDS >= MIN_PASSAGE_WORDS
    )
    matched_words = _covered((c.registered_start, c.registered_end + SHINGLE_WORDS) for c in passages)
    matched_query_words = _covered((c.query_start, c.query_end + SHINGLE_WORDS) for c in passages)
    return TextAlignment(
        passages=passages,
        registered_words=len(registered.words),
        matched_words=matched_words,
        containment_of_registered=matched_words / len(registered.words),
        containment_of_query=matched_query_words / len(query.words),
    )


def _report_passages(alignment: TextAlignment, query: TextFingerprint) -> list[dict[str, list[int] | str]]:
    """Passages in query order, each with the start of the query's words as a snippet."""
    reported: list[dict[str, list[int] | str]] = []
    for chain in alignment.passages:
        query_span = (chain.query_start, chain.query_end + SHINGLE_WORDS)
        snippet_words = query.words[query_span[0] : min(query_span[1], query_span[0] + SNIPPET_WORDS)]
        ellipsis = " …" if query_span[1] - query_span[0] > SNIPPET_WORDS else ""
        reported.append(
            {
                "registered": [chain.registered_start, chain.registered_end + SHINGLE_WORDS],
                "query": list(query_span),
                "snippet": " ".join(snippet_words) + ellipsis,
            }
        )
    return reported


def compare(
    work_id: str, registered: TextFingerprint, query: TextFingerprint, sorted_query: SortedShingles | None = None
) -> TextMatch | None:
    """A TextMatch when ``query`` copies ``registered`` (see TextAlignment.is_copy), else None."""
    alignment = align(registered, query, sorted_query)
    if not alignment.is_copy:
        return None
    return TextMatch(
        work_id=work_id,
        method="text-containment",
        distance=round(1.0 - alignment.similarity, 6),
        similarity=round(alignment.similarity, 6),
        containment_of_registered=round(alignment.containment_of_registered, 6),
        containment_of_query=round(alignment.containment_of_query, 6),
        matched_words=alignment.matched_words,
        passages=_report_passages(alignment, query),
    )


class TextIndex:
    """Registered text fingerprints with an inverted index of winnowed hashes; safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._works: dict[str, TextFingerprint] = {}
        self._postings: dict[int, set[str]] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._works)

    def add(self, work_id: str, fp: TextFingerprint) -> None:
        """Register (or replace) a work's fingerprint."""
        with self._lock:
            previous = self._works.pop(work_id, None)
            if previous is not None:
                for value in previous.winnowed:
                    self._postings[value].discard(work_id)
            self._works[work_id] = fp
            for value in fp.winnowed:
                self._postings.setdefault(value, set()).add(work_id)

    def query(self, fp: TextFingerprint, *, limit: int = 20) -> list[TextMatch]:
        """Registered works copied (wholly or in part) in ``fp``, most similar first."""
        with self._lock:
            shared: Counter[str] = Counter()
            for value in fp.winnowed:
                shared.update(self._postings.get(value, ()))
            candidates = [
                (work_id, self._works[work_id]) for work_id, _ in shared.most_common(MAX_CANDIDATES)
            ]
        matches = []
        sorted_query = SortedShingles.of(fp)
        for work_id, registered in candidates:
            match = compare(work_id, registered, fp, sorted_query)
            if match is not None:
                matches.append(match)
        matches.sort(key=lambda m: (-m.similarity, -m.matched_words, m.work_id))
        return matches[:limit]


if __name__ == "__main__":  # the child process of _extract_in_child
    _child_main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
