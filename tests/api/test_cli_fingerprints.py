"""`ipx scan DIR` (a folder checked against the registry) and `ipx refingerprint` (index rows recomputed)."""

from __future__ import annotations

import csv

import pytest
from PIL import Image
from skimage import data as skdata
from sqlalchemy import select
from typer.testing import CliRunner

from ipx.cli import app as cli_app
from ipx.db import make_engine, make_session_factory, transaction
from ipx.registry.models import Work, WorkFingerprint
from tests.api.test_detection import edited_copy, encode

ASTRONAUT = Image.fromarray(skdata.astronaut())
COFFEE = Image.fromarray(skdata.coffee())


@pytest.fixture
def cli_env(settings, monkeypatch) -> None:
    monkeypatch.setenv("IPX_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("IPX_DATA_DIR", str(settings.data_dir))


def stored_image_rows(settings) -> dict[str, bytes]:
    factory = make_session_factory(make_engine(settings.resolved_database_url))
    with transaction(factory) as session:
        rows = session.scalars(select(WorkFingerprint).where(WorkFingerprint.kind == "image"))
        return {row.work_id: row.data for row in rows}


def test_scan_reports_every_file_with_its_match(client, make_user, cli_env, tmp_path) -> None:
    work = make_user("Alice").register(encode(ASTRONAUT, "PNG"), title="Astronaut", filename="a.png").json()
    folder = tmp_path / "found"
    folder.mkdir()
    (folder / "copy.jpg").write_bytes(edited_copy(ASTRONAUT))
    (folder / "other.jpg").write_bytes(encode(COFFEE))
    report = tmp_path / "report.csv"
    result = CliRunner().invoke(cli_app, ["scan", str(folder), "--out", str(report)])
    assert result.exit_code == 0, result.output
    assert "1 of 2 files match registered works" in result.output
    rows = {row["path"].rsplit("/", 1)[-1]: row for row in csv.DictReader(report.open())}
    assert (rows["copy.jpg"]["status"], rows["copy.jpg"]["work_id"]) == ("match", work["work_id"])
    assert rows["copy.jpg"]["certificate_url"].endswith(f"/works/{work['work_id']}")
    assert (rows["other.jpg"]["status"], rows["other.jpg"]["work_id"]) == ("no match", "")


def test_refingerprint_restores_rows_from_the_stored_files(
    client, make_user, settings, cli_env
) -> None:
    alice = make_user("Alice")
    astronaut_id = alice.register(encode(ASTRONAUT, "PNG"), title="Astronaut", filename="a.png").json()["work_id"]
    coffee_id = alice.register(encode(COFFEE, "PNG"), title="Coffee", filename="c.png").json()["work_id"]
    registered = stored_image_rows(settings)
    factory = make_session_factory(make_engine(settings.resolved_database_url))
    with transaction(factory) as session:  # as if computed by an older algorithm: wrong for this file
        session.get(WorkFingerprint, (astronaut_id, "image")).data = registered[coffee_id]

    result = CliRunner().invoke(cli_app, ["refingerprint"])
    assert result.exit_code == 0, result.output
    assert "1 work(s) re-fingerprinted, 1 unchanged, 0 failed" in result.output
    assert stored_image_rows(settings) == registered
    again = CliRunner().invoke(cli_app, ["refingerprint"])
    assert "0 work(s) re-fingerprinted, 2 unchanged" in again.output


def test_refingerprint_names_works_whose_file_is_missing(client, make_user, settings, cli_env) -> None:
    work_id = make_user("Alice").register(encode(ASTRONAUT, "PNG"), title="A", filename="a.png").json()["work_id"]
    factory = make_session_factory(make_engine(settings.resolved_database_url))
    with transaction(factory) as session:
        sha256 = session.get(Work, work_id).sha256
    blob = next(settings.data_dir.rglob(sha256))
    blob.unlink()
    result = CliRunner().invoke(cli_app, ["refingerprint"])
    assert result.exit_code == 1
    assert f"not recomputed: {work_id}: its file is not in the blob store" in result.output
