"""Settings read from the environment, once, when asked for (never at import time)."""

from __future__ import annotations

import os
from typing import Literal

import msgspec

from omnistream.security.proxies import Network, parse_networks
from omnistream.security.secrets import SecretBox, development_key, secret_box

DEFAULT_JWT_SECRET = "dev-only-insecure-jwt-secret-change-me-0000"


class SettingsError(ValueError):
    pass


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    env: Literal["development", "test", "production"] = "development"
    database_url: str = ""
    """The role the API and workers connect as; it must not bypass row-level security."""
    migrations_database_url: str = ""
    """The owner of the schema, for migrations; defaults to database_url."""
    redis_url: str = ""
    redis_prefix: str = "omni"
    data_dir: str = ".omnistream"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    jwt_secret: str = DEFAULT_JWT_SECRET
    jwt_audience: str = "omnistream-api"
    jwt_ttl_seconds: int = 3600 * 12
    cookie_secure: bool = False
    db_pool_min: int = 2
    db_pool_max: int = 20
    db_statement_cache_size: int = 100
    """Prepared statements kept per connection; 0 behind a transaction pooler that cannot carry
    them (pgbouncer before 1.21, or with max_prepared_statements = 0)."""
    login_max_failures_per_ip: int = 20
    """Failed sign-ins from one client address (any email) before that address is refused."""
    login_max_failures_per_ip_and_email: int = 5
    """Failed sign-ins for one email from one client address before that address is refused for it."""
    login_slowdown_after_failures_per_email: int = 50
    """Failed sign-ins for one email from all addresses after which each attempt for it waits."""
    login_slowdown_seconds: float = 3.0
    login_failure_window_seconds: int = 900
    trusted_proxies: str = ""
    """Addresses or CIDRs of the proxies in front of the API, whose X-Forwarded-For is believed."""
    public_requests_per_minute: int = 120
    """Requests per minute and client address to the endpoints without authentication."""
    log_json: bool = False
    log_level: str = "INFO"
    public_url: str = ""
    csat_link_days: int = 7
    """Days a CSAT survey's link stays open for the customer's answer."""
    scheduled_message_min_lead_seconds: int = 60
    """How far ahead a message must be scheduled (only tests lower it)."""
    webhooks_allow_private: bool = False
    """Let automation and outgoing webhooks reach private, loopback and link-local addresses, and
    outgoing webhooks use plain http (tests, on-premise)."""
    listen_database_url: str = ""
    """A direct PostgreSQL URL for the workers' LISTEN (not through a transaction pooler); default DATABASE_URL."""
    metrics_token: str = ""
    """When set, /metrics answers only `Authorization: Bearer <token>`."""
    encryption_keys: str = ""
    """Fernet keys, comma-separated, for the secrets and tokens stored at rest: the first encrypts,
    every one decrypts (rotation: put a new key first, run `omnistream rotate-secrets`, then drop the old)."""
    graph_api_url: str = "https://graph.facebook.com"
    """Meta's Graph API; a stand-in's address in tests and with `omnistream dev --fake-meta`."""
    graph_api_version: str = "v21.0"
    graph_api_timeout_seconds: float = 15.0
    meta_app_id: str = ""
    """The platform's own Meta app (Embedded Signup, OAuth): tenants without an app of their own use it."""
    meta_app_secret: str = ""
    meta_verify_token: str = ""
    """The verify token of the platform's app, for Meta's webhook verification."""
    meta_embedded_signup_config_id: str = ""
    webhook_max_body_bytes: int = 1_048_576
    """Inbound webhook bodies larger than this get 413."""
    email_webhook_max_body_bytes: int = 26_214_400
    """Inbound email webhook bodies (attachments included, base64) larger than this get 413."""
    smtp_host: str = ""
    """The default SMTP server of email accounts that name none."""
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = True
    smtp_timeout_seconds: float = 20.0
    media_dir: str = ""
    """Where uploaded and received media are stored (default: <data dir>/media)."""
    media_max_bytes: int = 16 * 1024 * 1024
    s3_endpoint_url: str = ""
    """An S3-compatible endpoint (MinIO, moto, ...); empty is AWS."""
    s3_bucket: str = ""
    s3_region: str = "us-east-1"
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def trusted_proxy_networks(self) -> tuple[Network, ...]:
        return parse_networks(self.trusted_proxies)

    @property
    def secrets(self) -> SecretBox:
        """Seals and opens the secrets stored at rest (outside production, without keys: one derived
        from the JWT secret, so development needs no setup)."""
        return secret_box(self.encryption_keys or development_key(self.jwt_secret))

    @property
    def media_root(self) -> str:
        return self.media_dir or os.path.join(self.data_dir, "media")

    @property
    def embedded(self) -> bool:
        return not (self.database_url and self.redis_url)

    def validate(self) -> Settings:
        try:
            parse_networks(self.trusted_proxies)
        except ValueError as exc:
            raise SettingsError(f"OMNISTREAM_TRUSTED_PROXIES: {exc}") from exc
        for field in (
            "login_max_failures_per_ip",
            "login_max_failures_per_ip_and_email",
            "login_slowdown_after_failures_per_email",
            "csat_link_days",
        ):
            if getattr(self, field) < 1:
                raise SettingsError(f"{ENVIRONMENT[field]} must be at least 1")
        if self.login_slowdown_seconds < 0:
            raise SettingsError("OMNISTREAM_LOGIN_SLOWDOWN_SECONDS must not be negative")
        try:
            secret_box(self.encryption_keys)
        except ValueError as exc:
            raise SettingsError(f"OMNISTREAM_ENCRYPTION_KEYS: {exc}") from exc
        if self.is_production:
            if not self.encryption_keys:
                raise SettingsError("OMNISTREAM_ENCRYPTION_KEYS must be set in production (see `omnistream new-key`)")
            if self.jwt_secret == DEFAULT_JWT_SECRET or len(self.jwt_secret) < 32:
                raise SettingsError(
                    "OMNISTREAM_JWT_SECRET must be set to a random value of at least 32 characters in production"
                )
            if self.embedded:
                raise SettingsError("DATABASE_URL and REDIS_URL must be set in production")
            if not self.cookie_secure:
                raise SettingsError("OMNISTREAM_COOKIE_SECURE must be true in production")
        return self

    def with_urls(self, database_url: str, redis_url: str, migrations_database_url: str = "") -> Settings:
        return msgspec.structs.replace(
            self,
            database_url=database_url,
            redis_url=redis_url,
            migrations_database_url=migrations_database_url or self.migrations_database_url,
        )


