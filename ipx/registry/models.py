from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

# Imported, not only named: the mapper resolves Work.owner from it whoever imports Work (`ipx log witness` does alone).
from ipx.accounts.models import User
from ipx.db import Base, UTCDateTime, trigram_index, utcnow

# SQLite only auto-increments INTEGER PRIMARY KEY, PostgreSQL wants BIGINT for big logs.
BigId = BigInteger().with_variant(Integer, "sqlite")


class SigningKey(Base):
    """Public half of every key IPX ever signed with; the private half lives in the key directory."""

    __tablename__ = "signing_keys"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16), default="ed25519")
    public_key_pem: Mapped[str] = mapped_column(Text)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LogState(Base):
    """One row: the log's size and origin. Updating it is the append lock (row lock / SQLite write lock)."""

    __tablename__ = "log_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    origin: Mapped[str | None] = mapped_column(String(255))


class LogLeaf(Base):
    __tablename__ = "log_leaves"

    index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    entry_type: Mapped[str] = mapped_column(String(32))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    appended_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LogNode(Base):
    """Hash of the perfect subtree (level, index): proofs read O(log n) of these, never rehash leaves."""

    __tablename__ = "log_nodes"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class LogCheckpoint(Base):
    __tablename__ = "log_checkpoints"

    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(ForeignKey("signing_keys.key_id"))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CheckpointCosignature(Base):
    """A witness's verified cosignature line for a checkpoint (ipx/registry/witnesses.py): bundles carry it."""

    __tablename__ = "checkpoint_cosignatures"

    tree_size: Mapped[int] = mapped_column(ForeignKey("log_checkpoints.tree_size"), primary_key=True)
    witness: Mapped[str] = mapped_column(String(255), primary_key=True)
    line: Mapped[str] = mapped_column(Text)  # "— name base64(key id || time || signature)\n", as the witness sent it
    cosigned_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the time inside the cosignature


class LogTimestamp(Base):
    """An outside time-stamping authority's RFC 3161 token over a log entry's statement (ipx/registry/timestamps.py)."""

    __tablename__ = "log_timestamps"

    index: Mapped[int] = mapped_column(ForeignKey("log_leaves.index"), primary_key=True, autoincrement=False)
    authority_url: Mapped[str] = mapped_column(String(500))
    response: Mapped[bytes] = mapped_column(LargeBinary)  # the whole TimeStampResp, DER, as the authority sent it
    stamped_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the token's genTime


class Work(Base):
    __tablename__ = "works"
    __table_args__ = (
        UniqueConstraint("owner_id", "sha256", name="uq_works_owner_sha256"),
        trigram_index("ix_works_title_trigrams", "title"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(127))
    original_filename: Mapped[str | None] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(500), index=True)
    work_type: Mapped[str] = mapped_column(String(32))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    statement: Mapped[bytes] = mapped_column(LargeBinary)  # the JCS bytes that were signed and logged
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(ForeignKey("signing_keys.key_id"))
    log_index: Mapped[int] = mapped_column(BigInteger, unique=True)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    status: Mapped[str] = mapped_column(String(16), default="registered")
    # Lists of works show each one's registrant: search_works loads them with the page, in one query.
    owner: Mapped[User] = relationship(viewonly=True, lazy="raise_on_sql")


class PriorMatch(Base):
    """An earlier work of another account that a new registration matches: a flag staff review."""

    __tablename__ = "prior_matches"
    __table_args__ = (UniqueConstraint("work_id", "prior_work_id", name="uq_prior_matches_pair"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    work_id: Mapped[str] = mapped_column(ForeignKey("works.id"), index=True)
    prior_work_id: Mapped[str] = mapped_column(ForeignKey("works.id"), index=True)
    method: Mapped[str] = mapped_column(String(32))
    distance: Mapped[float] = mapped_column(Float)
    similarity: Mapped[float] = mapped_column(Float)
    # Pictures matched by keypoints: [left, top, right, bottom] fractions of the flagged work where the earlier one
    # appears, and of the earlier work that the flagged one shows (a crop's part); null otherwise.
    region_in_work: Mapped[list[float] | None] = mapped_column(JSON, nullable=True)
    region_in_prior_work: Mapped[list[float] | None] = mapped_column(JSON, nullable=True)
    review_status: Mapped[str] = mapped_column(String(16), default="open")  # open / cleared / upheld
    found_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkFingerprint(Base):
    """Serialized perceptual fingerprints, so every worker can rebuild its in-memory index."""

    __tablename__ = "work_fingerprints"

    work_id: Mapped[str] = mapped_column(ForeignKey("works.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    seq: Mapped[int] = mapped_column(BigInteger, index=True)  # log index, for catch-up by workers


class WorkPreview(Base):
    """A small JPEG of an image work, made once from the picture registration decoded (see registry.previews)."""

    __tablename__ = "work_previews"

    work_id: Mapped[str] = mapped_column(ForeignKey("works.id"), primary_key=True)
    side: Mapped[int] = mapped_column(SmallInteger, primary_key=True)  # the longest side it was made for
    jpeg: Mapped[bytes] = mapped_column(LargeBinary)
