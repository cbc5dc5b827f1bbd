"""License terms as data: validation, a human-readable summary and an ODRL 2.2 export.

Terms are what a buyer pays for and what the signed license statement carries, so they are a closed,
validated structure rather than free text: contradictions (an exclusive license for five seats, a
"non-commercial" Creative Commons offer marked commercial) are refused instead of silently fixed.
Pure: no database, clock or settings; callers pass `today`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator, model_validator

WORLDWIDE = "worldwide"
MAX_PRICE_MINOR = 10**12
# Signed statements are canonical JSON (RFC 8785), whose integers must be exact in an IEEE double.
MAX_USAGE_CAP = 2**53 - 1

_ISO_3166_TEXT = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
    CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR
    GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO
    JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR
    MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO
    RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV
    TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW"""
ISO_3166_ALPHA2 = frozenset(_ISO_3166_TEXT.split())

# ISO 4217 minor-unit exponents that differ from the usual 2 (for display only; amounts stay integers).
CURRENCY_EXPONENTS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0, "RWF": 0, "UGX": 0,
    "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0, "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3,
    "TND": 3,
}

USES = (
    "web", "social", "print", "broadcast", "streaming", "film", "advertising", "editorial", "merchandise",
    "packaging", "games", "apps", "events", "education", "internal",
)

Template = Literal[
    "standard", "extended", "exclusive", "editorial",
    "cc-by", "cc-by-sa", "cc-by-nc", "cc-by-nd", "cc-by-nc-sa", "cc-by-nc-nd", "cc0",
]


@dataclass(frozen=True)
class TemplateRule:
    """What a template fixes; None means the field is the seller's choice."""

    label: str
    exclusive: bool | None = None
    commercial: bool | None = None
    derivatives: bool | None = None
    attribution: bool | None = None
    worldwide_perpetual: bool = False  # Creative Commons licenses are global and irrevocable
    odrl_uri: str | None = None


def _cc(label: str, slug: str, *, commercial: bool, derivatives: bool, attribution: bool = True) -> TemplateRule:
    return TemplateRule(
        label, exclusive=False, commercial=commercial, derivatives=derivatives, attribution=attribution,
        worldwide_perpetual=True,
        odrl_uri=f"https://creativecommons.org/licenses/{slug}/4.0/" if slug != "zero"
        else "https://creativecommons.org/publicdomain/zero/1.0/",
    )


TEMPLATES: dict[str, TemplateRule] = {
    "standard": TemplateRule("Standard license", exclusive=False),
    "extended": TemplateRule("Extended license"),
    "exclusive": TemplateRule("Exclusive license", exclusive=True),
    "editorial": TemplateRule("Editorial-only license", commercial=False),
    "cc-by": _cc("Creative Commons Attribution 4.0 (CC BY)", "by", commercial=True, derivatives=True),
    "cc-by-sa": _cc("Creative Commons Attribution-ShareAlike 4.0 (CC BY-SA)", "by-sa", commercial=True,
                    derivatives=True),
    "cc-by-nc": _cc("Creative Commons Attribution-NonCommercial 4.0 (CC BY-NC)", "by-nc", commercial=False,
                    derivatives=True),
    "cc-by-nd": _cc("Creative Commons Attribution-NoDerivatives 4.0 (CC BY-ND)", "by-nd", commercial=True,
                    derivatives=False),
    "cc-by-nc-sa": _cc("Creative Commons Attribution-NonCommercial-ShareAlike 4.0 (CC BY-NC-SA)", "by-nc-sa",
                       commercial=False, derivatives=True),
    "cc-by-nc-nd": _cc("Creative Commons Attribution-NonCommercial-NoDerivatives 4.0 (CC BY-NC-ND)", "by-nc-nd",
                       commercial=False, derivatives=False),
    "cc0": _cc("CC0 1.0 public-domain dedication", "zero", commercial=True, derivatives=True, attribution=False),
}


