"""One front door to every fingerprint kind and its index, for the registry and public verification.

Each app worker keeps its own in-memory indexes. They are rebuilt from the `work_fingerprints` table at
start-up and caught up before every query (rows with a log index above the last one loaded), so a work
registered through one worker is found by all of them. Log indexes commit in order — appends hold the
log lock until commit — so "everything above the last index seen" never skips a row. The start-up load runs on a
thread of its own: at 100k images it takes a minute, during which the worker serves everything but the uploads
that need the index.

The image index keeps only its search structures in memory; a query reads its few candidates' fingerprints
(keypoints and thumbnails, at most 24 pictures) back from that table, in the request's own session.
"""

from __future__ import annotations

import io
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from ipx.errors import InvalidInput, PayloadTooLarge, ServiceBusy
from ipx.fingerprint import audio, image, text
from ipx.fingerprint.index import FetchFingerprints, ImageIndex
from ipx.fingerprint.pixels import Frame
from ipx.registry.models import WorkFingerprint

IMAGE, TEXT, AUDIO = "image", "text", "audio"
CATCH_UP_BATCH = 1000
LOAD_RETRY_AFTER_SECONDS = 30  # told to clients before the load has timed its first batch

logger = logging.getLogger(__name__)
PARSERS: dict[str, Callable[[bytes], Any]] = {
    IMAGE: image.ImageFingerprint.from_bytes,
    TEXT: text.TextFingerprint.from_bytes,
    AUDIO: audio.AudioFingerprint.from_bytes,
}
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


@dataclass(frozen=True)
class LoadProgress:
    """How far a start-up load has got: rows loaded, rows there were when it began, and when it began."""

    loaded: int
    total: int
    started: float  # time.monotonic()

    def after(self, rows: int) -> LoadProgress:
        return LoadProgress(self.loaded + rows, self.total, self.started)

    def seconds_left(self) -> int:
        """The rest at the pace so far, for Retry-After (whole seconds, at least 1)."""
        if not self.loaded:
            return LOAD_RETRY_AFTER_SECONDS
        pace = (time.monotonic() - self.started) / self.loaded
        return max(1, math.ceil(pace * max(0, self.total - self.loaded)))


def _rows_after(session: Session, seq: int) -> Sequence[Row[tuple[str, str, bytes, int]]]:
    """The next batch of fingerprint rows with a log index above `seq`, in log order, never splitting a log index's
    rows (a work's kinds share its index), so that the next batch can start after the last index read."""
    columns = select(WorkFingerprint.work_id, WorkFingerprint.kind, WorkFingerprint.data, WorkFingerprint.seq)
    rows = session.execute(
        columns.where(WorkFingerprint.seq > seq).order_by(WorkFingerprint.seq).limit(CATCH_UP_BATCH)
    ).all()
    if len(rows) < CATCH_UP_BATCH:
        return rows
    if rows[0].seq != rows[-1].seq:
        return [row for row in rows if row.seq != rows[-1].seq]
    return session.execute(columns.where(WorkFingerprint.seq == rows[0].seq)).all()  # one index, more rows than a batch


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
        self._loaded = threading.Event()
        self._loaded.set()  # nothing to wait for until a start-up load begins
        self._stop_loading = threading.Event()
        self._loader: threading.Thread | None = None
        self._load_progress = LoadProgress(0, 0, time.monotonic())

    def start_loading(
        self, open_session: Callable[[], AbstractContextManager[Session]], then: Callable[[], None]
    ) -> None:
        """Load every registered fingerprint on a thread of its own, then call `then`; until it is done, uploads to
        fingerprint wait for it (`wait_for_load`).

        A restarted worker serves pages, the market and evidence at once instead of after a minute (100k images).
        A load that fails is logged and left to the requests: each one's `catch_up` goes on from where it stopped.
        """
        self._loaded.clear()

        def load() -> None:
            try:
                with open_session() as session:
                    total = session.scalar(select(func.count()).select_from(WorkFingerprint)) or 0
                self._load_progress = LoadProgress(0, total, time.monotonic())
                self._catch_up(open_session)
                if not self._stop_loading.is_set():
                    then()
            except Exception:
                logger.exception("Loading the similarity indexes failed; requests will catch up instead")
            finally:
                self._loaded.set()

        self._loader = threading.Thread(target=load, name="ipx-index-load", daemon=True)
        self._loader.start()

    def stop_loading(self) -> None:
        """Stop a start-up load at its next batch and wait for it: the app is shutting down."""
        self._stop_loading.set()
        if self._loader is not None:
            self._loader.join()

    def wait_for_load(self) -> None:
        """Return once the start-up load is done; after `queue_seconds` of it, ServiceBusy with how far it got.

        Without every registered work loaded, a search would answer "nothing similar" for a registered work, and a
        registration would miss the prior works it must be flagged against.
        """
        if self._loaded.wait(self._queue_seconds):
            return
        progress = self._load_progress
        seconds = progress.seconds_left()
        wait = f"{seconds} seconds" if seconds < 120 else f"{round(seconds / 60)} minutes"
        raise ServiceBusy(
            f"IPX has just restarted and is still loading the fingerprints of registered works ({progress.loaded:,} of "
            f"{progress.total:,}); comparing your file with them needs all of them. Nothing was stored; please send it "
            f"again in about {wait}.",
            retry_after_seconds=seconds,
        )

    def compute(self, data: bytes, media_type: str) -> ComputedFingerprints:
        """Fingerprints for an upload, `concurrency` at a time: others wait up to `queue_seconds`, then ServiceBusy.

        One upload may legitimately cost ~2 GB for a second or more (a 100-megapixel WebP of 4 kB decodes through
        1.5 GB); the web server runs up to 40 requests at once, and four such verifies at once took 6 GB. Fingerprints
        are computed to be searched: a kind with an index waits for its start-up load first, before the caller's first
        database statement (which on SQLite takes the write lock).
        """
        if kind_for(media_type) is not None:
            self.wait_for_load()
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
        self.wait_for_load()
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
        """Load fingerprints committed since the last call (by any worker), once the start-up load is done; returns
        how many."""
        self.wait_for_load()
        return self._catch_up(lambda: nullcontext(session))

    def _catch_up(self, open_session: Callable[[], AbstractContextManager[Session]]) -> int:
        """Rows in batches of CATCH_UP_BATCH, each read in a session of its own from `open_session`, then indexed.

        Start-up reads every registered fingerprint (about 50 KB per image), which must not all sit in memory at
        once, and each batch of images joins the index in one append. The start-up load reads each batch in a
        transaction of its own: on SQLite every transaction holds the write lock, and one for the whole load would
        stop every registration, login and sale for its minute. A stopped start-up load ends between batches.
        """
        loaded = 0
        while not self._stop_loading.is_set():
            with open_session() as session:
                rows = _rows_after(session, self._loaded_seq)
            if not rows:
                break
            # Parsed before any is claimed: a batch that fails here is read again by the next catch-up, instead of
            # leaving works marked as indexed that are not.
            parsed = [(work_id, kind, PARSERS[kind](data)) for work_id, kind, data, _ in rows]
            images = []
            for work_id, kind, fingerprint in parsed:
                if not self._claim(work_id, kind):
                    continue
                if kind == IMAGE:
                    images.append((work_id, fingerprint))
                else:
                    self._index_of(kind).add(work_id, fingerprint)
            self._images.add_many(images)
            self._loaded_seq = max(self._loaded_seq, rows[-1].seq)
            loaded += len(rows)
            self._load_progress = self._load_progress.after(len(rows))
        return loaded
