"""One front door to every fingerprint kind and its index, for the registry and public verification.

Each app worker keeps its own in-memory indexes. They are rebuilt from the `work_fingerprints` table at
start-up and caught up before every query (rows with a log index above the last one loaded), so a work
registered through one worker is found by all of them. Log indexes commit in order — appends hold the
log lock until commit — so "everything above the last index seen" never skips a row.

The image index keeps only its search structures in memory; a query reads its few candidates' fingerprints
(keypoints and thumbnails, at most 24 pictures) back from that table, in the request's own session.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.orm import Session

from ipx.errors import InvalidInput, PayloadTooLarge, ServiceBusy
from ipx.fingerprint import audio, image, text
from ipx.fingerprint.index import FetchFingerprints, ImageIndex
from ipx.fingerprint.pixels import Frame
from ipx.registry.models import WorkFingerprint

IMAGE, TEXT, AUDIO = "image", "text", "audio"
CATCH_UP_BATCH = 1000
TEXT_MEDIA_TYPES = {"application/pdf", "application/xhtml+xml", "application/json", "application/xml"}


def _pillow_reads_format(data: bytes) -> bool:
    """Whether the bytes start like an image format Pillow knows (content sniffers guess some from weak hints)."""
    try:
        PILImage.open(io.BytesIO(data)).close()
    except PILImage.UnidentifiedImageError:
        return False
    except Exception:
        return True
    return True


@dataclass(frozen=True)
class ComputedFingerprints:
    """What one upload yields: a signed summary, serialized forms to store, parsed forms to query with."""

    public: dict[str, Any] = field(default_factory=dict)
    stored: dict[str, bytes] = field(default_factory=dict)
    parsed: dict[str, Any] = field(default_factory=dict)
    note: str | None = None  # why only exact matching applies, in words for the user
    # An image's decoded working copy (upright RGB, longer side <= image.WORK_SIDE), never stored: previews are made
    # from it, so that a picture is decoded once per upload (a 12-megapixel HEIC takes most of a second).
    picture: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def methods(self) -> list[str]:
        return ["sha256", *self.stored]


@dataclass(frozen=True)
class SimilarityMatch:
    work_id: str
    method: str
    distance: float
    similarity: float
    passages: list[dict[str, Any]] | None = None
    region: Frame | None = None  # images: where the registered picture appears in the query (see index.Match)
    registered_region: Frame | None = None  # and which part of the registered picture the query shows


def kind_for(media_type: str) -> str | None:
    if media_type.startswith("image/") and media_type != "image/svg+xml":
        return IMAGE
    if media_type.startswith("text/") or media_type in TEXT_MEDIA_TYPES or media_type == "image/svg+xml":
        return TEXT
    if media_type.startswith("audio/"):
        return AUDIO
    return None


def _image_fingerprints_in(session: Session) -> FetchFingerprints:
    """Registered image fingerprints by work id, as the image index asks for its candidates'."""

    def fetch(work_ids: Sequence[str]) -> dict[str, image.ImageFingerprint]:
        rows = session.execute(
            select(WorkFingerprint.work_id, WorkFingerprint.data).where(
                WorkFingerprint.kind == IMAGE, WorkFingerprint.work_id.in_(work_ids)
            )
        )
        return {work_id: image.ImageFingerprint.from_bytes(data) for work_id, data in rows}

    return fetch


