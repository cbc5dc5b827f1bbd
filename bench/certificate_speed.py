"""Certificate PDF benchmark: CPU time to build one registration certificate, ordinary and hostile.

Usage: .venv/bin/python bench/certificate_speed.py [--rounds N]

Every anonymous GET /works/{id}/certificate.pdf builds the PDF anew, so its cost is what a visitor can make the
server spend. Prints milliseconds of CPU per certificate (median of N rounds) for ordinary facts, for the longest
texts registration accepts, and for text that once cost seconds to lay out (runs of zero-width or combining
characters: fpdf2's line breaking is quadratic on them); no pass/fail thresholds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ipx.web.certificates import CertificateFacts, certificate_pdf


def facts(title: str = "Harbour at dawn", creators: list[tuple[str, str]] | None = None,
          registered_by: str = "Ada Lovelace") -> CertificateFacts:
    return CertificateFacts(
        title=title, work_type="image", creators=creators or [("Ada Lovelace", "100%")], registered_by=registered_by,
        sha256="a" * 64, size=2_500_000, media_type="image/jpeg", registered_at="2026-12-05T21:00:00.000000Z",
        log_index=1234, key_id="b" * 64, status="registered", url="https://ipx.example/works/" + "c" * 36,
    )


CASES = {
    "ordinary": facts(),
    "500-character title": facts(title="Golden light over the harbour " * 17),
    "50 creators, 200-character names": facts(creators=[("Ada Lovelace " * 15, "2%")] * 50),
    "title of 500 zero-width joiners": facts(title="\u200d" * 500),
    "50 creators of 200 zero-width spaces": facts(creators=[("\u200b" * 200, "2%")] * 50),
    "50 creators, a letter and 199 accents": facts(creators=[("b" + "\u0301" * 199, "2%")] * 50),
    "display name of 60 lines": facts(registered_by="Ada\n" * 60),
}


def cpu_ms(case: CertificateFacts, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.process_time()
        certificate_pdf(case)
        times.append(time.process_time() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    print(f"CPU per certificate PDF, median of {rounds} rounds")
    for name, case in CASES.items():
        print(f"  {name:40s} {cpu_ms(case, rounds):7.1f} ms")


if __name__ == "__main__":
    main()
