"""Two accounts registering the same file at the same moment on PostgreSQL: the later one is still flagged as a
copy of the earlier (each had looked for prior works before the other existed)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from ipx.accounts.service import Principal, principal_for_token
from ipx.db import transaction
from ipx.registry import service
from ipx.registry.models import PriorMatch, Work
from ipx.registry.schemas import RegistrationForm
from tests.conftest import png_bytes
from tests.races import interleave


def test_the_later_of_two_simultaneous_registrations_of_one_file_is_flagged(
    client, make_user, tmp_path: Path, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serializes writers at BEGIN, so two transactions cannot interleave there")
    factory, registry = client.app.state.session_factory, client.app.state.registry
    picture = tmp_path / "harbour.png"
    picture.write_bytes(png_bytes(31, size=(320, 240)))
    upload = service.Upload(path=picture, sha256=hashlib.sha256(picture.read_bytes()).hexdigest(),
                            size=picture.stat().st_size, filename="harbour.png", content_type="image/png")
    with transaction(factory) as session:
        alice, bob = (principal_for_token(session, user.headers["Authorization"].split()[1])
                      for user in (make_user("Alice"), make_user("Bob")))

    def register(owner: Principal):  # type: ignore[no-untyped-def]
        def run(session: Session) -> None:
            service.register(session, owner=owner, upload=upload, form=RegistrationForm(title=owner.display_name),
                             ctx=registry)
        return run

    interleave(factory, register(alice), register(bob))
    with transaction(factory) as session:
        works = {w.owner_id: w.id for w in session.scalars(select(Work))}
        flags = [(f.work_id, f.prior_work_id, f.method) for f in session.scalars(select(PriorMatch))]
    assert flags == [(works[bob.id], works[alice.id], "sha256")]
