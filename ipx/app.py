"""Application factory: settings -> database -> blob store -> keys -> routers -> pages."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartParser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ipx.accounts import api as accounts_api
from ipx.accounts import pages as accounts_pages
from ipx.accounts.throttle import LoginThrottle
from ipx.archive import api as archive_api
from ipx.archive import pages as archive_pages
from ipx.blobs import open_blob_store
from ipx.complaints import api as complaints_api
from ipx.complaints import pages as complaints_pages
from ipx.config import Settings, get_settings
from ipx.db import make_engine, make_session_factory, transaction
from ipx.errors import InternalError, IPXError, PayloadTooLarge, described_request_error
from ipx.fingerprint.engine import FingerprintEngine
from ipx.marketplace import api as marketplace_api
from ipx.marketplace import pages as marketplace_pages
from ipx.openapi import PROBLEM_RESPONSES, Problem, with_component_schemas
from ipx.registry import api as registry_api
from ipx.registry import keys, log
from ipx.registry.service import RegistryContext
from ipx.routing import methods_served_at, problem_response
from ipx.stats import api as stats_api
from ipx.stats import pages as stats_pages
from ipx.storage import sweep_orphan_blobs
from ipx.web import pages as web_pages
from ipx.web.headers import SecurityHeaders, security_headers
from ipx.web.templating import STATIC_DIR
from ipx.witness import api as witness_api

API_PREFIX = "/api/v1"
MULTIPART_OVERHEAD = 64 * 1024
HTTP_TITLES = {
    400: "Bad request", 404: "Not found", 405: "Method not allowed", 413: "Payload too large", 422: "Invalid input",
}


def _validation_problem(request: Request, exc: RequestValidationError) -> Response:
    errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
    where = "; ".join(described_request_error(e) for e in exc.errors())
    problem = IPXError(f"The request is not valid — {where}.", errors=errors)
    problem.status_code, problem.title = 422, "Invalid input"
    return problem_response(problem, request)


def _unexpected_problem(request: Request, exc: Exception) -> Response:
    """Whatever no other handler took: still a problem (or, for a page, the error page), never Starlette's bare
    "Internal Server Error". Starlette re-raises the exception after this response, so the server logs it."""
    problem = InternalError(
        "IPX failed while handling this request. The fault is ours and is logged for us to fix; what the request "
        "changed was not saved. Please try again, and if it keeps happening, tell us the time and this address."
    )
    # Starlette answers this from outside every middleware, SecurityHeaders included
    return _refusal(request, problem, security_headers(request.app.state.settings))


def _http_problem(request: Request, exc: StarletteHTTPException) -> Response:
    """Starlette's own refusals (no such path, a method the path does not take): a problem on the API, the error
    page for a person everywhere else."""
    problem = IPXError(_http_detail(request, exc))
    problem.status_code = exc.status_code
    problem.title = HTTP_TITLES.get(exc.status_code, "HTTP error")
    response = _refusal(request, problem, exc.headers)
    if exc.status_code == 405:
        response.headers["Allow"] = ", ".join(methods_served_at(request))
    return response


def _http_detail(request: Request, exc: StarletteHTTPException) -> str:
    """Starlette's "Not Found" as a sentence, on pages; the API keeps its terse detail, which clients may match."""
    if _is_api(request):
        return str(exc.detail)
    if exc.status_code == 404:
        return f"There is nothing at {request.url.path}. Check the address, or start again from the home page."
    if exc.status_code == 405:
        return f"{request.url.path} cannot be opened this way ({request.method}). Go back and use the page's links."
    return str(exc.detail)


class HeadAsGet:
    """HEAD answered as the GET it stands for, without the body (RFC 9110 §9.3.2): FastAPI's routes declare GET
    alone, so monitors and link checkers asking HEAD were told 405."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_headers_only)


class BodySizeLimit:
    """Abort a request whose body exceeds the limit while it streams in, before it is all received."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._reject(scope, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                # an HTTPException, because FastAPI turns other errors during body parsing into a 400
                raise HTTPException(413, self._message())
            return message

        await self.app(scope, limited_receive, send)

    def _message(self) -> str:
        mib = (self.limit - MULTIPART_OVERHEAD) / 1_048_576
        return f"The upload is larger than the limit of {mib:.1f} MiB and was not kept."

    async def _reject(self, scope: Scope, send: Send) -> None:
        """Refused from the declared size, before any of the body is read: a problem, or for a page the error page
        (browsers always declare the size, so an upload form met this one)."""
        response = _refusal(Request(scope), PayloadTooLarge(self._message()), {"Connection": "close"})
        await response(scope, _drain, send)


