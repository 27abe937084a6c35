"""Test settings: real PostgreSQL and Redis, as in production."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/igdm")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-not-for-production-use-0123456789")
os.environ.setdefault("FIELD_ENCRYPTION_KEYS", "ZmRlYnVnLWtleS1mb3ItdGVzdHMtb25seS0xMjM0NTY=")
# One id per test run, shared with the worker processes a run starts: its broker keys, cache
# keys and database are its own, so parallel runs on one machine never see each other's work.
TEST_RUN_ID = os.environ.setdefault("TEST_RUN_ID", str(os.getpid()))
os.environ.setdefault("CACHE_KEY_PREFIX", f"igdm-test-{TEST_RUN_ID}")
os.environ.setdefault("ACCOUNT_EMAIL_VERIFICATION", "mandatory")
os.environ.setdefault("META_APP_ID", "100000000000001")
os.environ.setdefault("META_APP_SECRET", "test-meta-app-secret")
os.environ.setdefault("META_INSTAGRAM_APP_ID", "200000000000002")
os.environ.setdefault("META_INSTAGRAM_APP_SECRET", "test-instagram-app-secret")
os.environ.setdefault("META_WEBHOOK_VERIFY_TOKEN", "test-verify-token")
# Partner callbacks go to receivers on this machine, and retry quickly.
os.environ.setdefault("CALLBACKS_ALLOW_PRIVATE_URLS", "true")
os.environ.setdefault("CALLBACK_RETRY_BASE_SECONDS", "0.2")
os.environ.setdefault("CALLBACK_RETRY_MAX_DELAY_SECONDS", "1")
os.environ.setdefault("CALLBACK_TIMEOUT_SECONDS", "5")

from config.settings.base import *  # noqa: E402, F403
from config.settings.base import (  # noqa: E402
    CELERY_BROKER_TRANSPORT_OPTIONS,
    DATABASES,
    REST_FRAMEWORK,
)

DEBUG = False
# One test database per test process, so parallel runs on one machine never share one.
DATABASES["default"]["TEST"] = {"NAME": f"test_igdm_{TEST_RUN_ID}"}
CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,
    "global_keyprefix": f"test-{TEST_RUN_ID}:",
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", "")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"api_key": os.environ.get("API_KEY_RATE", "1000/min")},
}
# Tasks run on the live worker in integration tests; elsewhere they are published for real.
CELERY_TASK_ALWAYS_EAGER = False
