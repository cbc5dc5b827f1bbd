"""Audio fingerprints (Chromaprint) matched by offset alignment and bit error rate.

``fpcalc -raw`` yields one 32-bit sub-fingerprint per ~0.124 s. Re-encoding, volume changes and
resampling flip a few bits of each; trimming or cutting a clip shifts the sequence. So matching
(1) collects candidate offsets from sub-fingerprints that survived unchanged (an inverted index on
the 32-bit values; a 10 s clip keeps a dozen), then (2) measures the bit error rate (BER) over the
whole aligned overlap with popcount. Unrelated audio sits near BER 0.5 (random bits); copies sit
far below. A minimum overlap keeps a few lucky seconds from deciding.
"""

from __future__ import annotations

import hashlib
import json
import math
import resource
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ITEM_SECONDS = 4096 / 3 / 11025
"""Chromaprint (algorithm 2) hop: 11025 Hz audio, 4096-sample frames overlapping by two thirds."""
MAX_BIT_ERROR_RATE = 0.20
"""Midway between the worst copy (0.085: 10 s clip of a 64 kbit/s mp3) and the closest distinct pair
over all offsets (0.34) in bench/audio_robustness.py; unrelated audio sits near 0.5."""
MIN_OVERLAP_SECONDS = 5.0
"""Short overlaps can reach a low BER by chance, and a few seconds are not evidence of copying.
Chromaprint drops ~2.6 s at the start of every file, so a clip needs ~8 s of audio to qualify."""
MAX_OFFSETS_PER_WORK = 4
"""Offsets (by votes) verified per candidate work; the true one is nearly always the first."""
MAX_CANDIDATE_WORKS = 50
MAX_POSITIONS_PER_VALUE = 4
"""Silence and sustained notes repeat one value many times; those positions say nothing about offset."""
MAX_POSTINGS_PER_VALUE = 2000
"""A value found at this many indexed positions (silence, hum shared by many works) is skipped as a
candidate source; alignment still checks it in the BER."""
FPCALC_TIMEOUT_SECONDS = 120.0
FPCALC_CPU_SECONDS = 2
FPCALC_CPU_SECONDS_PER_MB = 2
"""fpcalc's CPU allowance: 2 s plus 2 s per started MB of file (a 3-second clip takes 0.05 s). FFmpeg resamples
from whatever rate a header declares, at about 1 s of CPU per 100 MHz, so a 574-byte WAV claiming 2 GHz took 20 s
(found by fuzzing; up to 43 s for the largest 32-bit rate). Real files cost far less: 0.2 s per MB for 11 kbit/s
Vorbis, the costliest per byte measured (30 minutes in 2.5 MB), 0.008 s per MB for FLAC, 0.002 for WAV."""
FPCALC_MEMORY_BYTES = 1 << 30
"""fpcalc's address space: it uses about 35 MB whatever the file's length (a 30-minute WAV, FLAC or Vorbis); the
2 GHz WAV made it allocate 2 GB before failing."""

_FORMAT_MAGIC = b"IPX-AUDIO-FP/1\n"
_HEADER = struct.Struct("<dI")
_TOO_SHORT = "The audio is too short to fingerprint (Chromaprint needs about 3 seconds of sound)."


class AudioFingerprintError(ValueError):
    """The input cannot be fingerprinted as audio; the message is a sentence for the end user."""


class FpcalcNotFoundError(RuntimeError):
    """A deployment problem, not a user error: the Chromaprint command-line tool is missing."""