def _refusal(request: Request, error: IPXError, headers: dict[str, str] | None = None) -> Response:
    """An error answered outside the routers: problem+json on API paths, the error page everywhere else."""
    if _is_api(request):
        response = problem_response(error, request)
    else:
        response = web_pages.error_page(request, error.status_code, error.title, error.detail, error.headers)
    response.headers.update(headers or {})
    return response


def _is_api(request: Request) -> bool:
    """A path programs call (answered in problem+json), not one people open (answered with pages)."""
    return request.url.path.startswith((API_PREFIX, "/.well-known/", "/witness/"))


async def _drain() -> Message:
    return {"type": "http.disconnect"}


def bootstrap(app_state: Any, settings: Settings) -> None:
    """First-start work, idempotent: signing key, log origin, first checkpoint, retired private keys destroyed,
    orphan sweep.

    `ipx serve` runs it once before starting the workers, and each worker again (by then a no-op). The
    similarity indexes are not loaded here but in each worker's start-up: a worker has its own, and loading
    them in a process that serves nothing would add the index's whole start-up (80-121 s and 6.5 GB at 100k images)
    to the serve command's.
    """
    with transaction(app_state.session_factory) as session:
        keys.ensure_active_key(session, settings.resolved_key_dir)
        log.ensure_origin(session, settings.resolved_log_origin)
        log.publish_checkpoint(session, keys.active_signer(session, settings.resolved_key_dir))
    with transaction(app_state.session_factory) as session:
        keys.destroy_retired_private_keys(session, settings.resolved_key_dir)  # left by rotations of older IPX
        sweep_orphan_blobs(session, app_state.registry.blobs, settings.orphan_blob_grace_seconds)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        bootstrap(app.state, settings)
        # This worker's similarity indexes, from the database, while it serves. What the load builds (~1.5 objects per
        # registered image) lives as long as the app: it is then taken out of the cyclic collector's scans, or every
        # full collection during a request pauses it to walk them all again (70-80 ms at 100k images, measured).
        fingerprints = app.state.registry.fingerprints
        fingerprints.start_loading(lambda: transaction(app.state.session_factory), then=gc.freeze)
        yield
        fingerprints.stop_loading()
        gc.unfreeze()
        app.state.engine.dispose()

    app = FastAPI(
        title="IPX",
        version="0.1.0",
        description="Register creative works with offline-verifiable evidence; license them.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    MultiPartParser.spool_max_size = settings.upload_memory_bytes  # Starlette's knob is its class's: one app a process
    app.state.engine = make_engine(settings.resolved_database_url)
    app.state.session_factory = make_session_factory(app.state.engine)
    app.state.marketplace = marketplace_api.build_context(settings)
    app.state.witness = witness_api.build_context(settings)
    app.state.login_throttle = LoginThrottle(settings.login_attempts, settings.login_window_seconds)
    app.state.registry = RegistryContext(
        blobs=open_blob_store(
            settings.resolved_blob_url, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region
        ),
        key_dir=settings.resolved_key_dir,
        public_url=settings.public_url.rstrip("/"),
        fingerprints=FingerprintEngine(
            max_image_pixels=settings.max_image_pixels, concurrency=settings.fingerprint_concurrency,
            queue_seconds=settings.fingerprint_queue_seconds,
        ),
        timestamp_authority=settings.timestamp_authority,
        witness_policy=settings.witness_policy,
    )
    app.add_exception_handler(IPXError, lambda request, exc: problem_response(exc, request))  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_problem)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_problem)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected_problem)
    app.add_middleware(BodySizeLimit, limit=settings.max_upload_bytes + MULTIPART_OVERHEAD)
    app.add_middleware(HeadAsGet)
    app.add_middleware(SecurityHeaders, headers=security_headers(settings))

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # API routers, one line per domain; page routers come after them.
    for router, prefix in (
        (accounts_api.router, API_PREFIX),
        (registry_api.router, API_PREFIX),
        (registry_api.well_known, ""),
        (marketplace_api.router, API_PREFIX),
        (complaints_api.router, API_PREFIX),
        (stats_api.router, API_PREFIX),
        (archive_api.router, API_PREFIX),
        (witness_api.router, ""),
    ):
        app.include_router(router, prefix=prefix, responses=PROBLEM_RESPONSES)
    app.openapi = with_component_schemas(app, [Problem, *complaints_api.REQUEST_BODY_MODELS])  # type: ignore[method-assign]
    app.include_router(accounts_pages.router)
    app.include_router(complaints_pages.router)
    app.include_router(stats_pages.router)
    app.include_router(archive_pages.router)
    app.include_router(marketplace_pages.router)
    app.include_router(web_pages.router)
    return app