class FingerprintEngine:
    def __init__(self, *, max_image_pixels: int, concurrency: int = 2, queue_seconds: float = 30.0) -> None:
        self.max_image_pixels = max_image_pixels
        self._turns = threading.BoundedSemaphore(concurrency)
        self._queue_seconds = queue_seconds
        self._images = ImageIndex(keep_fingerprints=False)  # candidates' fingerprints are read from the database
        self._texts = text.TextIndex()
        self._audio = audio.AudioIndex()
        self._indexed: set[tuple[str, str]] = set()
        self._loaded_seq = -1
        self._lock = threading.Lock()

    def compute(self, data: bytes, media_type: str) -> ComputedFingerprints:
        """Fingerprints for an upload, `concurrency` at a time: others wait up to `queue_seconds`, then ServiceBusy.

        One upload may legitimately cost ~2 GB for a second or more (a 100-megapixel WebP of 4 kB decodes through
        1.5 GB); the web server runs up to 40 requests at once, and four such verifies at once took 6 GB.
        """
        if not self._turns.acquire(timeout=self._queue_seconds):
            raise ServiceBusy(
                f"IPX is fingerprinting as many files as it can at once, and yours waited {self._queue_seconds:g} s "
                "for its turn. Nothing was stored; please send it again in a little while.",
                retry_after_seconds=10,
            )
        try:
            return self._compute(data, media_type)
        finally:
            self._turns.release()

    def _compute(self, data: bytes, media_type: str) -> ComputedFingerprints:
        """Fingerprints for an upload; bad images are refused, unsupported kinds are exact-only."""
        kind = kind_for(media_type)
        picture = None
        try:
            if kind == IMAGE and not _pillow_reads_format(data):
                return ComputedFingerprints(note=f"IPX cannot decode {media_type} images; exact SHA-256 only.")
            if kind == IMAGE:
                picture, original_size = image.decode_image(data, max_pixels=self.max_image_pixels)
                fingerprint: Any = image.fingerprint_picture(picture, original_size)
            elif kind == TEXT:
                fingerprint = text.fingerprint_text(text.extract_text(data, media_type))
            elif kind == AUDIO:
                fingerprint = audio.fingerprint_audio(data)
            else:
                return ComputedFingerprints(note=f"{media_type} files are matched by exact SHA-256 only.")
        except image.ImageTooLarge as exc:
            raise PayloadTooLarge(str(exc)) from exc
        except image.UnsuitableImage as exc:
            return ComputedFingerprints(note=f"{exc} Only exact SHA-256 matching applies.")
        except (image.ImageFingerprintError, audio.AudioFingerprintError) as exc:
            raise InvalidInput(str(exc)) from exc
        except (text.TextFingerprintError, audio.FpcalcNotFoundError) as exc:
            return ComputedFingerprints(note=f"{exc} Only exact SHA-256 matching applies.")
        return ComputedFingerprints(
            public={kind: fingerprint.public()}, stored={kind: fingerprint.to_bytes()}, parsed={kind: fingerprint},
            picture=picture,
        )

    def similar(self, computed: ComputedFingerprints, session: Session, *, limit: int = 20) -> list[SimilarityMatch]:
        matches: list[SimilarityMatch] = []
        if IMAGE in computed.parsed:
            matches += [
                SimilarityMatch(
                    m.work_id, m.method, m.distance, m.similarity,
                    region=m.region, registered_region=m.registered_region,
                )
                for m in self._images.query(computed.parsed[IMAGE], limit=limit, fetch=_image_fingerprints_in(session))
            ]
        if TEXT in computed.parsed:
            matches += [
                SimilarityMatch(m.work_id, m.method, m.distance, m.similarity, list(m.passages))
                for m in self._texts.query(computed.parsed[TEXT], limit=limit)
            ]
        if AUDIO in computed.parsed:
            matches += [
                SimilarityMatch(m.work_id, m.method, m.distance, m.similarity)
                for m in self._audio.query(computed.parsed[AUDIO], limit=limit)
            ]
        return sorted(matches, key=lambda m: (-m.similarity, m.distance))[:limit]

    def add(self, work_id: str, kind: str, fingerprint: Any) -> None:
        """Index one work once, whether it arrives from this worker's commit or from catch-up."""
        if self._claim(work_id, kind):
            self._index_of(kind).add(work_id, fingerprint)

    def _claim(self, work_id: str, kind: str) -> bool:
        """True the first time a work's fingerprint of this kind is seen: the caller indexes it."""
        with self._lock:
            if (work_id, kind) in self._indexed:
                return False
            self._indexed.add((work_id, kind))
            return True

    def _index_of(self, kind: str) -> ImageIndex | text.TextIndex | audio.AudioIndex:
        return {IMAGE: self._images, TEXT: self._texts, AUDIO: self._audio}[kind]

    def add_computed(self, work_id: str, computed: ComputedFingerprints) -> None:
        for kind, fingerprint in computed.parsed.items():
            self.add(work_id, kind, fingerprint)

    def catch_up(self, session: Session) -> int:
        """Load fingerprints committed since the last call (by any worker); returns how many.

        Rows stream in batches of CATCH_UP_BATCH: start-up reads every registered fingerprint (about 50 KB per
        image), which must not all sit in memory at once, and each batch of images joins the index in one append.
        """
        parsers = {
            IMAGE: image.ImageFingerprint.from_bytes,
            TEXT: text.TextFingerprint.from_bytes,
            AUDIO: audio.AudioFingerprint.from_bytes,
        }
        result = session.execute(
            select(WorkFingerprint.work_id, WorkFingerprint.kind, WorkFingerprint.data, WorkFingerprint.seq)
            .where(WorkFingerprint.seq > self._loaded_seq)
            .order_by(WorkFingerprint.seq)
            .execution_options(yield_per=CATCH_UP_BATCH)
        )
        loaded = 0
        for rows in result.partitions():
            images = []
            for work_id, kind, data, _ in rows:
                if not self._claim(work_id, kind):
                    continue
                if kind == IMAGE:
                    images.append((work_id, parsers[kind](data)))
                else:
                    self._index_of(kind).add(work_id, parsers[kind](data))
            self._images.add_many(images)
            self._loaded_seq = max(self._loaded_seq, rows[-1].seq)
            loaded += len(rows)
        return loaded