@dataclass(frozen=True)
class AudioFingerprint:
    """Raw Chromaprint sub-fingerprints (unsigned 32-bit) and the decoded duration in seconds."""

    values: tuple[int, ...]
    duration_seconds: float
    array: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "array", np.asarray(self.values, dtype=np.uint32))

    def to_bytes(self) -> bytes:
        return _FORMAT_MAGIC + _HEADER.pack(self.duration_seconds, len(self.values)) + self.array.tobytes()

    @classmethod
    def from_bytes(cls, blob: bytes) -> AudioFingerprint:
        body = blob[len(_FORMAT_MAGIC) :]
        if not blob.startswith(_FORMAT_MAGIC) or len(body) < _HEADER.size:
            raise AudioFingerprintError("The data is not a serialised IPX audio fingerprint.")
        duration, count = _HEADER.unpack_from(body)
        if len(body) != _HEADER.size + 4 * count:
            raise AudioFingerprintError("The serialised audio fingerprint is truncated or corrupt.")
        values = np.frombuffer(body, dtype="<u4", offset=_HEADER.size)
        return cls(tuple(values.tolist()), duration)

    def public(self) -> dict[str, float | int | str]:
        return {
            "algorithm": "chromaprint-2",
            "duration_seconds": round(self.duration_seconds, 3),
            "items": len(self.values),
            "chromaprint_sha256": hashlib.sha256(self.array.astype("<u4").tobytes()).hexdigest(),
        }


