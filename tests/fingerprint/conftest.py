"""Makes bench/_edits.py importable: the unit tests apply the same edits the robustness benchmark measures."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
