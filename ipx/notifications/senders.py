"""Email delivery behind one small interface; the default set-up writes .eml files nobody has to configure."""

from __future__ import annotations

import sys
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol, TextIO

FROM_ADDRESS = "IPX <no-reply@ipx.invalid>"


class EmailSender(Protocol):
    def send(self, message: EmailMessage) -> None: ...


class FileEmailSender:
    """Writes each message as an RFC 5322 .eml file: inspectable, and a mail server can pick them up later."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, message: EmailMessage) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = str(message["Message-ID"]).strip("<>").replace("@", "_at_")
        (self.directory / f"{name}.eml").write_bytes(bytes(message))


class ConsoleEmailSender:
    """Prints messages, for development runs where a terminal is the inbox."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def send(self, message: EmailMessage) -> None:
        self.stream.write(f"{message.as_string()}\n{'-' * 72}\n")


def sender_named(kind: str, outbox_dir: Path) -> EmailSender:
    if kind == "file":
        return FileEmailSender(outbox_dir)
    if kind == "console":
        return ConsoleEmailSender()
    raise ValueError(f"Unknown email sender {kind!r}: use 'file' or 'console'.")