def fingerprint_audio(data: bytes, *, timeout: float = FPCALC_TIMEOUT_SECONDS) -> AudioFingerprint:
    """Decode any format FFmpeg reads (wav, mp3, ogg, flac, ...) and fingerprint the whole file."""
    if not data:
        raise AudioFingerprintError("The audio file is empty.")
    fpcalc = shutil.which("fpcalc")
    if fpcalc is None:
        raise FpcalcNotFoundError(
            "fpcalc (Chromaprint) is not installed; install the Debian package libchromaprint-tools."
        )
    with tempfile.TemporaryDirectory(prefix="ipx-audio-") as directory:
        path = Path(directory) / "input"
        path.write_bytes(data)
        cpu_seconds = FPCALC_CPU_SECONDS + math.ceil(len(data) / 1e6) * FPCALC_CPU_SECONDS_PER_MB
        with subprocess.Popen(
            [fpcalc, "-raw", "-json", "-length", "0", str(path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ) as process:  # fmt: skip
            _limit(process.pid, cpu_seconds)
            try:
                stdout, stderr = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired as exc:
                process.kill()
                message = f"Decoding the audio took longer than {timeout:.0f} seconds."
                raise AudioFingerprintError(message) from exc
    if process.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        raise AudioFingerprintError(
            f"Decoding the audio took more than {cpu_seconds} s of processing, far more than a file of this size "
            "needs; its header is probably damaged (an absurd sample rate, say)."
        )
    # fpcalc exits non-zero on a harmless "End of file" decode warning too, so trust the JSON, not the code.
    if "Empty fingerprint" in stderr:
        raise AudioFingerprintError(_TOO_SHORT)
    try:
        parsed = json.loads(stdout)
        values = tuple(int(value) & 0xFFFFFFFF for value in parsed["fingerprint"])
        duration = float(parsed.get("duration", 0.0))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        reason = (stderr.strip().splitlines() or ["no output"])[-1].removeprefix("ERROR: ")
        raise AudioFingerprintError(f"The file could not be decoded as audio ({reason}).") from exc
    if not values:
        raise AudioFingerprintError(_TOO_SHORT)
    return AudioFingerprint(values, duration)


def _limit(pid: int, cpu_seconds: int) -> None:
    """Bound a started fpcalc's CPU time (SIGXCPU, then SIGKILL a second later) and address space.

    Set from outside just after the start rather than in preexec_fn, which can deadlock a threaded server; the
    CPU limit counts from the process's start anyway, and fpcalc spends its first milliseconds loading FFmpeg.
    """
    try:
        resource.prlimit(pid, resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        resource.prlimit(pid, resource.RLIMIT_AS, (FPCALC_MEMORY_BYTES, FPCALC_MEMORY_BYTES))
    except ProcessLookupError:
        pass  # it has already finished


@dataclass(frozen=True)
class AudioMatch:
    """``offset_seconds``: time in the registered work where the query starts (negative when the
    work starts inside the query); ``overlap_seconds``: aligned duration the BER was measured on."""

    work_id: str
    method: str
    distance: float
    similarity: float
    offset_seconds: float
    overlap_seconds: float


def bit_error_rate(registered: np.ndarray, query: np.ndarray, offset: int) -> tuple[float, int, int]:
    """(BER, overlap items, changing items) with query item 0 placed at registered item ``offset``.

    Changing items are those whose registered value differs from the previous one: silence or a held
    tone repeats one value, matches any other silence perfectly and so must not count as evidence.
    """
    start, end = max(0, offset), min(len(registered), offset + len(query))
    if end <= start:
        return 1.0, 0, 0
    window = registered[start:end]
    differing = np.bitwise_count(window ^ query[start - offset : end - offset])
    changing = 1 + int(np.count_nonzero(window[1:] != window[:-1]))
    return float(differing.sum()) / (32 * (end - start)), end - start, changing


def best_alignment(
    registered: AudioFingerprint, query: AudioFingerprint, offsets: Iterable[int]
) -> tuple[float, int, int] | None:
    """Lowest (BER, offset, overlap items) among ``offsets`` whose overlap holds at least
    MIN_OVERLAP_SECONDS of changing sound."""
    min_overlap_items = int(MIN_OVERLAP_SECONDS / ITEM_SECONDS)
    best: tuple[float, int, int] | None = None
    for offset in offsets:
        ber, overlap, changing = bit_error_rate(registered.array, query.array, offset)
        if changing >= min_overlap_items and (best is None or ber < best[0]):
            best = (ber, offset, overlap)
    return best


def compare(
    work_id: str, registered: AudioFingerprint, query: AudioFingerprint, offsets: Iterable[int]
) -> AudioMatch | None:
    """A match at the best candidate offset (each widened by +-1 item for sub-hop shifts), if a copy."""
    best = best_alignment(registered, query, {o + delta for o in offsets for delta in (-1, 0, 1)})
    if best is None or best[0] > MAX_BIT_ERROR_RATE:
        return None
    ber, offset, overlap = best
    return AudioMatch(
        work_id=work_id,
        method="chromaprint",
        distance=round(ber, 6),
        similarity=round(max(0.0, 1.0 - 2.0 * ber), 6),
        offset_seconds=round(offset * ITEM_SECONDS, 3),
        overlap_seconds=round(overlap * ITEM_SECONDS, 3),
    )


def _informative_positions(values: Iterable[int]) -> Iterator[tuple[int, int]]:
    """(position, value) pairs, skipping a value after MAX_POSITIONS_PER_VALUE occurrences."""
    seen: Counter[int] = Counter()
    for position, value in enumerate(values):
        seen[value] += 1
        if seen[value] <= MAX_POSITIONS_PER_VALUE:
            yield position, value


class AudioIndex:
    """Registered audio fingerprints with an inverted index of sub-fingerprint values; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._works: dict[str, AudioFingerprint] = {}
        self._postings: dict[int, list[tuple[str, int]]] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._works)

    def add(self, work_id: str, fp: AudioFingerprint) -> None:
        """Register (or replace) a work's fingerprint."""
        with self._lock:
            if work_id in self._works:
                for value in set(self._works.pop(work_id).values):
                    self._postings[value] = [p for p in self._postings[value] if p[0] != work_id]
            self._works[work_id] = fp
            for position, value in _informative_positions(fp.values):
                self._postings.setdefault(value, []).append((work_id, position))

    def query(self, fp: AudioFingerprint, *, limit: int = 20) -> list[AudioMatch]:
        """Registered works the query copies (re-encoded, trimmed, louder/quieter, or an excerpt)."""
        votes: Counter[tuple[str, int]] = Counter()
        with self._lock:
            for query_position, value in _informative_positions(fp.values):
                postings = self._postings.get(value, ())
                if len(postings) <= MAX_POSTINGS_PER_VALUE:
                    for work_id, position in postings:
                        votes[(work_id, position - query_position)] += 1
            offsets_by_work: dict[str, list[int]] = {}
            for (work_id, offset), _ in votes.most_common():
                offsets = offsets_by_work.setdefault(work_id, [])
                if len(offsets) < MAX_OFFSETS_PER_WORK:
                    offsets.append(offset)
            candidates = [
                (work_id, self._works[work_id], offsets)
                for work_id, offsets in list(offsets_by_work.items())[:MAX_CANDIDATE_WORKS]
            ]
        matches = [
            match
            for work_id, registered, offsets in candidates
            if (match := compare(work_id, registered, fp, offsets)) is not None
        ]
        matches.sort(key=lambda m: (m.distance, m.work_id))
        return matches[:limit]