class Duration(BaseModel):
    """Either {"perpetual": true} or {"until": "YYYY-MM-DD"} (the last day the license is valid)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    perpetual: Literal[True] | None = None
    until: date | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Duration:
        if (self.perpetual is None) == (self.until is None):
            raise ValueError('give either {"perpetual": true} or {"until": "YYYY-MM-DD"}')
        return self


class Price(BaseModel):
    """Integer minor units (cents) and an ISO 4217 code: money is never a float."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    amount: StrictInt = Field(gt=0, le=MAX_PRICE_MINOR, description="minor units, e.g. 1250 = EUR 12.50")
    currency: str = Field(pattern="^[A-Z]{3}$", description="ISO 4217 code, e.g. EUR")

    @field_validator("currency", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class LicenseTerms(BaseModel):
    """One offer: the contract DESIGN.md §2 names, plus optional usage caps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    template: Template
    exclusive: StrictBool = False
    # The schema names the canonical values; the validators below also accept other letter cases and spaces.
    territory: list[str] = Field(
        default_factory=lambda: [WORLDWIDE], min_length=1, max_length=250,
        json_schema_extra={"items": {"type": "string", "enum": [WORLDWIDE, *sorted(ISO_3166_ALPHA2)]}},
    )
    duration: Duration = Field(default_factory=lambda: Duration(perpetual=True))
    uses: list[str] = Field(
        min_length=1, max_length=len(USES), json_schema_extra={"items": {"type": "string", "enum": list(USES)}}
    )
    ai_training: Literal["allow", "deny"] = "deny"
    derivatives: StrictBool = False
    attribution: StrictBool = True
    commercial: StrictBool = True
    seats: StrictInt = Field(default=1, ge=1, le=100_000)
    print_run_cap: StrictInt | None = Field(
        default=None, gt=0, le=MAX_USAGE_CAP, description="most printed copies allowed"
    )
    impressions_cap: StrictInt | None = Field(
        default=None, gt=0, le=MAX_USAGE_CAP, description="most views/impressions allowed"
    )
    price: Price

    @field_validator("territory")
    @classmethod
    def _territory(cls, value: list[str]) -> list[str]:
        codes = sorted({code.strip().upper() if code.strip().lower() != WORLDWIDE else WORLDWIDE for code in value})
        if WORLDWIDE in codes:
            if len(codes) > 1:
                raise ValueError('"worldwide" already covers every country: give it alone')
            return codes
        unknown = [code for code in codes if code not in ISO_3166_ALPHA2]
        if unknown:
            raise ValueError(f"not ISO 3166-1 alpha-2 country codes: {', '.join(unknown)}")
        return codes

    @field_validator("uses")
    @classmethod
    def _uses(cls, value: list[str]) -> list[str]:
        uses = sorted({use.strip().lower() for use in value})
        unknown = [use for use in uses if use not in USES]
        if unknown:
            raise ValueError(f"unknown uses {', '.join(unknown)}; allowed: {', '.join(USES)}")
        return uses

    @model_validator(mode="after")
    def _consistent(self) -> LicenseTerms:
        problems = contradictions(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def contradictions(terms: LicenseTerms) -> list[str]:
    """Every way the fields disagree with each other or with the template, as sentences."""
    rule = TEMPLATES[terms.template]
    problems = []
    if terms.exclusive and terms.seats > 1:
        problems.append("an exclusive license is for one licensee: seats must be 1")
    for name in ("exclusive", "commercial", "derivatives", "attribution"):
        required = getattr(rule, name)
        if required is not None and getattr(terms, name) != required:
            problems.append(f"the {terms.template} template requires {name}: {str(required).lower()}")
    if rule.worldwide_perpetual and (terms.territory != [WORLDWIDE] or not terms.duration.perpetual):
        problems.append(f"{rule.label} is worldwide and perpetual: territory must be [\"worldwide\"] and "
                        "duration {\"perpetual\": true}")
    if terms.template == "editorial" and "advertising" in terms.uses:
        problems.append("an editorial-only license cannot include advertising")
    return problems


def expired_on(terms: LicenseTerms, today: date) -> bool:
    """True once the license's last valid day has passed."""
    return terms.duration.until is not None and terms.duration.until < today


def territories_overlap(first: list[str], second: list[str]) -> bool:
    return WORLDWIDE in first or WORLDWIDE in second or bool(set(first) & set(second))


def scopes_overlap(held: LicenseTerms, held_from: date, wanted: LicenseTerms, wanted_from: date) -> bool:
    """Do two licenses cover a common country on a common day? (territory overlap x duration overlap)"""
    if not territories_overlap(held.territory, wanted.territory):
        return False
    held_until, wanted_until = held.duration.until, wanted.duration.until
    return (held_until is None or wanted_from <= held_until) and (wanted_until is None or held_from <= wanted_until)


def to_data(terms: LicenseTerms) -> dict[str, Any]:
    """The JSON form stored, served and signed into license statements (no nulls, dates as ISO strings)."""
    return terms.model_dump(mode="json", exclude_none=True)


def format_money(amount: int, currency: str) -> str:
    """Exact decimal text from minor units, e.g. (125050, "EUR") -> "EUR 1,250.50", (500, "JPY") -> "JPY 500"."""
    return f"{currency} {format_amount(amount, currency)}"


def format_amount(amount: int, currency: str) -> str:
    """format_money without the currency code, for a table whose currency has a column of its own: "1,250.50"."""
    exponent = CURRENCY_EXPONENTS.get(currency, 2)
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**exponent)
    return f"{sign}{whole:,}" + (f".{fraction:0{exponent}d}" if exponent else "")


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def summary(terms: LicenseTerms) -> str:
    """One paragraph a buyer can read before paying; generated, so it never drifts from the data."""
    rule = TEMPLATES[terms.template]
    where = "worldwide" if terms.territory == [WORLDWIDE] else "in " + _join(terms.territory)
    when = "perpetually" if terms.duration.perpetual else f"until {terms.duration.until.isoformat()}"  # type: ignore[union-attr]
    parts = [
        f"{rule.label}{' (exclusive)' if terms.exclusive and terms.template != 'exclusive' else ''}: "
        f"{_join(terms.uses)} use {where}, {when}.",
        "Commercial use allowed." if terms.commercial else "Non-commercial use only.",
        "Derivative works allowed." if terms.derivatives else "No derivative works.",
        "Attribution required." if terms.attribution else "No attribution required.",
        "AI training allowed." if terms.ai_training == "allow" else "AI training not allowed.",
    ]
    if terms.print_run_cap:
        parts.append(f"Up to {terms.print_run_cap:,} printed copies.")
    if terms.impressions_cap:
        parts.append(f"Up to {terms.impressions_cap:,} impressions.")
    parts.append(f"{terms.seats} seat{'s' if terms.seats > 1 else ''}.")
    parts.append(f"Price: {format_money(terms.price.amount, terms.price.currency)}.")
    return " ".join(parts)


