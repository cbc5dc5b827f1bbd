from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, ValidationInfo, field_validator

from ipx.registry.media import WORK_TYPES
from ipx.text import line_breaking_character


def one_line(value: str | None) -> str | None:
    """Refuse line breaks and other control characters in a field shown as one line.

    Titles and names are signed into the log, printed on certificates and listed by `ipx log monitor`: a title
    holding a line break or a terminal escape could forge a line of someone else's report.
    """
    if value is None:
        return None
    value = value.strip()  # a trailing line break pasted with the text is not worth refusing
    char = line_breaking_character(value)
    if char is not None:
        raise ValueError(f"it must be one line of text, without control characters ({char!r} found)")
    return value


OneLine = AfterValidator(one_line)


class CreatorShare(BaseModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), OneLine]
    share: Decimal = Field(gt=0, le=100, decimal_places=2, description="Percent of the work, up to 2 decimals.")
    role: Annotated[str | None, OneLine] = Field(default=None, max_length=100)


class RegistrationForm(BaseModel):
    """eCO-like registration metadata; everything here is signed into the statement."""

    title: Annotated[str, OneLine] = Field(max_length=500)
    work_type: str | None = None
    description: str | None = Field(default=None, max_length=5000)
    creators: list[CreatorShare] = Field(default_factory=list, max_length=50)
    year_created: int | None = Field(default=None, ge=1000)
    published: bool = False
    published_where: Annotated[str | None, OneLine] = Field(default=None, max_length=500)

    @field_validator("title")
    @classmethod
    def _title_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a title is required")
        return value.strip()

    @field_validator("work_type")
    @classmethod
    def _known_type(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if value not in WORK_TYPES:
            raise ValueError(f"work_type must be one of {', '.join(WORK_TYPES)}")
        return value

    @field_validator("creators", mode="before")
    @classmethod
    def _creators_from_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                return []
            try:
                return json.loads(value)
            except (json.JSONDecodeError, RecursionError) as exc:  # RecursionError: thousands of nested brackets
                raise ValueError("creators must be a JSON list like [{\"name\": \"Ada\", \"share\": 50}]") from exc
        return value

    # Each rule is checked on the field it is about, so a form can mark that field and its error says it in words.
    @field_validator("creators")
    @classmethod
    def _shares_add_up(cls, creators: list[CreatorShare]) -> list[CreatorShare]:
        total = sum(c.share for c in creators)
        if creators and total != 100:
            raise ValueError(f"the creators' shares must add up to 100% (they add up to {total:g}%)")
        return creators

    @field_validator("year_created")
    @classmethod
    def _not_in_the_future(cls, year: int | None) -> int | None:
        this_year = datetime.now(UTC).year
        if year is not None and year > this_year:
            raise ValueError(f"the year of creation cannot be later than this year ({this_year})")
        return year

    @field_validator("published_where")
    @classmethod
    def _only_when_published(cls, where: str | None, info: ValidationInfo) -> str | None:
        if where and not info.data.get("published"):
            raise ValueError(
                "say where the work was published only if it was published (tick “This work has already been "
                "published”)"
            )
        return where


class Region(BaseModel):
    """A rectangle of a picture, as fractions (0 to 1) of its width and height from its top-left corner."""

    left: float
    top: float
    right: float
    bottom: float


class Match(BaseModel):
    work_id: str
    title: str
    registered_at: datetime
    method: str
    distance: float
    similarity: float
    certificate_url: str
    passages: list[dict[str, Any]] | None = None
    region: Region | None = Field(
        default=None,
        description="Images matched by keypoints (method orb): the part of the uploaded picture that the registered "
        "picture fills, e.g. where it was pasted into a page or a screenshot. Null for the other methods.",
    )
    registered_region: Region | None = Field(
        default=None,
        description="Images matched by keypoints (method orb): the part of the registered picture that the upload "
        "shows, e.g. which corner a crop kept. Null for the other methods.",
    )


class Detection(BaseModel):
    """Which matching methods applied to the file, and in words why only exact matching did, if so."""

    methods: list[str]
    note: str | None


class VerifyRead(BaseModel):
    sha256: str
    size: int
    media_type: str
    detection: Detection
    exact_matches: list[Match]
    similar_matches: list[Match]


class CreatorRef(BaseModel):
    account_id: str
    display_name: str


class WorkRead(BaseModel):
    """The public registration record: nothing private (no email, no original file name)."""

    work_id: str
    title: str
    work_type: str
    description: str | None
    creators: list[dict[str, Any]]
    year_created: int | None
    publication: dict[str, Any]
    sha256: str
    size: int
    media_type: str
    fingerprints: dict[str, Any]
    registered_at: datetime
    log_index: int
    key_id: str
    status: str
    creator: CreatorRef
    evidence_url: str
    certificate_url: str


class RegistrationRead(WorkRead):
    prior_similar: list[Match]
    detection: Detection


class WorkPage(BaseModel):
    items: list[WorkRead]
    total: int
    page: int
    page_size: int


PositiveIndex = Annotated[int, Field(ge=0)]
