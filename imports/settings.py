"""Settings: embedded defaults under DATA_DIR, everything else from environment variables.

With no variable set the service runs on SQLite, kombu's filesystem broker and local storage, all
under ./var, so `make serve` needs no server. Production sets DATABASE_URL (PostgreSQL),
CELERY_BROKER_URL (Redis) and STORAGE_BUCKET with the AWS_* variables (S3); nothing else changes.
docs/configuration.md and docs/operations.md list them.
"""

from pathlib import Path

import environ
from django.core.management.utils import get_random_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

DATA_DIR = Path(env.str("DATA_DIR", default=str(BASE_DIR / "var"))).resolve()
# Folders the embedded defaults keep their files in, made as the app starts (ImportsConfig).
DATA_FOLDERS = [DATA_DIR]


def _secret_key() -> str:
    """Read SECRET_KEY, or keep a generated one under DATA_DIR so restarts keep tokens valid.

    The one file made as settings load, and only when SECRET_KEY is unset: Django needs the key
    before any app starts, and every process must read the same one.
    """
    if key := env.str("SECRET_KEY", default=""):
        return key
    path = DATA_DIR / "secret_key"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(get_random_secret_key())
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])

INSTALLED_APPS = [
    # The admin without autodiscovery at start: imports.urls finds its pages, so that the
    # workers, which serve none, do not load them (and the API's serializers behind them).
    "django.contrib.admin.apps.SimpleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "imports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # The admin's CSS and scripts, served by the one web process (no web server in front needed).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # The API's views are exempt (DRF's APIView): they take a bearer token, never a cookie.
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "imports.urls"
WSGI_APPLICATION = "imports.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    # postgres://user:password@host:5432/name in production (Django's backend, on psycopg 3).
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
}
# Seconds a connection is kept for reuse; 0 opens one per request or task. A kept connection is
# checked before reuse, so one the database dropped meanwhile is replaced, not failed on.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # IMMEDIATE takes the write lock at BEGIN, so concurrent writers queue instead of
        # failing with "database is locked" half-way through a transaction.
        "transaction_mode": "IMMEDIATE",
        "timeout": 60,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# S3 (or any S3-compatible service) when STORAGE_BUCKET is set. These are the standard names
# boto3 and django-storages read, kept as settings so that S3 sources use the same ones. Unset
# or empty means boto3's own default (its credential chain, AWS's endpoint).
AWS_ACCESS_KEY_ID = env.str("AWS_ACCESS_KEY_ID", default="") or None
AWS_SECRET_ACCESS_KEY = env.str("AWS_SECRET_ACCESS_KEY", default="") or None
AWS_SESSION_TOKEN = env.str("AWS_SESSION_TOKEN", default="") or None
AWS_S3_REGION_NAME = env.str("AWS_S3_REGION_NAME", default="") or None
AWS_S3_ENDPOINT_URL = env.str("AWS_S3_ENDPOINT_URL", default="") or None
# Services other than AWS (MinIO, Ceph, moto) are reached by path: http://host/bucket/key.
AWS_S3_ADDRESSING_STYLE = env.str("AWS_S3_ADDRESSING_STYLE", default="") or (
    "path" if AWS_S3_ENDPOINT_URL else None
)
STORAGE_BUCKET = env.str("STORAGE_BUCKET", default="")
STORAGE_PREFIX = env.str("STORAGE_PREFIX", default="").strip("/")


def s3_storage_options(
    bucket: str,
    *,
    prefix: str = "",
    endpoint_url: str | None = None,
    region_name: str | None = None,
    addressing_style: str | None = None,
) -> dict:
    """django-storages' S3Storage options: documents, manifests and reports under `prefix/`."""
    return {
        "bucket_name": bucket,
        "location": prefix,
        "endpoint_url": endpoint_url,
        "region_name": region_name,
        "addressing_style": addressing_style,
        # Stored names are unique per (import, row); a redelivered batch rewrites its own copy.
        "file_overwrite": True,
        # Objects stay private, under the bucket's own policy: files are served through the API,
        # and any URL ever made for one is signed and expires.
        "default_acl": None,
        "querystring_auth": True,
        # A file read back (a manifest, a document served) spills to disk beyond this size.
        "max_memory_size": 16 * 1024**2,
    }


