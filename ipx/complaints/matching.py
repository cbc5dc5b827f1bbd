"""How IPX finds the registered work an uploaded copy is of, and how two registered works are related.

Matchers are pluggable behind `WorkMatcher`: `ExactMatcher` needs nothing but the database;
`RegistryMatcher` asks the registry, which adds perceptual matching (image, text, audio fingerprints).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ipx.registry import service as registry_service
from ipx.registry.models import PriorMatch, Work
from ipx.registry.service import RegistryContext, Upload


@dataclass(frozen=True)
class WorkMatch:
    work: Work
    method: str  # "sha256", or the perceptual method's name (e.g. "pdq")
    distance: float  # 0 for exact; in the method's own unit otherwise
    source: str  # how IPX knows: "exact", "registry prior match", "perceptual"
    # Pictures matched by keypoints: for each registered work of the pair, the part of it ([left, top, right,
    # bottom] fractions) that the other picture shows.
    regions: Mapping[str, list[float]] = field(default_factory=dict)


class WorkMatcher(Protocol):
    def find(self, session: Session, copy: Upload) -> list[WorkMatch]: ...


class ExactMatcher:
    """Registered works with byte-identical content."""

    def find(self, session: Session, copy: Upload) -> list[WorkMatch]:
        works = session.scalars(select(Work).where(Work.sha256 == copy.sha256).order_by(Work.registered_at))
        return [WorkMatch(work, "sha256", 0.0, "exact") for work in works]


class RegistryMatcher:
    """The registry's own matching: exact copies (earliest first), then perceptual ones, most similar first."""

    def __init__(self, ctx: RegistryContext) -> None:
        self.ctx = ctx

    def find(self, session: Session, copy: Upload) -> list[WorkMatch]:
        found = registry_service.match_upload(session, copy, self.ctx)
        return [WorkMatch(m.work, m.method, m.distance, "exact") for m in found.exact] + [
            WorkMatch(m.work, m.method, m.distance, "perceptual", _regions({m.work.id: m.registered_region}))
            for m in found.similar
        ]


def identify(session: Session, copy: Upload, matchers: list[WorkMatcher]) -> list[WorkMatch]:
    """Every registered work the copy matches, best first as each matcher ranks them, without repeats."""
    found: dict[str, WorkMatch] = {}
    for matcher in matchers:
        for match in matcher.find(session, copy):
            found.setdefault(match.work.id, match)
    return list(found.values())


def match_between(session: Session, first: Work, second: Work) -> WorkMatch | None:
    """How two registered works match: identical bytes, or the detection result recorded at registration."""
    if first.sha256 == second.sha256:
        return WorkMatch(second, "sha256", 0.0, "exact")
    row = min(prior_matches_between(session, first.id, second.id), key=lambda r: r.distance, default=None)
    if row is None:
        return None
    regions = _regions({row.work_id: row.region_in_work, row.prior_work_id: row.region_in_prior_work})
    return WorkMatch(second, row.method, row.distance, "registry prior match", regions)


def _regions(regions: Mapping[str, Sequence[float] | None]) -> dict[str, list[float]]:
    return {work_id: list(region) for work_id, region in regions.items() if region is not None}


def prior_matches_between(session: Session, first_id: str, second_id: str) -> list[PriorMatch]:
    pair = or_(
        (PriorMatch.work_id == first_id) & (PriorMatch.prior_work_id == second_id),
        (PriorMatch.work_id == second_id) & (PriorMatch.prior_work_id == first_id),
    )
    return list(session.scalars(select(PriorMatch).where(pair)))
