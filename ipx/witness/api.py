"""The witness's one route, at `{public_url}/witness/add-checkpoint` as tlog-witness names it (no /api/v1: the
submission prefix is what log operators configure, and the answers are the spec's plain-text ones)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import PlainTextResponse

from ipx.config import Settings
from ipx.deps import DbSession
from ipx.errors import PROBLEM_JSON, PayloadTooLarge
from ipx.openapi import Problem, schema_ref
from ipx.routing import IPXRoute, problem_response
from ipx.witness import protocol, service

MAX_REQUEST_BYTES = 64 * 1024  # 63 proof lines and a checkpoint with many signatures take a few KiB

router = APIRouter(prefix="/witness", tags=["witness"], route_class=IPXRoute)


def build_context(settings: Settings) -> service.WitnessContext:
    """Built once in create_app: the settings' log keys were already checked when the settings were read."""
    return service.WitnessContext.from_vkeys(settings.resolved_witness_name, settings.resolved_key_dir,
                                             settings.witness_logs)


def get_witness(request: Request) -> service.WitnessContext:
    return request.app.state.witness


async def request_body(request: Request) -> bytes:
    """The body, refused with a 413 as soon as it passes the limit rather than after all of it arrived."""
    refusal = PayloadTooLarge(f"An add-checkpoint request is at most {MAX_REQUEST_BYTES // 1024} KiB.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        raise refusal
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_REQUEST_BYTES:
            raise refusal
    return bytes(body)


Witness = Annotated[service.WitnessContext, Depends(get_witness)]
RequestBody = Annotated[bytes, Depends(request_body)]

ADD_CHECKPOINT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "This witness's cosignature line(s), to add to the checkpoint's signatures",
          "content": {"text/plain": {"schema": {"type": "string"}}}},
    409: {"description": "The old size is not the size this witness last cosigned for the log (the body says which, "
          "as `text/x.tlog.size`); or, as a problem, a checkpoint of the cosigned size with a different root",
          "content": {protocol.SIZE_MEDIA_TYPE: {"schema": {"type": "string"}},
                      PROBLEM_JSON: {"schema": schema_ref(Problem)}}},
}
CHECKPOINT_REQUEST_BODY = {"requestBody": {"required": True, "content": {"text/plain": {"schema": {"type": "string"}}}}}


@router.post("/add-checkpoint", response_class=PlainTextResponse, responses=ADD_CHECKPOINT_RESPONSES,
             openapi_extra=CHECKPOINT_REQUEST_BODY)
def add_checkpoint(body: RequestBody, session: DbSession, witness: Witness, request: Request) -> Response:
    """Cosign a log's checkpoint that extends the one last cosigned (tlog-witness; log operators)."""
    try:
        cosignature = service.add_checkpoint(session, body, witness=witness)
    except service.OldSizeMismatch as stale:
        # exactly the spec's type: clients compare it whole, and Starlette would add "; charset=utf-8" to a media_type
        return Response(protocol.render_size(stale.size), 409, headers={"Content-Type": protocol.SIZE_MEDIA_TYPE})
    except service.ForkEvidence as fork:  # answered, not raised: the request's transaction commits the evidence
        return problem_response(fork, request)
    return PlainTextResponse(cosignature)
