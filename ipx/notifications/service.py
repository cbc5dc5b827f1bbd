"""Queue messages with the change they report; a relay sends queued messages after the transaction commits."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import format_datetime

import idna
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ipx.config import Settings
from ipx.db import transaction, utcnow
from ipx.notifications.models import OutboxMessage
from ipx.notifications.senders import FROM_ADDRESS, EmailSender, sender_named

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
MAX_SUBJECT = 300  # outbox_messages.subject
SITE = "{site}"  # written into bodies instead of the public URL, which only the relay's deployment knows
SECRET = "{secret}"  # written into bodies instead of a message's secret, which is forgotten once it is sent
_RELAY_SCHEDULED = "notifications.relay_scheduled"


@dataclass(frozen=True)
class Relay:
    """Where messages go and which public URL their site links point at."""

    sender: EmailSender
    public_url: str


def enqueue(
    session: Session, *, kind: str, to_email: str, subject: str, body: str,
    subject_type: str | None = None, subject_id: str | None = None, secret: str | None = None,
) -> OutboxMessage:
    """Queue a message; `secret` fills the body's {secret} when it is sent and is then erased from the outbox."""
    message = OutboxMessage(
        kind=kind, to_email=to_email, subject=_fitted_subject(subject), body=body, subject_type=subject_type,
        subject_id=subject_id, secret=secret,
    )
    session.add(message)
    return message


def _fitted_subject(subject: str) -> str:
    """One line, within the column (a subject quoting a 500-character title was a 500 on PostgreSQL)."""
    folded = " ".join(subject.split())
    return folded if len(folded) <= MAX_SUBJECT else folded[: MAX_SUBJECT - 1].rstrip() + "…"


def as_email(message: OutboxMessage, public_url: str) -> EmailMessage:
    address = _mailbox(message.to_email)
    # An address with a non-ASCII local part can only travel as UTF-8 (RFC 6531): encoded-words are not allowed there.
    email = EmailMessage(policy=email_policy.default if address.isascii() else email_policy.SMTPUTF8)
    email["From"] = FROM_ADDRESS
    email["To"] = address
    email["Subject"] = _fitted_subject(message.subject)  # also for messages queued before subjects were fitted
    email["Date"] = format_datetime(message.created_at)
    email["Message-ID"] = f"<ipx-outbox-{message.id}@ipx.invalid>"
    body = message.body.replace(SITE, public_url.rstrip("/"))
    email.set_content(body.replace(SECRET, message.secret) if message.secret is not None else body)
    return email


def _mailbox(address: str) -> str:
    """The address as mail servers route it: an internationalised domain in its ASCII form, by today's IDNA rules
    (UTS 46, non-transitional). Python's own "idna" codec is IDNA 2003, which sends faß.de's mail to fass.de."""
    local, _, domain = address.rpartition("@")
    try:
        return f"{local}@{idna.encode(domain, uts46=True, transitional=False).decode('ascii')}"
    except idna.IDNAError:
        return address


def deliver_pending(session: Session, relay: Relay, *, limit: int = 100) -> int:
    """Send unsent messages oldest first; a failure is recorded and retried later, never blocks the others."""
    pending = session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.sent_at.is_(None), OutboxMessage.attempts < MAX_ATTEMPTS)
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # two relays at once (two requests, a tick) never send one message twice
    )
    sent = 0
    for message in pending:
        message.attempts += 1
        try:
            relay.sender.send(as_email(message, relay.public_url))
        except Exception as exc:  # one message that cannot be built or sent must not hold back the others
            logger.warning("outbox message %s not sent: %s", message.id, exc)
            message.last_error = f"{type(exc).__name__}: {exc}"
            continue
        message.sent_at, message.secret = utcnow(), None
        sent += 1
    return sent


def relay_after_commit(session: Session, relay: Relay) -> None:
    """Deliver the outbox in a fresh transaction once this session commits (rolled back work sends nothing)."""
    if session.info.get(_RELAY_SCHEDULED):
        return
    session.info[_RELAY_SCHEDULED] = True
    factory = sessionmaker(bind=session.get_bind(), expire_on_commit=False)
    effects: list[Callable[[], None]] = session.info.setdefault("after_commit", [])
    effects.append(lambda: deliver_in_own_transaction(factory, relay))


def deliver_in_own_transaction(factory: sessionmaker[Session], relay: Relay) -> None:
    with transaction(factory) as session:
        deliver_pending(session, relay)


def relay_for(settings: Settings) -> Relay:
    return Relay(sender_named(settings.email_sender, settings.data_dir / "outbox"), settings.public_url)
