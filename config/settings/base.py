"""Settings shared by every environment, read from the environment.

With no environment at all this is the embedded default the demo runs on: SQLite, Celery on the
filesystem transport and a file cache, so nothing but Python is needed.
"""

import secrets
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from celery.schedules import crontab
from cryptography.fernet import Fernet

from config.env import BASE_DIR, env

VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("DJANGO_DEBUG", default=False)


def _local_secret(name: str, make: "Callable[[], str]") -> str:
    """A secret generated on first run and kept under VAR_DIR (development and demo only)."""
    path = VAR_DIR / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or _local_secret(
    "secret_key", lambda: secrets.token_urlsafe(50)
)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "allauth",
    "allauth.account",
    "accounts",
    "messaging",
    "webhooks",
    "automation",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.input_guard.UnstorableInputMiddleware",
    # Meta's deliveries skip the rest: they carry no session, person or tenant.
    "webhooks.middleware.MetaWebhookMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "accounts.tenancy.TenantMiddleware",
    "config.api.RateLimitHeadersMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
AUTH_USER_MODEL = "accounts.User"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "frontend" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.tenancy.tenant_context",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'platform.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default: web and worker processes share one file, so take write locks up
    # front and wait for them instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "config.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="igdm"),
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "frontend" / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
MEDIA_ROOT = VAR_DIR / "media"

# People: django-allauth, email and password, email verification.
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = env.str("ACCOUNT_EMAIL_VERIFICATION", default="mandatory")
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_SIGNUP_FORM_CLASS = "accounts.forms.WorkspaceSignupForm"
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
ACCOUNT_EMAIL_SUBJECT_PREFIX = "Relay: "
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = True
ACCOUNT_SESSION_REMEMBER = None
ACCOUNT_RATE_LIMITS = {
    "login_failed": "5/5m/ip,5/5m/key",
    "login": "30/m/ip",
    "signup": "20/m/ip",
    "confirm_email": "1/3m/key",
    "reset_password": "20/m/ip,5/m/key",
}
LOGIN_REDIRECT_URL = "frontend:home"
LOGIN_URL = "account_login"
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Relay <no-reply@localhost>")

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# Secrets at rest: MultiFernet keys, newest first. Comma separated urlsafe base64 keys.
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[]) or [
    _local_secret("field_encryption_key", lambda: Fernet.generate_key().decode())
]

# Partner API.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.api.permissions.HasApiKeyScope"],
    "DEFAULT_THROTTLE_CLASSES": ["config.api.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": env.str("API_KEY_RATE", default="600/min")},
    "DEFAULT_PAGINATION_CLASS": "config.api.CursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["config.input_guard.StorableJSONParser"],
    "UNAUTHENTICATED_USER": None,
    "DATETIME_FORMAT": "%Y-%m-%dT%H:%M:%S.%fZ",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Relay Partner API",
    "DESCRIPTION": (
        "Read and answer the Instagram Direct inboxes of a workspace. Authenticate with "
        "`Authorization: Bearer <key>`; a key belongs to one workspace and carries scopes.\n\n"
        "**Conventions.** Lists are cursor-paginated (`next` / `previous` links, `page_size` "
        "up to 200). Times are ISO-8601 in UTC (`2026-11-25T12:00:00.000000Z`). Every error is "
        '`{"error": {"code", "message", "detail"}}` with a stable `code` (see the '
        "`Error` schema for the list, including the refusal codes of sends). Every POST takes "
        "an `Idempotency-Key` header: a repeat with the same key answers with the first "
        "result; the same key with a different request answers 422 `idempotency_key_reused`. "
        "Every answer carries `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`; "
        "over the budget the answer is 429 with `Retry-After`. Related objects are embedded "
        "where a partner would otherwise need one call per row: a conversation in a list "
        "carries its contact and last message; a message carries its reactions and the "
        "message it quotes.\n\n"
        "**Event callbacks.** Register a URL with `POST /api/v1/webhook-endpoints` and the "
        "event types it wants. Each event is POSTed as JSON (the `CallbackEvent` schema) with "
        "`X-Relay-Signature: t=<unix time>,v1=<hex>`, where the hex is HMAC-SHA256 of "
        "`<t>.<raw body>` keyed with the endpoint's signing key; during a key rotation a second "
        "`v1` is signed with the previous key. Refuse timestamps older than 5 minutes. Answer "
        "2xx within 10 seconds; anything else is retried with exponential backoff for 24 hours. "
        "A conversation's events arrive in order (`sequence` 1, 2, 3…): event N+1 is sent "
        "only once N was delivered or given up. An endpoint failing for a day is turned off "
        "and the workspace's owners and admins are emailed."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "ApiKey": {"type": "http", "scheme": "bearer", "description": "A partner API key."}
        }
    },
    "SECURITY": [{"ApiKey": []}],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.api_schema.document_conventions",
    ],
    "ENUM_NAME_OVERRIDES": {
        "InstagramAccountStatusEnum": "accounts.models.InstagramAccount.Status",
        "AccountHealthEnum": "accounts.models.AccountHealth",
        "OnboardingLinkStateEnum": "accounts.models.OnboardingLink.State",
        "MessageKindEnum": "messaging.models.Message.Kind",
        "SendKindEnum": "messaging.api.views_send.SEND_KINDS",
        "ButtonTypeEnum": "messaging.api.views_send.BUTTON_TYPES",
    },
}

