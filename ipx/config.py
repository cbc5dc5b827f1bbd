"""Settings from the environment (prefix IPX_), with an embedded default that needs nothing installed."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from ipx.registry.timestamps import Authority
    from ipx.registry.witnesses import WitnessPolicy

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = PROJECT_ROOT / "storage" / "data"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IPX_", env_file=".env", extra="ignore")

    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str = ""  # default: SQLite file in data_dir
    blob_url: str = ""  # default: local directory in data_dir; or s3://bucket/prefix
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    key_dir: Path | None = None  # private signing keys; default data_dir/keys
    public_url: str = "http://127.0.0.1:8000"
    log_origin: str = ""  # default: derived from public_url host, e.g. "127.0.0.1:8000/ipx-log"
    max_upload_bytes: int = 100 * 1024 * 1024
    # An uploaded file is held in memory while its form is parsed up to this size, then spooled to disk. Past
    # Starlette's 1 MiB default every 64 kB the network delivers costs a trip through the thread pool: 5-10 ms of a
    # 12-megapixel photo's 70-100 ms verify (bench/upload_spool.py). Each request in flight may hold this much.
    upload_memory_bytes: int = Field(default=16 * 1024 * 1024, ge=1)  # 0 would mean no limit at all
    max_image_pixels: int = 100_000_000
    # Uploads fingerprinted at once per worker; the others wait their turn up to fingerprint_queue_seconds, then get
    # a 503. One costs up to ~2 GB (a 100-megapixel WebP or single-resolution JPEG 2000) and a core.
    fingerprint_concurrency: int = Field(default=2, ge=1)
    fingerprint_queue_seconds: float = Field(default=30.0, gt=0)
    token_ttl_seconds: int = 7 * 24 * 3600
    # failed log-ins allowed per address within the window, per worker (ipx/accounts/throttle.py)
    login_attempts: int = Field(default=10, ge=1)
    login_window_seconds: int = Field(default=900, ge=1)
    # a mailed password-reset link works once, for this long; an address is sent at most so many links a day
    password_reset_ttl_seconds: int = Field(default=3600, ge=60)
    password_resets_per_day: int = Field(default=5, ge=1)
    orphan_blob_grace_seconds: int = 3600
    cookie_secure: bool | None = None  # default: Secure cookies when public_url is https
    staff_two_factor_required: bool = False  # staff act as staff only with two-step verification on (production: on)
    # complaints and notifications
    complaint_restore_business_days: int = Field(default=10, ge=10, le=14)  # DMCA 512(g): 10-14 business days
    email_sender: str = "file"  # "file" writes .eml files under data_dir/outbox; "console" prints them
    # marketplace: "offline" settles outside IPX (POST /orders/{id}/confirm); "stripe" uses PaymentIntents
    payment_provider: str = "offline"
    stripe_api_key: str = ""
    stripe_api_base: str = "https://api.stripe.com"  # point at localstripe in tests
    stripe_webhook_secret: str = ""
    # the website's card form (Stripe.js): without a publishable key, pages cannot take card payments
    stripe_publishable_key: str = ""
    stripe_js_url: str = "https://js.stripe.com/v3/"  # localstripe serves its stand-in at <its URL>/js.stripe.com/v3/
    # RFC 3161 timestamps over every log entry from an outside authority (`ipx log timestamp`, run from cron): its
    # URL, and a PEM file of the root certificates its tokens chain to (both, or neither)
    tsa_url: str = ""
    tsa_roots_file: Path | None = None
    # witnesses that cosign the log's checkpoints (`ipx log witness`, run from cron; https://c2sp.org/tlog-witness):
    # each "VKEY URL", the witness's cosignature verifier key and its submission URL (`ipx witness key` prints both
    # on an IPX witness), and how many must cosign a checkpoint. Published in /.well-known/ipx/keys for verifiers.
    log_witnesses: list[str] = []
    log_witness_quorum: int = Field(default=1, ge=1)
    platform_fee_bps: int = 1000  # basis points of each sale kept by the platform (1000 = 10 %)
    supported_currencies: list[str] = ["EUR", "USD", "GBP", "CHF", "CAD", "AUD", "JPY", "SEK", "NOK", "DKK"]
    # acting as a C2SP witness (docs/witness.md): the verifier keys ("origin+hexid+base64") of the logs this instance
    # cosigns, several per origin while a log rotates its key; and the name its cosignatures carry
    witness_logs: list[str] = []
    witness_name: str = ""  # default: derived from public_url host, e.g. "127.0.0.1:8000/witness"

    @field_validator("public_url")
    @classmethod
    def _without_trailing_slash(cls, url: str) -> str:
        """Links are built as public_url + "/works/…": a trailing slash made "//works/…", a 404, printed in QR codes."""
        return url.strip().rstrip("/")

    @field_validator("witness_logs")
    @classmethod
    def _valid_verifier_keys(cls, vkeys: list[str]) -> list[str]:
        """A typo in a log's key would otherwise surface only as every checkpoint of that log refused with a 403."""
        from ipx.registry.note import NoteError, NoteVerifier

        for vkey in vkeys:
            try:
                origin = NoteVerifier.from_vkey(vkey).name
            except NoteError as exc:
                raise ValueError(f"IPX_WITNESS_LOGS: {exc} (each entry is a log's Ed25519 verifier key, "
                                 "'origin+hexid+base64')") from exc
            if len(origin) > 255:  # witnessed_logs.origin
                raise ValueError(f"IPX_WITNESS_LOGS: the origin {origin[:40]!r}… is longer than 255 characters")
        return vkeys

    @field_validator("witness_name")
    @classmethod
    def _valid_note_name(cls, name: str) -> str:
        """The name is the first word of every cosignature line: checked at start-up, not at the first cosignature."""
        from ipx.registry.note import NoteError, check_signer_name

        if not name:
            return name  # derived from the public URL
        try:
            check_signer_name(name)
        except NoteError as exc:
            raise ValueError(f"IPX_WITNESS_NAME: {exc}") from exc
        if not name.isprintable():  # a note holds no control characters
            raise ValueError(f"IPX_WITNESS_NAME {name!r} cannot hold control characters")
        return name

    @cached_property
    def secure_cookies(self) -> bool:
        """Session cookies marked Secure (sent over HTTPS only): as set, or whenever IPX is served over HTTPS."""
        return self.cookie_secure if self.cookie_secure is not None else self.public_url.lower().startswith("https://")

    @cached_property
    def timestamp_authority(self) -> Authority | None:
        from ipx.registry.timestamps import Authority

        if not self.tsa_url and self.tsa_roots_file is None:
            return None
        if not self.tsa_url or self.tsa_roots_file is None:
            raise ValueError("IPX_TSA_URL and IPX_TSA_ROOTS_FILE go together: set both to timestamp the log, or "
                             "neither")
        return Authority(self.tsa_url, self.tsa_roots_file.read_bytes())

    @cached_property
    def witness_policy(self) -> WitnessPolicy | None:
        from ipx.registry.witnesses import Witness, WitnessPolicy

        if not self.log_witnesses:
            return None
        try:
            return WitnessPolicy(tuple(Witness.parse(entry) for entry in self.log_witnesses), self.log_witness_quorum)
        except ValueError as exc:
            raise ValueError(f"IPX_LOG_WITNESSES / IPX_LOG_WITNESS_QUORUM: {exc}") from exc

    @cached_property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'ipx.db'}"

    @cached_property
    def resolved_blob_url(self) -> str:
        return self.blob_url or f"file://{self.data_dir / 'blobs'}"

    @cached_property
    def resolved_key_dir(self) -> Path:
        return self.key_dir or self.data_dir / "keys"

    @property
    def _schemaless_public_url(self) -> str:
        """Note names are schema-less URLs: the public URL without its scheme, unique per deployment."""
        return self.public_url.split("://", 1)[-1].rstrip("/")

    @cached_property
    def resolved_log_origin(self) -> str:
        """C2SP origin line: a schema-less URL naming this log, unique per deployment."""
        return self.log_origin or f"{self._schemaless_public_url}/ipx-log"

    @cached_property
    def resolved_witness_name(self) -> str:
        """The witness's key name, as the log operators who trust it configure it: schema-less, like the origin."""
        return self.witness_name or f"{self._schemaless_public_url}/witness"


def get_settings() -> Settings:
    return Settings()