# Setting name -> environment variable. Unprefixed names are the conventional ones.
ENVIRONMENT = {
    "env": "OMNISTREAM_ENV",
    "database_url": "DATABASE_URL",
    "migrations_database_url": "MIGRATIONS_DATABASE_URL",
    "redis_url": "REDIS_URL",
    "redis_prefix": "OMNISTREAM_REDIS_PREFIX",
    "data_dir": "OMNISTREAM_DATA_DIR",
    "host": "OMNISTREAM_HOST",
    "port": "OMNISTREAM_PORT",
    "workers": "OMNISTREAM_WORKERS",
    "jwt_secret": "OMNISTREAM_JWT_SECRET",
    "jwt_audience": "OMNISTREAM_JWT_AUDIENCE",
    "jwt_ttl_seconds": "OMNISTREAM_JWT_TTL_SECONDS",
    "cookie_secure": "OMNISTREAM_COOKIE_SECURE",
    "db_pool_min": "OMNISTREAM_DB_POOL_MIN",
    "db_pool_max": "OMNISTREAM_DB_POOL_MAX",
    "db_statement_cache_size": "OMNISTREAM_DB_STATEMENT_CACHE_SIZE",
    "login_max_failures_per_ip": "OMNISTREAM_LOGIN_MAX_FAILURES_PER_IP",
    "login_max_failures_per_ip_and_email": "OMNISTREAM_LOGIN_MAX_FAILURES_PER_IP_AND_EMAIL",
    "login_slowdown_after_failures_per_email": "OMNISTREAM_LOGIN_SLOWDOWN_AFTER_FAILURES_PER_EMAIL",
    "login_slowdown_seconds": "OMNISTREAM_LOGIN_SLOWDOWN_SECONDS",
    "trusted_proxies": "OMNISTREAM_TRUSTED_PROXIES",
    "login_failure_window_seconds": "OMNISTREAM_LOGIN_FAILURE_WINDOW_SECONDS",
    "public_requests_per_minute": "OMNISTREAM_PUBLIC_REQUESTS_PER_MINUTE",
    "log_json": "OMNISTREAM_LOG_JSON",
    "log_level": "OMNISTREAM_LOG_LEVEL",
    "public_url": "OMNISTREAM_PUBLIC_URL",
    "csat_link_days": "OMNISTREAM_CSAT_LINK_DAYS",
    "scheduled_message_min_lead_seconds": "OMNISTREAM_SCHEDULED_MESSAGE_MIN_LEAD_SECONDS",
    "webhooks_allow_private": "OMNISTREAM_WEBHOOKS_ALLOW_PRIVATE",
    "listen_database_url": "OMNISTREAM_LISTEN_DATABASE_URL",
    "metrics_token": "OMNISTREAM_METRICS_TOKEN",
    "encryption_keys": "OMNISTREAM_ENCRYPTION_KEYS",
    "graph_api_url": "OMNISTREAM_GRAPH_API_URL",
    "graph_api_version": "OMNISTREAM_GRAPH_API_VERSION",
    "graph_api_timeout_seconds": "OMNISTREAM_GRAPH_API_TIMEOUT_SECONDS",
    "meta_app_id": "OMNISTREAM_META_APP_ID",
    "meta_app_secret": "OMNISTREAM_META_APP_SECRET",
    "meta_verify_token": "OMNISTREAM_META_VERIFY_TOKEN",
    "meta_embedded_signup_config_id": "OMNISTREAM_META_EMBEDDED_SIGNUP_CONFIG_ID",
    "webhook_max_body_bytes": "OMNISTREAM_WEBHOOK_MAX_BODY_BYTES",
    "email_webhook_max_body_bytes": "OMNISTREAM_EMAIL_WEBHOOK_MAX_BODY_BYTES",
    "smtp_host": "OMNISTREAM_SMTP_HOST",
    "smtp_port": "OMNISTREAM_SMTP_PORT",
    "smtp_username": "OMNISTREAM_SMTP_USERNAME",
    "smtp_password": "OMNISTREAM_SMTP_PASSWORD",
    "smtp_starttls": "OMNISTREAM_SMTP_STARTTLS",
    "smtp_timeout_seconds": "OMNISTREAM_SMTP_TIMEOUT_SECONDS",
    "media_dir": "OMNISTREAM_MEDIA_DIR",
    "media_max_bytes": "OMNISTREAM_MEDIA_MAX_BYTES",
    "s3_endpoint_url": "OMNISTREAM_S3_ENDPOINT_URL",
    "s3_bucket": "OMNISTREAM_S3_BUCKET",
    "s3_region": "OMNISTREAM_S3_REGION",
    "s3_access_key_id": "OMNISTREAM_S3_ACCESS_KEY_ID",
    "s3_secret_access_key": "OMNISTREAM_S3_SECRET_ACCESS_KEY",
}


def load_settings(environ: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from the environment; raises SettingsError naming the bad variable."""
    environ = dict(os.environ if environ is None else environ)
    raw: dict[str, object] = {
        field: environ[variable] for field, variable in ENVIRONMENT.items() if environ.get(variable, "") != ""
    }
    raw.update(overrides)
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        field = str(exc).rsplit("$.", 1)[-1].rstrip("`")
        raise SettingsError(f"{ENVIRONMENT.get(field, field)}: {exc}") from exc
    return settings.validate()