# Celery.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
    }
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "webhooks.*": {"queue": "webhooks"},
    "outbound.*": {"queue": "outbound"},
    "maintenance.*": {"queue": "maintenance"},
}
CELERY_TIMEZONE = "UTC"
# Workers run this much nicer than web processes (0: the same priority), so that on shared
# CPUs webhook acknowledgements and pages go first and stored work takes what is left.
WORKER_CPU_NICE = env.int("WORKER_CPU_NICE", default=10)
# Worker processes keep their PostgreSQL connections in a pool (at most one per task the worker
# runs at once) instead of opening one for every task; off: one connection per task.
WORKER_DB_POOL = env.bool("WORKER_DB_POOL", default=True)
# Celery's closing of every connection after each task would also throw away a prefork child's
# pool; with the pool it happens every 1,000 tasks (the pool is then rebuilt), and after each
# task the connection only goes back to the pool (config.celery_app).
CELERY_DB_REUSE_MAX = 1000 if WORKER_DB_POOL else None
CELERY_BEAT_SCHEDULE = {
    # A safety net under the relay: stored webhook events are processed even if it stopped.
    "webhooks-drain": {
        "task": "webhooks.drain",
        "schedule": timedelta(seconds=15),
        "options": {"expires": 14},
    },
    "worker-heartbeat": {
        "task": "maintenance.heartbeat",
        "schedule": timedelta(seconds=30),
        "options": {"expires": 25},
    },
    # Instagram Login tokens last 60 days: refreshed once fewer than 20 remain.
    "accounts-refresh-instagram-tokens": {
        "task": "accounts.refresh_instagram_tokens",
        "schedule": timedelta(hours=6),
        "options": {"expires": 3600},
    },
    # Partner event callbacks: due deliveries go out (the delivery rows are the outbox).
    "callbacks-relay": {
        "task": "callbacks.relay",
        "schedule": timedelta(seconds=5),
        "options": {"expires": 4},
    },
    # Every connected account's token and webhook subscription, checked once a day.
    "accounts-check-account-tokens": {
        "task": "accounts.check_account_tokens",
        "schedule": timedelta(hours=1),
        "options": {"expires": 1800},
    },
    # Nightly: message content past each workspace's retention period is erased, and raw Meta
    # deliveries lose their bodies after WEBHOOK_RAW_BODY_RETENTION_DAYS.
    "accounts-retention-purge": {
        "task": "accounts.retention_purge_all",
        "schedule": crontab(hour=3, minute=17),
        "options": {"expires": 6 * 3600},
    },
    # Deletion requests and workspace deletions interrupted by a crash are picked up again.
    "accounts-compliance-resume": {
        "task": "accounts.compliance_resume",
        "schedule": timedelta(minutes=10),
        "options": {"expires": 540},
    },
    # Automation runs still waiting for a partner's bot after a lost task are asked again.
    "automation-sweep-pending-runs": {
        "task": "automation.sweep_pending_runs",
        "schedule": timedelta(minutes=5),
        "options": {"expires": 240},
    },
}
# Raw Meta deliveries keep their bytes this long after processing (replays are still
# recognised afterwards by the hash that stays).
WEBHOOK_RAW_BODY_RETENTION_DAYS = env.int("WEBHOOK_RAW_BODY_RETENTION_DAYS", default=7)
# A data-deletion callback whose signed_request was issued longer ago than this is refused.
DATA_DELETION_MAX_AGE_SECONDS = env.int("DATA_DELETION_MAX_AGE_SECONDS", default=86400)
# A worker is healthy if it wrote a heartbeat within this many seconds.
WORKER_HEARTBEAT_MAX_AGE = env.int("WORKER_HEARTBEAT_MAX_AGE", default=90)

