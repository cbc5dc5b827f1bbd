"""The published OpenAPI document: FastAPI's, plus what it cannot infer from the endpoints' signatures.

Two things it gets wrong by itself. Errors: FastAPI documents a 422 as `application/json` with its own
`HTTPValidationError` shape, while every IPX refusal (4xx) is RFC 9457 problem+json (DESIGN.md §2), so each API
operation documents `4XX` as a `Problem` instead, which also drops FastAPI's 422. Bodies an endpoint reads itself
(a notice arrives as JSON or as multipart with files) are declared with `openapi_extra`, whose `$ref`s point at
models that only this module adds to the components; so are form fields required in fact but optional in the
signature.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import models_json_schema

from ipx.errors import PROBLEM_JSON

REF_TEMPLATE = "#/components/schemas/{model}"


class Problem(BaseModel):
    """RFC 9457 problem details, as IPX sends every refusal; some problems add members (`errors`, `offer_id`)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None


def schema_ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {
        "description": "Refused: the problem's `detail` says why, in words for a person",
        "content": {PROBLEM_JSON: {"schema": schema_ref(Problem)}},
    }
}


BUSY_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "Busy: every fingerprinting turn of the server stayed taken while the file waited. Nothing was "
        "stored; send the file again after `Retry-After` seconds",
        "headers": {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}},
        "content": {PROBLEM_JSON: {"schema": schema_ref(Problem)}},
    }
}


FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The registered file, byte for byte, as an attachment under its uploaded name; its SHA-256 is "
        "in `ETag` and `Repr-Digest`. A file found damaged in storage is cut off, never delivered whole",
        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def form_requires(*fields: str) -> dict[str, Any]:
    """openapi_extra marking form fields required that the endpoint takes as optional, to refuse their absence
    with its own message (all of a form's errors at once, or what to attach) rather than FastAPI's. OpenAPI 3.1
    lets `required` sit beside the generated schema's `$ref`: FastAPI merges this into the operation."""
    form = {"multipart/form-data": {"schema": {"required": list(fields)}}}
    return {"requestBody": {"required": True, "content": form}}


def with_component_schemas(app: FastAPI, models: Sequence[type[BaseModel]]) -> Callable[[], dict[str, Any]]:
    """app.openapi, with `models` (and the models they nest) added to the components FastAPI found."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()  # FastAPI caches it in app.openapi_schema: completed in place, once
            _, definitions = models_json_schema([(model, "validation") for model in models], ref_template=REF_TEMPLATE)
            document.setdefault("components", {}).setdefault("schemas", {}).update(definitions["$defs"])
        return app.openapi_schema  # type: ignore[return-value]

    return openapi
