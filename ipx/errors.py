"""Domain errors and their RFC 9457 problem+json rendering.

Services raise `IPXError` subclasses that know their HTTP status, so routes stay thin and every
failure reaches the client as a sentence a person understands.
"""

from __future__ import annotations

from typing import Any

PROBLEM_JSON = "application/problem+json"


class IPXError(Exception):
    status_code = 400
    title = "Bad request"
    headers: dict[str, str] = {}  # noqa: RUF012 -- read-only: subclasses replace it, never mutate it

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://ipx.example/problems/{self.slug}",
            "title": self.title,
            "status": self.status_code,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body

    @property
    def slug(self) -> str:
        return self.title.lower().replace(" ", "-")


class NotFound(IPXError):
    status_code = 404
    title = "Not found"


class Conflict(IPXError):
    status_code = 409
    title = "Conflict"


class Unauthorized(IPXError):
    status_code = 401
    title = "Not authenticated"


class Forbidden(IPXError):
    status_code = 403
    title = "Forbidden"


class Gone(IPXError):
    """What was there is no longer given out, for good: a revoked or ended license's file."""

    status_code = 410
    title = "Gone"


class LegallyWithheld(IPXError):
    """Withheld while a legal demand is handled (RFC 7725): content under an infringement complaint."""

    status_code = 451
    title = "Unavailable for legal reasons"


class InvalidInput(IPXError):
    status_code = 422
    title = "Invalid input"


class InternalError(IPXError):
    """A bug of IPX's, not the client's: said as a problem like any other error, the traceback kept in the log."""

    status_code = 500
    title = "Internal server error"


def over_upload_limit(limit: int) -> str:
    """The sentence for a file over the upload limit, wherever it is met: an upload, a file of a scanned folder."""
    return f"The file is larger than the upload limit of {limit / 1_048_576:.1f} MiB."


class PayloadTooLarge(IPXError):
    status_code = 413
    title = "Payload too large"


class RetryLater(IPXError):
    """A refusal that lifts by itself: the answer says when to come back (Retry-After)."""

    def __init__(self, detail: str, *, retry_after_seconds: int) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(retry_after_seconds)}


class ServiceBusy(RetryLater):
    """The server is doing as much of this work as it allows at once; the client should come back shortly."""

    status_code = 503
    title = "Service busy"


class TooManyAttempts(RetryLater):
    """Too many failed attempts at a guessable secret (a password) for one account, for now."""

    status_code = 429
    title = "Too many attempts"


def described_request_error(error: dict[str, Any]) -> str:
    """One validation error as a client's developer can act on it: Pydantic's words, except where they puzzle.

    FastAPI reports a malformed JSON body as "0: JSON decode error" (the 0 is a character position), a text
    field sent where a file belongs as "Expected UploadFile, received: <class 'str'>", and a JSON array or
    string sent for an object as "Input should be a valid dictionary or object to extract fields from".
    """
    location, message = error["loc"], error["msg"]
    if error["type"] == "json_invalid":
        return f"the body is not valid JSON: {error['ctx']['error']} at character {location[-1]}"
    if error["type"] == "model_attributes_type" and len(location) == 1:
        return f"the {location[0]} must be a JSON object"
    field = ".".join(map(str, location[1:])) or str(location[0])
    if "Expected UploadFile" in message:
        return f"{field}: attach a file here (a file part of a multipart/form-data body), not text"
    return f"{field}: {message}"


def plain_message(error: dict[str, Any]) -> str:
    """One field's validation error as a sentence for the person filling in the form, not Pydantic's wording
    ("String should have at least 10 characters", "Input should be a valid URL, relative URL without a base")."""
    kind, limits = error["type"], error.get("ctx") or {}
    if kind == "missing" or (kind == "string_too_short" and limits.get("min_length") == 1):
        return "This is required."
    if kind == "string_too_short":
        return f"Write at least {limits['min_length']} characters."
    if kind == "string_too_long":
        return f"Write at most {limits['max_length']} characters."
    if kind == "url_too_long":
        return f"The web address is too long: IPX keeps addresses of at most {limits['max_length']} characters."
    if kind.startswith("url_"):
        return "Give a full web address, starting with https://."
    message = str(error["msg"]).removeprefix("Value error, ").replace(
        "value is not a valid email address: ", "That is not an email address: ")
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")
