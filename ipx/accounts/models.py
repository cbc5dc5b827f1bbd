from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ipx.db import Base, UTCDateTime, trigram_index, utcnow


class Role(enum.StrEnum):
    creator = "creator"
    staff = "staff"
    admin = "admin"


STAFF_ROLES = frozenset({Role.staff, Role.admin})


class User(Base):
    __tablename__ = "users"
    __table_args__ = (trigram_index("ix_users_display_name_trigrams", "display_name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default=Role.creator.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    two_factor: Mapped[TwoFactor | None] = relationship(viewonly=True)

    @property
    def two_factor_enabled(self) -> bool:
        return self.two_factor is not None and self.two_factor.enabled_at is not None


class AccessToken(Base):
    """Opaque bearer tokens; only their SHA-256 is stored, so a database leak yields no live token."""

    __tablename__ = "access_tokens"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PasswordReset(Base):
    """A single-use link to choose a new password, mailed to the account's address; only its SHA-256 is stored."""

    __tablename__ = "password_resets"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TwoFactor(Base):
    """An account's authenticator app (TOTP): while `enabled_at` is None it is being set up and asks nothing at
    log-in. `last_step` is the time step of the last code accepted, so no code works twice."""

    __tablename__ = "two_factor"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    secret: Mapped[bytes] = mapped_column(LargeBinary(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_step: Mapped[int | None] = mapped_column(BigInteger)


class RecoveryCode(Base):
    """A single-use code that stands in for the authenticator when it is lost; only its SHA-256 is stored."""

    __tablename__ = "recovery_codes"

    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LoginChallenge(Base):
    """The second step of a log-in: the password was right, the authenticator's code is still owed. Short-lived,
    and spent after a few wrong codes, so the password must be given again."""

    __tablename__ = "login_challenges"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    failures: Mapped[int] = mapped_column(Integer, default=0)
