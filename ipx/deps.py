"""FastAPI dependencies shared by every domain: the request's transaction, the caller, uploads.

Routes declare who may call them through the `Caller`, `Creator` and `Staff` aliases, so the
signature says it and OpenAPI shows it.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import BackgroundTasks, Depends, Query, Request, Response, UploadFile
from fastapi import Path as PathParameter
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from ipx.accounts import service as accounts_service
from ipx.accounts.service import Principal
from ipx.accounts.throttle import LoginThrottle
from ipx.config import Settings
from ipx.db import transaction
from ipx.errors import Forbidden, InvalidInput, PayloadTooLarge, Unauthorized, over_upload_limit
from ipx.notifications.service import deliver_in_own_transaction, relay_for
from ipx.registry.service import RegistryContext, Upload

SESSION_COOKIE = "ipx_session"
BIGINT_MAX = 2**63 - 1  # the largest integer SQLite and PostgreSQL's bigint hold
MAX_PAGE = 10_000
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request; side effects registered in session.info run only after commit."""
    with transaction(request.app.state.session_factory) as session:
        yield session


DbSession = Annotated[Session, Depends(get_session, scope="function")]
AppSettings = Annotated[Settings, Depends(get_settings)]


def outbox_relay(request: Request, settings: AppSettings, after_response: BackgroundTasks) -> None:
    """Send what the request queued in the outbox once its response is out (its transaction has committed by then,
    or rolled back and queued nothing): a mail server's round trip then delays no answer, so the answer's timing
    cannot tell whether mail was queued (a reset request for an address with an account took 0.3 s longer with a
    slow mail server)."""
    after_response.add_task(deliver_in_own_transaction, request.app.state.session_factory, relay_for(settings))


SendsMail = Depends(outbox_relay)


def no_store(response: Response) -> None:
    """An answer holding a secret (a token, an authenticator key, recovery codes) is kept by no cache (RFC 6749 5.1)."""
    response.headers["Cache-Control"] = "no-store"


NoStore = Depends(no_store)


def get_login_throttle(request: Request) -> LoginThrottle:
    return request.app.state.login_throttle


LoginLimits = Annotated[LoginThrottle, Depends(get_login_throttle)]


def get_registry(request: Request) -> RegistryContext:
    return request.app.state.registry


Registry = Annotated[RegistryContext, Depends(get_registry)]

# Integers from a URL that reach a query are bounded, so an absurd one is a 422 that names the limit
# instead of an overflow inside the database driver (a 500: found by fuzzing the OpenAPI schema).
Page = Annotated[int, Query(ge=1, le=MAX_PAGE, description="1-based; past page 10,000, narrow the search")]
StoredInteger = Annotated[int, PathParameter(ge=0, le=BIGINT_MAX)]


def page_of_results(page: str = "1") -> int:
    """A page's `?page=`: people edit these URLs by hand, so anything but a page number shows the nearest page."""
    try:
        return min(max(int(page), 1), MAX_PAGE)
    except ValueError:
        return 1


PageOfResults = Annotated[int, Depends(page_of_results)]


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443}


def web_origin(url: str) -> str:
    """scheme://host[:port] as a browser's Origin header spells it: lower case, without the scheme's default port.
    So IPX_PUBLIC_URL may be written "https://IPX.example:443/" and still match what browsers send."""
    parts = urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:  # not a port: matches nothing
        return f"{scheme}://{parts.netloc}"
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" if port in (None, DEFAULT_PORTS.get(scheme)) else f"{scheme}://{host}:{port}"


def own_origins(request: Request) -> set[str]:
    """IPX's public origin, and the one this request reached (a deployment reached under a second name)."""
    settings: Settings = request.app.state.settings
    return {web_origin(settings.public_url), web_origin(f"{request.url.scheme}://{request.headers.get('host', '')}")}


