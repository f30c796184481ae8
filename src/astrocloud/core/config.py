"""The one settings object.

Settings come, in order of precedence, from keyword arguments, `ASTROCLOUD_*` environment
variables, a TOML file (`ASTROCLOUD_CONFIG`, default `$ASTROCLOUD_HOME/astrocloud.toml` when it
exists) and the defaults below. No other module reads the environment.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def _default_home() -> Path:
    return Path(os.environ.get("ASTROCLOUD_HOME", "./var"))


def _config_file() -> Path:
    explicit = os.environ.get("ASTROCLOUD_CONFIG")
    if explicit:
        return Path(explicit)
    return _default_home() / "astrocloud.toml"


class OIDCProviderSettings(BaseSettings):
    """One OpenID Connect provider offered as a "Passport" sign-in button."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    title: str = "Passport"
    issuer: str
    client_id: str
    client_secret: str = Field(repr=False)
    scope: str = "openid email profile"


class Settings(BaseSettings):
    """Everything an operator can configure."""

    model_config = SettingsConfigDict(env_prefix="ASTROCLOUD_", extra="ignore")

    home: Path = Field(default_factory=_default_home)
    database_url: str | None = None
    secret_key: str | None = Field(default=None, repr=False)
    site_name: str = "AstroCloud"
    base_url: str = "http://127.0.0.1:8000"
    default_language: str = "en"

    # Mail: with no SMTP host, messages are written to $home/outbox as .eml files.
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = Field(default=None, repr=False)
    smtp_starttls: bool = False
    mail_from: str = "AstroCloud <noreply@astrocloud.local>"

    # Accounts and sessions.
    session_cookie: str = "astrocloud_session"
    session_max_age_seconds: int = 14 * 24 * 3600
    cookie_secure: bool = False
    verification_token_hours: int = 48
    password_reset_token_hours: int = 2
    login_max_failures: int = 5
    login_window_seconds: int = 900
    password_min_length: int = 10
    argon2_time_cost: int = 3
    argon2_memory_cost_kib: int = 65536
    open_registration: bool = True
    online_window_minutes: int = 15

    # Request limits: JSON and forms; file uploads (MyVOSpace, ingest) have their own.
    max_body_bytes: int = 1024 * 1024
    max_upload_bytes: int = Field(default=100 * 1024**3, ge=0)

    oidc_providers: list[OIDCProviderSettings] = Field(default_factory=list)

    # Storage: which data-center site this instance is at (default: the first site), and
    # the default number of copies of every file.
    site: str | None = None
    storage_default_copies: int = Field(default=2, ge=1, le=10)
    storage_signing_ttl_seconds: int = Field(default=300, ge=10, le=86400)
    # The checksum new files are recorded with (older files keep theirs): see
    # core.storage.checksums and docs/performance.md for the choice.
    storage_checksum: Literal["xxh3-128", "blake3", "sha256"] = "xxh3-128"
    # Credentials for s3:// sites (the endpoint and bucket are part of each site's URL).
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = Field(default=None, repr=False)

    # MyVOSpace: every user's default quota (an admin can set another per user).
    vos_default_quota_bytes: int = Field(default=10 * 1024**3, ge=0)

    # VOSpace transfer jobs (UWS): kept this long after creation once run, or while PENDING.
    vos_transfer_lifetime_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    vos_transfer_pending_seconds: int = Field(default=24 * 3600, ge=60)

    # Archive: the largest file accepted, and how long a file in a telescope's drop folder
    # must stay unchanged before it is taken (the telescope may still be copying it).
    archive_max_file_bytes: int = Field(default=20 * 1024**3, ge=0)
    archive_drop_settle_seconds: float = Field(default=2.0, ge=0)

    # TAP: the rows a query returns unless it says (MAXREC) and at most; how long a query may
    # run (synchronous, asynchronous); how long an asynchronous job and its result are kept;
    # the largest table a query may upload.
    tap_default_maxrec: int = Field(default=10_000, ge=1)
    tap_max_rows: int = Field(default=10_000_000, ge=1)
    tap_sync_seconds: int = Field(default=60, ge=1)
    tap_async_seconds: int = Field(default=3600, ge=1)
    tap_job_days: int = Field(default=7, ge=1)
    tap_upload_max_bytes: int = Field(default=20 * 1024**2, ge=0)
    tap_upload_max_rows: int = Field(default=1_000_000, ge=0)

    # Virtual Observatory: the IVOA naming authority of this data center (its registry
    # publishes ivo://<authority>/… records), who to contact about its services (default: the
    # sender of its mail), and how many records one OAI-PMH answer holds before a
    # resumptionToken.
    vo_authority: str = Field(default="astrocloud", pattern=r"^[A-Za-z0-9][\w\-.~*'()]{2,}$")
    vo_contact_email: str | None = None
    oai_page_size: int = Field(default=100, ge=1, le=10_000)

    # Jobs: "embedded" (a queue in $home/jobs.db, worked in-process by `serve`) or "redis".
    job_backend: str = Field(default="embedded", pattern="^(embedded|redis)$")
    redis_url: str = "redis://127.0.0.1:6379/0"
    job_queue_name: str = "astrocloud"
    job_workers: int = Field(default=2, ge=1, le=64)

    # Tests set this so that a route that forgets the security framework fails loudly.
    strict_security_audit: bool = False

    @field_validator("home", mode="after")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_file()
        if path.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    # Derived values -------------------------------------------------------------------------

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'astrocloud.db'}"

    @property
    def outbox_dir(self) -> Path:
        return self.home / "outbox"

    def effective_secret_key(self) -> str:
        """The signing key; generated once and kept in $home when none is configured."""
        if self.secret_key:
            return self.secret_key
        path = self.home / "secret.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
        return path.read_text().strip()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own `Settings` and pass it explicitly)."""
    return Settings()
