"""Settings: everything comes from the environment; nothing set means the embedded default."""
import secrets
from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

VAR_DIR = Path(env("AFORO_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """A key from the environment, else one generated once and kept under var/."""
    if env("SECRET_KEY", default=""):
        return env("SECRET_KEY")
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "channels",
    "axes",
    "aforo",
    "notifications",
    "ingestion",
    "billing",
    "cogs",
    "budgets",
    "margin_guard",
    "entitlements",  # after margin_guard: its post-ingest hook runs after the guard's starts
    "intelligence",
    "cost_sources",
    "exports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "aforo.limits.BodyLimitMiddleware",  # 413 before any API view reads a body over its cap
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: answers a locked-out login
]

ROOT_URLCONF = "aforo.urls"
ASGI_APPLICATION = "aforo.asgi.application"
WSGI_APPLICATION = "aforo.wsgi.application"

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

# --- Relational data: SQLite under var/ unless DATABASE_URL names PostgreSQL (psycopg 3).
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'aforo.sqlite3'}")}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=0))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded mode serves from threads; wait for the write lock instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# SQLite cannot enforce "one platform price per model and start" (NULL tenant); the services
# check it before writing, and PostgreSQL enforces it too.
SILENCED_SYSTEM_CHECKS = ["models.W047"]

# --- Event store: chdb under var/ unless CLICKHOUSE_URL names a ClickHouse server.
CLICKHOUSE_URL = env("CLICKHOUSE_URL", default="")
CLICKHOUSE_CLUSTER = env("CLICKHOUSE_CLUSTER", default="")
# Other nodes of the cluster to connect to when CLICKHOUSE_URL's host is down: "host:port,...".
CLICKHOUSE_ALT_HOSTS = env("CLICKHOUSE_ALT_HOSTS", default="")
CHDB_PATH = env("CHDB_PATH", default=str(VAR_DIR / "chdb"))

# --- Redis: Celery broker, channel layer and cache in server mode.
REDIS_URL = env("REDIS_URL", default="")
SERVER_MODE = bool(REDIS_URL)

if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": REDIS_URL}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                  "CONFIG": {"hosts": [REDIS_URL]}}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Jobs: Celery with a Redis broker in server mode; eager tasks and an in-process
# schedule when embedded (see aforo/celery.py for every periodic job).
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
AFORO_IN_PROCESS_SCHEDULE = env.bool("AFORO_IN_PROCESS_SCHEDULE", default=not REDIS_URL)
# `make demo` sets it: the demo tenant gets a few live events every few seconds.
AFORO_DEMO_TRAFFIC = env.bool("AFORO_DEMO_TRAFFIC", default=False)

# --- Ingestion
AFORO_RETENTION_DAYS = env.int("AFORO_RETENTION_DAYS", default=400)
AFORO_MAX_BODY_BYTES = 5 * 1024 * 1024  # ingest and imports (a view's max_body_bytes)
AFORO_MAX_JSON_BODY_BYTES = 1024 * 1024  # every other API endpoint
# A cost file uploaded to /cost-sources/{id}/imports (a month of CUR is hundreds of MB); files
# past FILE_UPLOAD_MAX_MEMORY_SIZE stream to a temporary file, never into memory.
# Fernet key(s) encrypting credentials at rest: POLL cost sources' API keys, export DSNs'
# passwords (aforo/credentials.py).
AFORO_CREDENTIALS_KEY = env.str("AFORO_CREDENTIALS_KEY", default="")
AFORO_MAX_COST_FILE_BYTES = env.int("AFORO_MAX_COST_FILE_BYTES", default=2 * 1024 ** 3)
# Uploads larger than this are imported by a background task (the run's rowsRead shows its
# progress); smaller ones inside the request.
AFORO_COST_BACKGROUND_BYTES = env.int("AFORO_COST_BACKGROUND_BYTES", default=32 * 1024 ** 2)
# Django refuses larger bodies before our view can answer 413 with a JSON error.
DATA_UPLOAD_MAX_MEMORY_SIZE = AFORO_MAX_BODY_BYTES + 1024

# --- Alerts: where links point, and how email leaves (SMTP when EMAIL_HOST is set).
AFORO_PUBLIC_URL = env("AFORO_PUBLIC_URL", default="http://127.0.0.1:8000")
# Slack and webhook destinations must be https; allow http for local sinks in development.
AFORO_ALLOW_HTTP_WEBHOOKS = env.bool("AFORO_ALLOW_HTTP_WEBHOOKS", default=False)
# Outbound requests (aforo.outbound) go to public addresses only; these hosts (names, addresses
# or networks) are allowed although they resolve to internal addresses.
AFORO_OUTBOUND_ALLOWED_HOSTS = env.list("AFORO_OUTBOUND_ALLOWED_HOSTS", default=[])
# Margin Guard writes its hourly decision counts from a background thread every second; the test
# suite turns it off (reports flush their own process's counts) so it never races a teardown.
AFORO_GUARD_COUNTS_FLUSH_THREAD = env.bool("AFORO_GUARD_COUNTS_FLUSH_THREAD", default=True)
# One thread per process re-reads the decision door's mirrors (0.25 s) and tokens (1 s) off the
# request path (aforo/refresher.py); the tests switch it off and run its rounds themselves.
AFORO_REFRESH_THREAD = env.bool("AFORO_REFRESH_THREAD", default=True)
# The Slack app's signing secret: Slack's button presses (Override throttle) are verified with it.
AFORO_SLACK_SIGNING_SECRET = env("AFORO_SLACK_SIGNING_SECRET", default="")
AFORO_PAGERDUTY_URL = env("AFORO_PAGERDUTY_URL",
                          default="https://events.pagerduty.com/v2/enqueue")
EMAIL_HOST = env("EMAIL_HOST", default="")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="alerts@aforo.local")
EMAIL_BACKEND = ("django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST
                 else "django.core.mail.backends.console.EmailBackend")

# --- Login throttling (django-axes) on the console and admin login forms: after 5 failures
# for one user name from one address, that pair is locked out for 15 minutes.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AFORO_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AFORO_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "console/locked_out.html"
AXES_IPWARE_PROXY_COUNT = env.int("AFORO_PROXY_COUNT", default=0) or None
AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]

# --- Production security, one switch: AFORO_SECURE=true behind TLS (off for `make demo` on
# plain http). `manage.py check --deploy` is clean with it on (tested).
AFORO_SECURE = env.bool("AFORO_SECURE", default=False)
if AFORO_SECURE:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env.bool("AFORO_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain http
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("AFORO_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("AFORO_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("AFORO_HSTS_PRELOAD", default=True)
    SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/console/login/"
LOGIN_REDIRECT_URL = "/console/"
LOGOUT_REDIRECT_URL = "/console/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = True
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "aforo.plotly_static.PlotlyFinder",  # plotly.min.js from the plotly package, never a CDN
]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "aforo.authentication.BearerTokenAuthentication",
        "aforo.authentication.TenantSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["aforo.permissions.CanRead"],
    "DEFAULT_RENDERER_CLASSES": ["aforo.renderers.ExactJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "aforo.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Aforo API",
    "DESCRIPTION": "Margin control plane for usage-billed and AI products.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "CAMELIZE_NAMES": False,
    "ENUM_NAME_OVERRIDES": {"ChannelEnum": "notifications.models.Channel",
                            "AlertWindowEnum": "budgets.models.AlertRule.Window",
                            "GuardWindowEnum": "margin_guard.models.GuardPolicy.Window",
                            "ComponentKindEnum": "billing.models.ComponentKind",
                            "BudgetStatusEnum": ["ON_TRACK", "WARNING", "OVER_BUDGET"],
                            "CostSourceKindEnum": "cost_sources.models.Kind",
                            "CostSourceModeEnum": "cost_sources.models.Mode",
                            "AllocationByEnum": "cost_sources.models.Allocation.By",
                            "GuardModeEnum": "margin_guard.models.GuardPolicy.Mode",
                            "ExportDestinationKindEnum": ["WEBHOOK", "POSTGRES", "CLICKHOUSE"]},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "ingestion.openapi.add_events_path",
        "margin_guard.openapi.add_decide_path",
        "aforo.openapi.add_error_responses",  # last: every operation, hooks' paths included
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="WARNING")},
}
