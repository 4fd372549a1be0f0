"""Settings for the Integrator Portal.

One module, configured only through environment variables (django-environ). Every knob has a
default that is safe on a developer's machine; production differs only by its environment
(see README, "Configuration").
"""

import secrets
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("PORTAL_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def _default_secret_key() -> str:
    """A per-checkout random key kept under var/, so a dev run never uses a published key."""
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(64))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="") or _default_secret_key()
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# The sandbox simulates the vendors over real HTTP inside this process. Never on in production.
SANDBOX = env.bool("SANDBOX", default=False)
PORT = env.int("PORT", default=8000)
# Where this portal is reachable from its own workers; used to point clients at the sandbox.
PORTAL_BASE_URL = env.str("PORTAL_BASE_URL", default=f"http://127.0.0.1:{PORT}").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "portal",
    "devices",
    "orders",
    "ingestion",
]
if SANDBOX:
    # One core app (fault injection) and one app per simulated vendor, each with its own tables.
    INSTALLED_APPS += [
        "sandbox",
        "sandbox.myadmin",
        "sandbox.shipping",
        "sandbox.mygeotab",
        "sandbox.dig",
        "sandbox.navixy",
    ]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "portal.middleware.RequestIdMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'portal.sqlite3'}")}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + a busy timeout let the web process, the worker and beat share one SQLite file.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://portal")}

# Admin sign-in: the model backend behind a lockout (portal.auth): after LOGIN_MAX_FAILURES
# failures for a username within LOGIN_LOCKOUT_SECONDS, sign-in is refused for that period.
AUTHENTICATION_BACKENDS = ["portal.auth.LockoutModelBackend"]
LOGIN_MAX_FAILURES = env.int("LOGIN_MAX_FAILURES", default=5)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=900)
LOGIN_MAX_FAILURES_PER_ADDRESS = env.int("LOGIN_MAX_FAILURES_PER_ADDRESS", default=100)
# Dashboard panels are cached this long (seconds): big GROUP BYs run once per period, not per view.
DASHBOARD_CACHE_SECONDS = env.int("DASHBOARD_CACHE_SECONDS", default=30)
# A job with no progress for this long lost its work (portal.jobs.jobs_fail_stale, beat every 10 min).
JOB_STALE_SECONDS = env.int("JOB_STALE_SECONDS", default=3600)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.str("STATIC_ROOT", default=str(VAR_DIR / "static"))
Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=True)
MEDIA_ROOT = env.str("MEDIA_ROOT", default=str(VAR_DIR / "media"))
MEDIA_URL = "media/"
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=32 * 1024 * 1024)

# --- HTTPS hardening: on behind TLS in production (HTTPS=true); `check --deploy` is clean then.
HTTPS = env.bool("HTTPS", default=False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
if env.bool("BEHIND_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# --- REST API
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.auth.PortalTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["portal.roles.RolePermission"],
    "DEFAULT_FILTER_BACKENDS": [
        "portal.api.filters.ListFilterBackend",
        "portal.api.filters.ListSearchFilter",
        "portal.api.filters.ListOrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "portal.api.pagination.KeysetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "portal.api.errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {"user": env.str("API_THROTTLE_USER", default="6000/min")},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Integrator Portal API",
    "DESCRIPTION": "Orders, Geotab devices, Navixy trackers, device data and terminations.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a `status`/`source` choice set: name each enum after its model.
    "ENUM_NAME_OVERRIDES": {
        "DeviceStatusEnum": "devices.models.device.Device.Status",
        "ProvisioningRequestStatusEnum": "devices.models.provisioning.ProvisioningRequest.Status",
        "TerminationStatusEnum": "devices.models.termination.Termination.Status",
        "TerminationSourceEnum": "devices.models.termination.Termination.Source",
        "OrderStatusEnum": "orders.models.Order.Status",
        "OrderSourceEnum": "orders.models.Order.Source",
        "OrderSyncRunStatusEnum": "orders.models.OrderSyncRun.Status",
        "DeviceRecordStatusEnum": "ingestion.models.records.DeviceRecord.Status",
        "TerminationImportRunStatusEnum": "ingestion.models.terminations.TerminationImportRun.Status",
        "JobStatusEnum": "portal.models.Job.Status",
    },
}

# --- Celery (namespace CELERY_). Outcomes live in our tables: no result backend.
BROKER_DATA_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed"):
        (BROKER_DATA_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DATA_DIR / "queue"),
        "data_folder_out": str(BROKER_DATA_DIR / "queue"),
        "control_folder": str(BROKER_DATA_DIR / "control"),
        "processed_folder": str(BROKER_DATA_DIR / "processed"),
        "store_processed": False,
    }
else:
    # A message not acknowledged within this window is redelivered; every task's hard time
    # limit stays well below it (see CELERY_TASK_TIME_LIMIT).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_TIMEOUT = 5
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
# Liveness: beat sends this task every period; /health/ reports the age of its last run.
HEARTBEAT_PERIOD_SECONDS = env.int("HEARTBEAT_PERIOD_SECONDS", default=30)


# --- Vendors. With SANDBOX on and no URL given, each client points at the sandbox, served by
# this portal itself unless SANDBOX_BASE_URL names other processes (the load proof serves the
# simulated vendors from a pool of their own, as real vendors are other machines).
SANDBOX_BASE_URL = env.str("SANDBOX_BASE_URL", default=PORTAL_BASE_URL).rstrip("/")


def _vendor_url(name: str, sandbox_path: str) -> str:
    default = f"{SANDBOX_BASE_URL}/sandbox/{sandbox_path}" if SANDBOX else ""
    return env.str(name, default=default)


MYADMIN_API_URL = _vendor_url("MYADMIN_API_URL", "myadmin/v2/MyAdminApi.ashx")
MYADMIN_SHIPPING_URL = _vendor_url("MYADMIN_SHIPPING_URL", "myadmin/api/v3/shipping/partner")
MYADMIN_USERNAME = env.str("MYADMIN_USERNAME", default="integrator@example.com" if SANDBOX else "")
MYADMIN_PASSWORD = env.str("MYADMIN_PASSWORD", default="sandbox-password" if SANDBOX else "")
MYGEOTAB_SERVER = _vendor_url("MYGEOTAB_SERVER", "mygeotab/apiv1")
DIG_API_URL = _vendor_url("DIG_API_URL", "dig")
DIG_USERNAME = env.str("DIG_USERNAME", default="dig@example.com" if SANDBOX else "")
DIG_PASSWORD = env.str("DIG_PASSWORD", default="sandbox-password" if SANDBOX else "")
NAVIXY_API_URL = _vendor_url("NAVIXY_API_URL", "navixy/api-v2")
NAVIXY_API_KEY = env.str("NAVIXY_API_KEY", default="")
NAVIXY_LOGIN = env.str("NAVIXY_LOGIN", default="integrator@example.com" if SANDBOX else "")
NAVIXY_PASSWORD = env.str("NAVIXY_PASSWORD", default="sandbox-password" if SANDBOX else "")

# Default timeouts for every vendor call (seconds): connect, read.
VENDOR_CONNECT_TIMEOUT = env.float("VENDOR_CONNECT_TIMEOUT", default=5.0)
VENDOR_READ_TIMEOUT = env.float("VENDOR_READ_TIMEOUT", default=30.0)

# Keys for secrets stored in the database (MultiFernet: the first encrypts, all decrypt).
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"}
    },
    "filters": {"request_id": {"()": "portal.middleware.RequestIdLogFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["request_id"]}
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
