"""The route class every IPX router uses: text holding a NUL character is refused before the endpoint runs.

No title, name, search or note legitimately holds U+0000, and PostgreSQL's text cannot store one: the
driver raised mid-request (a 500, found by fuzzing the OpenAPI schema) where SQLite silently kept it,
to reappear in certificates and pages. So the path, the query string, form fields (and upload
filenames) and JSON bodies are checked where they are parsed, and the answer is a 422 naming the field.
A JSON body that is not UTF-8 gets a 422 saying so, where FastAPI gave a bare 400.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.datastructures import FormData, UploadFile
from starlette.routing import Match

from ipx.errors import PROBLEM_JSON, IPXError

NUL = "\x00"


def find_nul(value: Any, where: str) -> str | None:
    """Where in a parsed JSON value a NUL hides (keys included), as a dotted path; None if nowhere."""
    if isinstance(value, str):
        return where if NUL in value else None
    if isinstance(value, dict):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        path = f"{where}.{key}"
        if NUL in str(key):
            return path
        if (found := find_nul(item, path)) is not None:
            return found
    return None


def refused(what: str) -> HTTPException:
    """A 422, as an HTTPException because FastAPI turns anything else raised while it parses a body into a bare 400."""
    return HTTPException(422, f"Text cannot contain the NUL character (U+0000), and {what} has one.")


def refuse_nul(pairs: Iterable[tuple[str, Any]], kind: str) -> None:
    """Refuse the first name or text value (or upload filename) holding a NUL."""
    for name, value in pairs:
        if isinstance(value, UploadFile):
            if NUL in name + (value.filename or ""):
                raise refused(f"the filename of {kind} '{name}'")
        elif isinstance(value, str) and NUL in name + value:
            raise refused(f"{kind} '{name}'")


class TextCheckingRequest(Request):
    """Checks a body as it is parsed (NUL, and JSON that is not UTF-8), so FastAPI's own parse and an endpoint's
    `await request.form()` both do."""

    async def json(self) -> Any:
        try:
            value = await super().json()
        except UnicodeDecodeError as exc:  # FastAPI would answer a bare 400 "There was an error parsing the body"
            raise HTTPException(422, f"The body is not valid JSON: it is not UTF-8 text (byte {exc.start}).") from exc
        if (where := find_nul(value, "body")) is not None:
            raise refused(f"the JSON field '{where}'")
        return value

    async def _get_form(self, **limits: Any) -> FormData:  # form() only wraps this coroutine
        form = await super()._get_form(**limits)
        refuse_nul(form.multi_items(), "the form field")
        return form


class IPXRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def text_checking_handler(request: Request) -> Response:
            refuse_nul(request.path_params.items(), "the path segment")
            refuse_nul(request.query_params.multi_items(), "the query parameter")
            return await handler(TextCheckingRequest(request.scope, request.receive))

        return text_checking_handler


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def methods_served_at(request: Request) -> list[str]:
    """Every method some route serves at this path. Starlette's 405 names only the first matching route's, and
    IPX declares each method of a path as its own route (GET and POST /api/v1/works), so a client was told
    `Allow: POST` where GET works too. Asked through each route's own matching, as the router does."""
    served = {
        method for method in HTTP_METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in request.app.routes)
    }
    if "GET" in served:
        served.add("HEAD")  # answered as GET without the body (app.HeadAsGet)
    return [method for method in HTTP_METHODS if method in served]


def problem_response(error: IPXError, request: Request) -> Response:
    """An IPX error as RFC 9457 problem+json, its headers (Retry-After) included."""
    return JSONResponse(
        error.problem(str(request.url.path)), status_code=error.status_code, media_type=PROBLEM_JSON,
        headers=error.headers,
    )