def sent_from_another_site(request: Request) -> bool:
    """An unsafe request a browser made from another website's page (its Origin is not IPX's). SameSite=Lax keeps
    the session cookie off most of these; this also covers older browsers and sibling subdomains, which count as
    the same site. Requests without an Origin (not from a browser page) are not judged."""
    origin = request.headers.get("origin")
    return request.method not in SAFE_METHODS and origin is not None and web_origin(origin) not in own_origins(request)


def caller_token(request: Request, bearer: Annotated[str | None, Depends(oauth2_scheme)]) -> str | None:
    """The bearer token or session cookie the request came with: the session a password change keeps."""
    return bearer or request.cookies.get(SESSION_COOKIE)


CallerToken = Annotated[str | None, Depends(caller_token)]


def optional_caller(request: Request, bearer: Annotated[str | None, Depends(oauth2_scheme)]) -> Principal | None:
    """The caller if a bearer token or session cookie is present; checked in its own short transaction.

    A bearer token must be valid (401). The session cookie is what a browser sends by itself, so it only counts
    when the request comes from IPX's own pages: on a request another website's page made, it is ignored (no
    ambient authority for forged requests, on the API as on pages); and a stale cookie means a visitor.
    """
    principal_for = partial(accounts_service.principal_for_token,
                            staff_need_two_factor=request.app.state.settings.staff_two_factor_required)
    if bearer is None:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie is None or sent_from_another_site(request):
            return None
        with transaction(request.app.state.session_factory) as session:
            try:
                return principal_for(session, cookie)
            except Unauthorized:
                return None
    with transaction(request.app.state.session_factory) as session:
        return principal_for(session, bearer)


def require_caller(caller: Annotated[Principal | None, Depends(optional_caller)]) -> Principal:
    if caller is None:
        raise Unauthorized("Log in first: send 'Authorization: Bearer <token>' from POST /api/v1/auth/token.")
    return caller


def staff_only(caller: Principal, refusal: str = "Only IPX staff may do this.") -> Principal:
    """The caller, if they may act as staff; else why not: a staff account still owing two-step verification is told
    so, anyone else gets `refusal`."""
    if caller.staff_without_two_factor:
        raise Forbidden(accounts_service.STAFF_NEED_TWO_FACTOR)
    if not caller.is_staff:
        raise Forbidden(refusal)
    return caller


def require_staff(caller: Annotated[Principal, Depends(require_caller)]) -> Principal:
    return staff_only(caller)


Anyone = Annotated[Principal | None, Depends(optional_caller)]
Caller = Annotated[Principal, Depends(require_caller)]
Creator = Caller  # every account may register works; the alias says why a route needs an account
Staff = Annotated[Principal, Depends(require_staff)]


async def receive_upload(file: UploadFile, settings: Settings, spool_dir: Path) -> Upload:
    """Copy the upload to a private temp file while hashing it; refuse it past the size limit.

    The body-size middleware already stops oversized requests mid-stream; this is the exact check on
    the file part itself. The caller deletes the temp file.
    """
    spool_dir.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    handle = tempfile.NamedTemporaryFile(dir=spool_dir, prefix="upload-", delete=False)  # noqa: SIM115
    path = Path(handle.name)
    try:
        with handle:
            while chunk := await file.read(1 << 20):
                size += len(chunk)
                if size > settings.max_upload_bytes:
                    raise PayloadTooLarge(over_upload_limit(settings.max_upload_bytes))
                digest.update(chunk)
                handle.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Upload(path, digest.hexdigest(), size, file.filename, file.content_type)


NO_FILE = "Choose a file: none was attached (through the API, send it as the form field “file”, multipart/form-data)."


def require_file(file: UploadFile | None) -> UploadFile:
    if file is None or (not file.filename and file.size in (None, 0)):
        raise InvalidInput(NO_FILE, errors=[
            {"loc": ["body", "file"], "msg": "Field required"}
        ])
    return file
