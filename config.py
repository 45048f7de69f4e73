"""ClinicDesk configuration, read from environment variables.

``CLINICDESK_ENV`` (development | test | production, default development) picks the class.
Production refuses to start unless ``SECRET_KEY``, ``DATABASE_URL`` and ``REDIS_URL`` are set;
development keeps a random secret key in the git-ignored ``instance/`` folder.
"""

from __future__ import annotations

import base64
import os
import secrets
from datetime import timedelta
from pathlib import Path

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = Path(os.environ.get("CLINICDESK_INSTANCE_DIR", BASE_DIR / "instance"))


class ConfigError(RuntimeError):
    """The environment does not describe a configuration the app can run with."""


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def _instance_secret_key() -> str:
    """A per-installation development key, created once and kept out of git."""
    path = INSTANCE_DIR / "secret_key"
    if not path.exists():
        INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def derive_key(secret_key: str, info: bytes) -> str:
    """32 bytes of key for the purpose named by ``info`` (HKDF-SHA256), url-safe base64."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info)
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode())).decode()


def derive_data_key(secret_key: str) -> str:
    """A Fernet key derived from SECRET_KEY (HKDF-SHA256), for when CLINICDESK_DATA_KEY is unset."""
    return derive_key(secret_key, b"clinicdesk data key")


def _sqlalchemy_url(url: str) -> str:
    # Hosting platforms hand out "postgres://"; SQLAlchemy 2 wants "postgresql://" (psycopg 3).
    if url.startswith("postgres://"):
        return "postgresql://" + url[len("postgres://"):]
    return url


class Config:
    """Settings shared by every environment."""

    ENV_NAME = "base"
    APP_NAME = "ClinicDesk"
    SECRET_KEY: str | None = os.environ.get("SECRET_KEY")
    SQLALCHEMY_DATABASE_URI: str | None = None
    SQLALCHEMY_TRACK_MODIFICATIONS = False
    # hide_parameters: a database error's message (and so a log line) never quotes row values.
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True, "hide_parameters": True}
    REDIS_URL: str | None = os.environ.get("REDIS_URL") or None
    # Jobs run in-process when no Redis is configured (development without Redis).
    JOBS_INLINE: bool = False
    RQ_QUEUES = ("default", "reports", "maintenance")
    # An open lead with contact consent and no communication for this many hours gets an
    # automatic follow-up (app/jobs/follow_ups.py).
    FOLLOW_UP_QUIET_HOURS = _env_int("CLINICDESK_FOLLOW_UP_QUIET_HOURS", 24)
    REDIS_HEALTH_TIMEOUT = 0.5

    # Flask-AppBuilder: migrations own the schema and `clinic init` owns permissions.
    FAB_CREATE_DB = False
    FAB_UPDATE_PERMS = False
    FAB_SECURITY_MANAGER_CLASS = "app.security.manager.ClinicSecurityManager"
    FAB_BASE_TEMPLATE = "clinic/base.html"
    FAB_INDEX_VIEW = "app.views.home.HomeView"
    FAB_ADD_SECURITY_PERMISSION_VIEW = False
    FAB_ADD_SECURITY_VIEW_MENU_VIEW = False
    FAB_ADD_SECURITY_PERMISSION_VIEWS_VIEW = False
    FAB_PASSWORD_HASH_METHOD = "scrypt"
    # Length, common-password and own-name checks (app/security/passwords.py, bound in create_app).
    FAB_PASSWORD_COMPLEXITY_ENABLED = True
    FAB_API_SWAGGER_UI = True
    FAB_API_MAX_PAGE_SIZE = 100
    AUTH_TYPE = 1  # AUTH_DB
    AUTH_ROLE_ADMIN = "Admin"
    AUTH_ROLE_PUBLIC = "Public"
    AUTH_USER_REGISTRATION = False
    APP_ICON = ""
    APP_THEME = ""

    # Languages offered in the UI; translations live in the top-level translations/ folder.
    BABEL_DEFAULT_LOCALE = "en"
    BABEL_TRANSLATION_DIRECTORIES = str(BASE_DIR / "translations")
    LANGUAGES = {
        "en": {"flag": "gb", "name": "English"},
        "es": {"flag": "es", "name": "Español"},
    }

    # Forms need a CSRF token; sessions get safe cookie flags.
    WTF_CSRF_ENABLED = True
    WTF_CSRF_TIME_LIMIT = None
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _env_bool("CLINICDESK_SECURE_COOKIES", False)
    REMEMBER_COOKIE_HTTPONLY = True
    # Sessions end after SESSION_IDLE_MINUTES without a request and SESSION_MAX_HOURS after
    # sign-in, checked on the server at every request (app/security/sessions.py). No
    # "remember me": a remember cookie is never issued, and one presented is refused.
    SESSION_IDLE_MINUTES = _env_int("CLINICDESK_IDLE_MINUTES", 15)
    SESSION_MAX_HOURS = _env_int("CLINICDESK_SESSION_MAX_HOURS", 12)
    # The cookie is rewritten only when the session changes: last-seen moves once a minute, so
    # the browser keeps the cookie a minute longer than the idle limit the server enforces.
    PERMANENT_SESSION_LIFETIME = timedelta(minutes=SESSION_IDLE_MINUTES + 1)
    SESSION_REFRESH_EACH_REQUEST = False
    # API tokens: an access token lives 15 minutes, a refresh token no longer than a session.
    JWT_ACCESS_TOKEN_EXPIRES = timedelta(minutes=15)
    JWT_REFRESH_TOKEN_EXPIRES = timedelta(hours=SESSION_MAX_HOURS)
    # Strict-Transport-Security max-age in seconds; 0 sends none (production sets a year).
    HSTS_SECONDS = 0

    # Flask-Limiter: one limiter, its counters in Redis when Redis is configured.
    RATELIMIT_ENABLED = True
    AUTH_RATE_LIMITED = True
    AUTH_RATE_LIMIT = os.environ.get("CLINICDESK_AUTH_RATE_LIMIT", "10 per 20 second")
    RATELIMIT_KEY_PREFIX = "clinicdesk-limits"
    RATELIMIT_HEADERS_ENABLED = True
    RATELIMIT_SWALLOW_ERRORS = True
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    # The public appointment request form: per-address limits on its POSTs, and the least
    # time (seconds) a person takes to fill it in; a faster submission is refused as a bot's.
    PUBLIC_FORM_RATE_LIMIT = os.environ.get(
        "CLINICDESK_PUBLIC_FORM_RATE_LIMIT", "5 per hour;20 per day"
    )
    PUBLIC_FORM_MIN_SECONDS = _env_int("CLINICDESK_PUBLIC_FORM_MIN_SECONDS", 3)
    # Number of reverse proxies in front of the app whose X-Forwarded-For may be trusted.
    PROXY_FIX_HOPS = _env_int("CLINICDESK_PROXY_HOPS", 0)

    # Per-account lockout: password and two-factor failures count together.
    AUTH_LOCKOUT_THRESHOLD = _env_int("CLINICDESK_LOCKOUT_THRESHOLD", 5)
    AUTH_LOCKOUT_MINUTES = _env_int("CLINICDESK_LOCKOUT_MINUTES", 15)
    # Fernet key for secrets kept in the database (TOTP secrets); validate() derives one from
    # SECRET_KEY when CLINICDESK_DATA_KEY is not set.
    DATA_ENCRYPTION_KEY: str | None = os.environ.get("CLINICDESK_DATA_KEY") or None
    # HMAC key of the audit trail's hash chain; validate() derives one from SECRET_KEY when
    # CLINICDESK_AUDIT_KEY is not set (set it before ever rotating SECRET_KEY).
    AUDIT_HMAC_KEY: str | None = os.environ.get("CLINICDESK_AUDIT_KEY") or None

    MAX_CONTENT_LENGTH = 8 * 1024 * 1024
    BRANCH_LOGO_MAX_BYTES = 512 * 1024

    # Request logs drop query strings (a search may carry a patient's name).
    LOG_LEVEL = os.environ.get("CLINICDESK_LOG_LEVEL", "INFO")

    @classmethod
    def validate(cls) -> None:
        """Refuse to run with an incomplete configuration.

        :raises ConfigError: when a required setting is missing.
        """
        if not cls.SECRET_KEY:
            raise ConfigError("SECRET_KEY is not set")
        if not cls.SQLALCHEMY_DATABASE_URI:
            raise ConfigError("DATABASE_URL is not set")
        if not cls.DATA_ENCRYPTION_KEY:
            cls.DATA_ENCRYPTION_KEY = derive_data_key(cls.SECRET_KEY)
        if not cls.AUDIT_HMAC_KEY:
            cls.AUDIT_HMAC_KEY = derive_key(cls.SECRET_KEY, b"clinicdesk audit key")
        try:
            Fernet(cls.DATA_ENCRYPTION_KEY)
        except ValueError:
            raise ConfigError(
                "CLINICDESK_DATA_KEY must be a Fernet key (32 url-safe base64-encoded bytes)"
            ) from None


class DevelopmentConfig(Config):
    """A laptop or a demo box: SQLite in instance/, jobs inline unless REDIS_URL is set."""

    ENV_NAME = "development"
    SECRET_KEY = os.environ.get("SECRET_KEY") or None
    SQLALCHEMY_DATABASE_URI = _sqlalchemy_url(
        os.environ.get("DATABASE_URL") or f"sqlite:///{INSTANCE_DIR / 'clinicdesk.db'}"
    )
    JOBS_INLINE = Config.REDIS_URL is None
    RATELIMIT_STORAGE_URI = Config.REDIS_URL or "memory://"

    @classmethod
    def validate(cls) -> None:
        if not cls.SECRET_KEY:
            cls.SECRET_KEY = _instance_secret_key()
        super().validate()


class TestConfig(Config):
    """The test suite: a real database (DATABASE_URL or SQLite) and a real Redis when REDIS_URL is set."""

    ENV_NAME = "test"
    TESTING = True
    SECRET_KEY = "test-only-secret-key-not-for-production"  # noqa: S105 - test config only
    SQLALCHEMY_DATABASE_URI = _sqlalchemy_url(
        os.environ.get("DATABASE_URL") or f"sqlite:///{INSTANCE_DIR / 'test.db'}"
    )
    JOBS_INLINE = Config.REDIS_URL is None
    RATELIMIT_STORAGE_URI = Config.REDIS_URL or "memory://"
    RATELIMIT_KEY_PREFIX = "clinicdesk-test-limits"
    FAB_PASSWORD_HASH_METHOD = "pbkdf2:sha256:1000"  # fast hashes keep the suite quick


class ProductionConfig(Config):
    """A clinic's server: every secret and service address comes from the environment."""

    ENV_NAME = "production"
    SQLALCHEMY_DATABASE_URI = (
        _sqlalchemy_url(os.environ["DATABASE_URL"]) if os.environ.get("DATABASE_URL") else None
    )
    RATELIMIT_STORAGE_URI = Config.REDIS_URL
    SESSION_COOKIE_SECURE = _env_bool("CLINICDESK_SECURE_COOKIES", True)
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    PREFERRED_URL_SCHEME = "https"
    HSTS_SECONDS = 365 * 24 * 3600

    @classmethod
    def validate(cls) -> None:
        super().validate()
        if not cls.REDIS_URL:
            raise ConfigError("REDIS_URL is not set")


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "test": TestConfig,
    "production": ProductionConfig,
}


def config_from_env() -> type[Config]:
    """The config class named by CLINICDESK_ENV.

    :raises ConfigError: for an unknown environment name.
    """
    name = os.environ.get("CLINICDESK_ENV", "development").strip().lower()
    try:
        return CONFIGS[name]
    except KeyError:
        raise ConfigError(
            f"CLINICDESK_ENV must be one of {', '.join(CONFIGS)}, not {name!r}"
        ) from None
