from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ipx.db import Base, UTCDateTime, utcnow


class WitnessedLog(Base):
    """The latest checkpoint this witness cosigned for one log: every later one must extend it."""

    __tablename__ = "witnessed_logs"

    origin: Mapped[str] = mapped_column(String(255), primary_key=True)
    tree_size: Mapped[int] = mapped_column(BigInteger)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)  # as received, the log's signature lines included: what staff can show
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
