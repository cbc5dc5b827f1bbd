"""The shared conformance kit's evidence check, run as an outside party would: a separate process over HTTP."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import SHARED, png_bytes
from tests.integration.live import ServerProcess, sign_up

EVIDENCE_CHECK = SHARED / "conformance" / "evidence_check.py"


@pytest.mark.slow
def test_evidence_check_passes_against_a_real_server(
    tmp_path: Path,
    sqlite_template: Path,
    launch_ipx: Callable[..., ServerProcess],
    http_client: Callable[[ServerProcess], httpx.Client],
) -> None:
    database = tmp_path / "ipx.db"
    database.write_bytes(sqlite_template.read_bytes())
    server = launch_ipx(f"sqlite:///{database}", workers=1)
    # a non-empty log first, or the kit skips its consistency check (nothing to be consistent with)
    assert sign_up(http_client(server), 1, "first")[0].register(png_bytes(1)).status_code == 201

    result = subprocess.run(
        [sys.executable, str(EVIDENCE_CHECK), server.url], capture_output=True, text=True,
        cwd=EVIDENCE_CHECK.parent, timeout=300,
    )

    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "0 failed" in report
    assert "ok   consistency proof between checkpoints verifies" in report
    assert "FAIL" not in report