if STORAGE_BUCKET:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": s3_storage_options(
            STORAGE_BUCKET,
            prefix=STORAGE_PREFIX,
            endpoint_url=AWS_S3_ENDPOINT_URL,
            region_name=AWS_S3_REGION_NAME,
            addressing_style=AWS_S3_ADDRESSING_STYLE,
        ),
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        # Stored names are unique per (import, row); a redelivered batch rewrites its own copy.
        "OPTIONS": {"location": str(DATA_DIR / "media"), "allow_overwrite": True},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
STATIC_URL = "static/"
# WhiteNoise serves the apps' static files where they lie: no collectstatic step to forget.
WHITENOISE_USE_FINDERS = True
# The admin's session cookie: never read by scripts, sent over HTTPS only when the service is.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
FILE_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["imports.api.auth.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "imports.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Content type is chosen by the Accept header alone, never by a ?format= parameter.
    "URL_FORMAT_OVERRIDE": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Bulk Import API",
    "DESCRIPTION": "Import legacy document archives in bulk from a manifest CSV.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"EventKindEnum": "imports.models.EventKind"},
}

# Celery: the broker carries messages only; the database records what is done.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_TASK_ACKS_LATE = True
# A task whose pool process died is not put back by Celery (task_reject_on_worker_lost): its
# batch is queued again by imports.tasks.batch_process_lost_queue, counted, so that a row that
# kills its worker every time cannot loop for ever.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Workers sharing a broker take tasks from this queue; another name keeps apart two services.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
# The recovery and upkeep tasks, sent by Celery beat, go to a queue of their own that every
# worker also takes from: on the import's queue they would wait behind all of its batches.
CELERY_UPKEEP_QUEUE = f"{CELERY_TASK_DEFAULT_QUEUE}.upkeep"
CELERY_TASK_QUEUES = {CELERY_TASK_DEFAULT_QUEUE: {}, CELERY_UPKEEP_QUEUE: {}}
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
if CELERY_BROKER_URL.startswith(("redis://", "rediss://", "redis+socket://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # A task taken but not acknowledged (acks_late) by a worker that died without a word
        # (SIGKILL, a lost machine) goes back to the queue only after this many seconds. Keep it
        # above the longest batch: a batch still running past it is delivered a second time.
        "visibility_timeout": env.int("CELERY_BROKER_VISIBILITY_TIMEOUT", default=3600),
    }
elif CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's own, but with each message written whole before a worker can see it.
    CELERY_BROKER_TRANSPORT = "imports.celery:FilesystemTransport"
    _queue = DATA_DIR / "broker" / "queue"
    _processed = DATA_DIR / "broker" / "processed"
    _control = DATA_DIR / "broker" / "control"  # kombu's default is ./control, wherever that is
    DATA_FOLDERS += [_queue, _processed, _control]
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue),
        "data_folder_out": str(_queue),
        "processed_folder": str(_processed),
        "control_folder": str(_control),
        "store_processed": False,
        "polling_interval": 0.1,
    }

_default_source = DATA_DIR / "source"
IMPORT_SOURCE = env.str("IMPORT_SOURCE", default=str(_default_source))
if str(_default_source) == IMPORT_SOURCE:
    DATA_FOLDERS.append(_default_source)
IMPORT_BATCH_SIZE = env.int("IMPORT_BATCH_SIZE", default=500)
IMPORT_MAX_MANIFEST_BYTES = env.int("IMPORT_MAX_MANIFEST_BYTES", default=2 * 1024**3)
IMPORT_MAX_FILE_BYTES = env.int("IMPORT_MAX_FILE_BYTES", default=1024**3)
# Sniffed types a row's file may have; `image/*` takes scans and photographs, TIFF included.
IMPORT_ALLOWED_CONTENT_TYPES = env.list(
    "IMPORT_ALLOWED_CONTENT_TYPES", default=["image/*", "application/pdf"]
)
IMPORT_PENDING_TIMEOUT = env.int("IMPORT_PENDING_TIMEOUT", default=3600)
IMPORT_STALE_AFTER = env.int("IMPORT_STALE_AFTER", default=900)
IMPORT_RETENTION_DAYS = env.int("IMPORT_RETENTION_DAYS", default=30)
# Self-healing (imports.recovery): every running batch, count and report says it is alive every
# IMPORT_HEARTBEAT_SECONDS, from a thread of its own; work silent for IMPORT_BATCH_LOST_AFTER
# seconds is lost and queued again by the beat task that runs every IMPORT_RECOVER_EVERY
# seconds. A batch lost more than IMPORT_BATCH_MAX_REQUEUES times ends its import in error.
IMPORT_HEARTBEAT_SECONDS = env.float("IMPORT_HEARTBEAT_SECONDS", default=10)
IMPORT_BATCH_LOST_AFTER = env.float("IMPORT_BATCH_LOST_AFTER", default=60)
IMPORT_BATCH_MAX_REQUEUES = env.int("IMPORT_BATCH_MAX_REQUEUES", default=3)
IMPORT_RECOVER_EVERY = env.float("IMPORT_RECOVER_EVERY", default=15)
# Upkeep (imports.upkeep): pending imports expired, retention, stray copies, staged cells.
IMPORT_UPKEEP_EVERY = env.float("IMPORT_UPKEEP_EVERY", default=300)
# Files a batch reads and copies at once: raise it for S3, whose requests wait on the network.
IMPORT_COPY_THREADS = env.int("IMPORT_COPY_THREADS", default=1)
# A link count cannot tell where a file's other names are: some may lie outside the source.
IMPORT_ALLOW_HARD_LINKS = env.bool("IMPORT_ALLOW_HARD_LINKS", default=False)