# Meta.
META_APP_ID = env.str("META_APP_ID", default="")
META_APP_SECRET = env.str("META_APP_SECRET", default="")
META_INSTAGRAM_APP_ID = env.str("META_INSTAGRAM_APP_ID", default="")
META_INSTAGRAM_APP_SECRET = env.str("META_INSTAGRAM_APP_SECRET", default="")
META_GRAPH_VERSION = env.str("META_GRAPH_VERSION", default="v25.0")
META_GRAPH_URL = env.str("META_GRAPH_URL", default="https://graph.facebook.com")
META_INSTAGRAM_GRAPH_URL = env.str(
    "META_INSTAGRAM_GRAPH_URL", default="https://graph.instagram.com"
)
# Where people log in with Meta. Meta's own pages; the demo points them at the sandbox.
META_FACEBOOK_DIALOG_URL = env.str("META_FACEBOOK_DIALOG_URL", default="https://www.facebook.com")
META_INSTAGRAM_AUTHORIZE_URL = env.str(
    "META_INSTAGRAM_AUTHORIZE_URL", default="https://www.instagram.com/oauth/authorize"
)
META_INSTAGRAM_API_URL = env.str("META_INSTAGRAM_API_URL", default="https://api.instagram.com")
# A Facebook Login for Business configuration id; without one the dialog asks for scopes.
META_FACEBOOK_CONFIG_ID = env.str("META_FACEBOOK_CONFIG_ID", default="")
META_WEBHOOK_VERIFY_TOKEN = env.str("META_WEBHOOK_VERIFY_TOKEN", default="")
META_TIMEOUT_SECONDS = env.float("META_TIMEOUT_SECONDS", default=10.0)
# History import through the Conversations API: page size, the pause between calls (Meta allows
# about 2 calls a second) and how long one task runs before handing over to the next.
BACKFILL_PAGE_SIZE = env.int("BACKFILL_PAGE_SIZE", default=25)
BACKFILL_MIN_CALL_INTERVAL = env.float("BACKFILL_MIN_CALL_INTERVAL", default=0.55)
BACKFILL_RUN_SECONDS = env.int("BACKFILL_RUN_SECONDS", default=120)
# Outbound sending (messaging.outbox). Meta's per-account limits (REFERENCE.md §8): text,
# reactions and stickers 100 calls/s (the lower of the two published figures), audio and
# video 10/s, private replies 750/hour. Ours stay 20 % below them.
OUTBOUND_RATE_LIMITS = {
    "text": (env.int("OUTBOUND_RATE_TEXT", default=80), 1.0),
    "media": (env.int("OUTBOUND_RATE_MEDIA", default=8), 1.0),
    "private_reply": (env.int("OUTBOUND_RATE_PRIVATE_REPLY", default=600), 3600.0),
}
# Rows of one account in the broker or in a worker at once: a busy account never stands in
# front of the others. Enough to keep the text rate busy when Meta takes ~200 ms.
OUTBOUND_ACCOUNT_MAX_IN_FLIGHT = env.int("OUTBOUND_ACCOUNT_MAX_IN_FLIGHT", default=24)
# Rows of one account handed to a worker in one task: claimed, read, budgeted and written
# together, their calls to Meta made side by side on the worker's call threads.
OUTBOUND_BATCH_SIZE = env.int("OUTBOUND_BATCH_SIZE", default=8)
# Threads per outbound worker process that wait on Meta for a batch's sends.
OUTBOUND_CALL_THREADS = env.int("OUTBOUND_CALL_THREADS", default=64)
# How long a worker waits in line for the account's budget before handing the row back.
OUTBOUND_TOKEN_MAX_WAIT = env.float("OUTBOUND_TOKEN_MAX_WAIT", default=1.0)
# Transient failures: exponential backoff with full jitter, uniform in
# [0, min(cap, base * 2^attempt)]; after the last attempt the row is dead (about 45 min).
OUTBOUND_MAX_ATTEMPTS = env.int("OUTBOUND_MAX_ATTEMPTS", default=8)
OUTBOUND_BACKOFF_BASE = env.float("OUTBOUND_BACKOFF_BASE", default=30.0)
OUTBOUND_BACKOFF_CAP = env.float("OUTBOUND_BACKOFF_CAP", default=600.0)
# A worker that dies this many times on one row puts it aside as dead.
OUTBOUND_MAX_CRASHES = env.int("OUTBOUND_MAX_CRASHES", default=5)
# A claimed row belongs to its worker this long (more than two Graph calls with timeouts).
OUTBOUND_LEASE_SECONDS = env.int("OUTBOUND_LEASE_SECONDS", default=30)
# A row handed to the broker this long ago without a worker taking it is handed on again.
OUTBOUND_REPUBLISH_AFTER = env.int("OUTBOUND_REPUBLISH_AFTER", default=30)
# Meta's "too fast" without a figure pauses the account this long (and never longer than max).
OUTBOUND_RATE_LIMIT_PAUSE = env.float("OUTBOUND_RATE_LIMIT_PAUSE", default=60.0)
OUTBOUND_RATE_LIMIT_PAUSE_MAX = env.float("OUTBOUND_RATE_LIMIT_PAUSE_MAX", default=3600.0)
# Reconciliation: clock margin when matching a lost send in the thread, and the wait before
# asking Meta again when it could not be asked.
OUTBOUND_RECONCILE_SKEW = env.float("OUTBOUND_RECONCILE_SKEW", default=60.0)
OUTBOUND_RECONCILE_RETRY = env.float("OUTBOUND_RECONCILE_RETRY", default=5.0)
# Meta's batches stay under about 2 MB; anything far larger is refused with 413 unread.
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=4 * 1024 * 1024)
# Wake-ups for the inbound workers waiting in the broker at most (about the workers that serve
# the webhooks queue): the relay publishes no more while that many wait.
WEBHOOK_DRAIN_WAKEUPS = env.int("WEBHOOK_DRAIN_WAKEUPS", default=4)
# Stored deliveries an inbound worker claims at once: customers' messages for known threads
# among them are stored together in one transaction; 1 processes every delivery alone.
WEBHOOK_BATCH_SIZE = env.int("WEBHOOK_BATCH_SIZE", default=50)

