"""The independent log verifier of the shared conformance kit, written from RFC 9162 and C2SP signed-note.

It shares no code with IPX, so a bug in `ipx.registry.merkle` cannot hide by agreeing with itself.
"""

from __future__ import annotations

import importlib.util

from tests.conftest import SHARED

_spec = importlib.util.spec_from_file_location("tlog", SHARED / "conformance" / "tlog.py")
assert _spec is not None and _spec.loader is not None
tlog = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tlog)