ODRL_CONTEXT = ["http://www.w3.org/ns/odrl.jsonld", {"ipx": "https://ipx.example/ns/license#"}]
USE_ACTIONS = {"print": "reproduce", "broadcast": "distribute", "streaming": "distribute", "merchandise": "sell"}


def odrl_policy(
    terms: LicenseTerms, *, uid: str, target: str, assigner: str, assignee: str | None = None
) -> dict[str, Any]:
    """An ODRL 2.2 policy: an Offer while for sale, an Agreement once someone holds the license.

    Uses without a core ODRL action map to `use` with an `ipx:medium` constraint, so the export stays
    valid ODRL while losing nothing; AI training, seats and caps use the `ipx:` namespace.
    """
    constraints: list[dict[str, Any]] = [
        {"leftOperand": "spatial", "operator": "isAnyOf", "rightOperand": terms.territory},
        {"leftOperand": "ipx:medium", "operator": "isAnyOf", "rightOperand": terms.uses},
        {"leftOperand": "purpose", "operator": "eq" if terms.commercial else "neq", "rightOperand": "commercial"},
        {"leftOperand": "ipx:seats", "operator": "lteq", "rightOperand": terms.seats},
    ]
    if terms.duration.until is not None:
        constraints.append({
            "leftOperand": "dateTime", "operator": "lteq",
            "rightOperand": {"@value": terms.duration.until.isoformat(), "@type": "xsd:date"},
        })
    if terms.print_run_cap:
        constraints.append({"leftOperand": "ipx:printRun", "operator": "lteq", "rightOperand": terms.print_run_cap})
    if terms.impressions_cap:
        constraints.append({"leftOperand": "count", "operator": "lteq", "rightOperand": terms.impressions_cap})
    actions = sorted({"use", *(USE_ACTIONS[use] for use in terms.uses if use in USE_ACTIONS)})
    duties: list[dict[str, Any]] = [{
        "action": "compensate",
        "constraint": [{"leftOperand": "payAmount", "operator": "eq", "rightOperand": terms.price.amount,
                        "unit": f"ipx:minor-units/{terms.price.currency}"}],
    }]
    if terms.attribution:
        duties.append({"action": "attribute"})
    permissions = [{"target": target, "action": actions, "constraint": constraints, "duty": duties}]
    prohibitions = []
    if terms.derivatives:
        permissions.append({"target": target, "action": ["derive"], "constraint": constraints})
    else:
        prohibitions.append({"target": target, "action": "derive"})
    ai_rule = {"target": target, "action": "ipx:aiTraining"}
    (permissions if terms.ai_training == "allow" else prohibitions).append(ai_rule)
    policy: dict[str, Any] = {
        "@context": ODRL_CONTEXT,
        "@type": "Agreement" if assignee else "Offer",
        "uid": uid,
        "profile": "https://ipx.example/ns/license",
        "assigner": assigner,
        "ipx:template": terms.template,
        "ipx:exclusive": terms.exclusive,
        "permission": [{**p, "assigner": assigner, **({"assignee": assignee} if assignee else {})}
                       for p in permissions],
    }
    if TEMPLATES[terms.template].odrl_uri:
        policy["inheritFrom"] = TEMPLATES[terms.template].odrl_uri
    if prohibitions:
        policy["prohibition"] = prohibitions
    return policy