# Partner event callbacks: timeouts of one delivery, the retry schedule (exponential backoff
# with jitter from the base up to the cap, for the window), when a failing endpoint is turned
# off, and whether loopback and private addresses may receive events (never in production).
CALLBACK_CONNECT_TIMEOUT_SECONDS = env.float("CALLBACK_CONNECT_TIMEOUT_SECONDS", default=3.0)
CALLBACK_TIMEOUT_SECONDS = env.float("CALLBACK_TIMEOUT_SECONDS", default=10.0)
CALLBACK_RETRY_BASE_SECONDS = env.float("CALLBACK_RETRY_BASE_SECONDS", default=30.0)
CALLBACK_RETRY_MAX_DELAY_SECONDS = env.float("CALLBACK_RETRY_MAX_DELAY_SECONDS", default=3600.0)
CALLBACK_RETRY_WINDOW_SECONDS = env.int("CALLBACK_RETRY_WINDOW_SECONDS", default=24 * 3600)
CALLBACK_DISABLE_AFTER_SECONDS = env.int("CALLBACK_DISABLE_AFTER_SECONDS", default=24 * 3600)
CALLBACKS_ALLOW_PRIVATE_URLS = env.bool("CALLBACKS_ALLOW_PRIVATE_URLS", default=False)
# Partner API: how long an Idempotency-Key is remembered.
IDEMPOTENCY_KEY_TTL_SECONDS = env.int("IDEMPOTENCY_KEY_TTL_SECONDS", default=24 * 3600)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
