"""The tlog-witness wire format: what the log side renders, the witness parses back, byte for byte."""

from __future__ import annotations

import pytest

from ipx.witness.protocol import (
    MAX_PROOF_LINES,
    CheckpointRequest,
    MalformedRequest,
    parse_request,
    parse_size,
    render_request,
    render_size,
)

NOTE = "log.example/log\n2\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u2014 log.example/log c2ln\n"


def test_a_request_round_trips() -> None:
    proof = (b"\x01" * 32, b"\x02" * 32)
    body = render_request(7, proof, NOTE)
    assert body.startswith(b"old 7\nAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n")
    assert parse_request(body) == CheckpointRequest(7, proof, NOTE)


def test_the_spec_example_parses() -> None:
    body = b"old 0\n\n" + NOTE.encode()
    assert parse_request(body) == CheckpointRequest(0, (), NOTE)


@pytest.mark.parametrize("character", ["\x00", "\r", "\t", "\x7f"])
def test_control_characters_are_refused(character: str) -> None:
    with pytest.raises(MalformedRequest, match="control characters"):
        parse_request(render_request(0, [], NOTE.replace("log.example/log\n2", f"log.example/log\n2{character}")))


def test_at_most_63_proof_lines() -> None:
    assert len(parse_request(render_request(1, [b"\x00" * 32] * MAX_PROOF_LINES, NOTE)).proof) == MAX_PROOF_LINES
    with pytest.raises(MalformedRequest, match="more than 63"):
        parse_request(render_request(1, [b"\x00" * 32] * (MAX_PROOF_LINES + 1), NOTE))


@pytest.mark.parametrize("size", ["00", "01", "+1", " 1", "1 ", "\u0661", "9223372036854775808"])
def test_sizes_are_plain_decimals_below_2_63(size: str) -> None:
    with pytest.raises(MalformedRequest):
        parse_request(f"old {size}\n\n{NOTE}".encode())
    with pytest.raises(MalformedRequest):
        parse_size(f"{size}\n".encode())


def test_a_size_body_round_trips() -> None:
    assert render_size(42) == b"42\n"
    assert parse_size(render_size(42)) == 42
    assert parse_size(render_size(2**63 - 1)) == 2**63 - 1
    with pytest.raises(MalformedRequest, match="newline"):
        parse_size(b"42")