# Where people and programs reach the service, for the links of a callback's body and of the
# commands' output (the API answers with the URL each request came by).
PUBLIC_URL = env.str("PUBLIC_URL", default=f"http://127.0.0.1:{env.int('PORT', default=8000)}")

# Completion callbacks (imports.callbacks, imports.webhooks): a callback_url's host must be one
# of these names (or a listed address); the body is signed as Standard Webhooks does it, with
# IMPORT_CALLBACK_SECRET (`whsec_` then base64: docs/api.md says how to make one). A
# delivery is tried IMPORT_CALLBACK_ATTEMPTS times, the delays doubling from
# IMPORT_CALLBACK_RETRY_DELAY seconds.
IMPORT_CALLBACK_ALLOWED_HOSTS = env.list("IMPORT_CALLBACK_ALLOWED_HOSTS", default=[])
IMPORT_CALLBACK_SECRET = env.str("IMPORT_CALLBACK_SECRET", default="")
IMPORT_CALLBACK_TIMEOUT = env.float("IMPORT_CALLBACK_TIMEOUT", default=10)
IMPORT_CALLBACK_ATTEMPTS = env.int("IMPORT_CALLBACK_ATTEMPTS", default=6)
IMPORT_CALLBACK_RETRY_DELAY = env.float("IMPORT_CALLBACK_RETRY_DELAY", default=10)

CELERY_BEAT_SCHEDULE = {
    # A run not taken within its own period is dropped: the next one does the same work.
    "recover lost work": {
        "task": "imports.tasks.imports_recover_task",
        "schedule": IMPORT_RECOVER_EVERY,
        "options": {"queue": CELERY_UPKEEP_QUEUE, "expires": IMPORT_RECOVER_EVERY},
    },
    "upkeep": {
        "task": "imports.tasks.imports_upkeep_task",
        "schedule": IMPORT_UPKEEP_EVERY,
        "options": {"queue": CELERY_UPKEEP_QUEUE, "expires": IMPORT_UPKEEP_EVERY},
    },
}

# Logs (imports.logs): one line per record on stderr, readable text or one JSON object.
LOG_FORMAT = env.str("LOG_FORMAT", default="console")
if LOG_FORMAT not in ("console", "json"):
    raise environ.ImproperlyConfigured(f"LOG_FORMAT must be console or json, not {LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "console": {"()": "imports.logs.ConsoleFormatter"},
        "json": {"()": "imports.logs.JsonLines"},
    },
    # An exception is told by its class and where it was raised: its text may hold a path.
    "filters": {"without_exception_text": {"()": "imports.logs.WithoutExceptionText"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["without_exception_text"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Through the one handler alone: Django's own (with DEBUG) prints plain text with the
        # exception's text. At INFO, as Django has it, whatever LOG_LEVEL says: its SQL would
        # show manifest cells.
        "django": {"handlers": [], "level": "INFO"},
        # Kept above DEBUG too, for what they would log there: urllib3, whole request lines (a
        # callback_url's query may carry a token); botocore and s3transfer, request headers
        # (AWS_SESSION_TOKEN) and keys. kombu warns of a broker URL without a host at every
        # connection to the filesystem broker.
        "urllib3": {"level": "WARNING"},
        "botocore": {"level": "INFO"},
        "s3transfer": {"level": "INFO"},
        "kombu.connection": {"level": "ERROR"},
    },
}

# /metrics (imports.metrics): open to whoever reaches the port unless a token is set, which a
# scraper then sends as `Authorization: Bearer <token>`.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
