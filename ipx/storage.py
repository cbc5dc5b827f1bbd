"""Housekeeping across the database and the blob store."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ipx.blobs import BlobStore
from ipx.db import utcnow
from ipx.registry.models import Work


def sweep_orphan_blobs(session: Session, blobs: BlobStore, grace_seconds: int) -> list[str]:
    """Delete blobs no registration owns that are older than the grace period.

    A blob is written before its registration commits; if the process dies in between, the blob is
    an orphan. The grace period protects uploads still in flight, whose registration may yet commit.
    """
    cutoff = utcnow() - timedelta(seconds=grace_seconds)
    removed = []
    for blob in blobs.list():
        if blob.modified_at >= cutoff:
            continue
        if session.scalar(select(Work.id).where(Work.sha256 == blob.sha256).limit(1)) is None:
            # A registration may have stored it again since the listing (not committed, so unseen above). Only a
            # re-store landing between this read and the delete can still lose its file: microseconds, not seconds.
            renewed = blobs.modified_at(blob.sha256)
            if renewed is not None and renewed < cutoff:
                blobs.delete(blob.sha256)
                removed.append(blob.sha256)
    return removed
