"""Settings, all read from the environment.

Map of what changes with the environment (every variable is in .env.example):

- Nothing set: SQLite in var/, the in-memory channel layer, Celery tasks run
  inline in the web process, the offline knowledge-base responder. One machine,
  one process: what `make run` uses.
- DATABASE_URL: PostgreSQL (or any database Django supports).
- REDIS_URL: the channel layer moves to Redis (pub/sub) so several web processes
  share live events, and Celery sends tasks to workers through a second Redis
  database on the same server (CELERY_BROKER_URL overrides it).
- OPENAI_API_KEY / OPENAI_BASE_URL / LLM_MODEL: answers come from that
  OpenAI-compatible model instead of the offline responder.
"""

import os
from email.utils import getaddresses
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import django_stubs_ext
import environ
import phonenumbers
from django.core.exceptions import ImproperlyConfigured
from redis.connection import parse_url as redis_url_options

# Lets admin and other generic classes take type parameters at run time.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=True)
_DEV_SECRET = "dev-only-secret-key-do-not-use-in-production"
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "conversations",
    "knowledge",
    "escalation",
    "oversight",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "support_bot.middleware.DropNulFromQuery",
    "support_bot.middleware.RefuseTrace",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "support_bot.urls"
ASGI_APPLICATION = "support_bot.asgi.application"

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

# --- Database ---------------------------------------------------------------

VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # WAL lets readers run beside the writer; IMMEDIATE takes the write lock at
    # BEGIN so concurrent writers wait (up to the timeout) instead of failing
    # halfway through a transaction.
    _db["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so the test database is shared by the threads that
    # serve async code.
    _db["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
else:
    _db.setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    _db["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Threads that run ORM work for async code (consumers, the bot). Django's
# default funnels every such query through one thread.
DB_THREADS = env.int("DB_THREADS", default=8)

# --- Redis: channel layer and Celery ------------------------------------------


def _redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


def _redis_db_number(url: str) -> int:
    options = redis_url_options(url)  # type: ignore[no-untyped-call]
    return int(options.get("db", 0))


REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    # The pub/sub layer: the default Redis layer drops messages under load on its
    # defaults (see docs/performance.md). Delivery never rests on the layer
    # alone: clients replay from stored sequence numbers.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "support_bot.channel_layer.BatchingPubSubChannelLayer",
            # Pub/sub channels are shared by all of a server's databases:
            # the database number in their names keeps two deployments on
            # one Redis server (each on its own database) apart. redis-py
            # reads the number from the path, ?db= or a unix socket's query.
            "CONFIG": {
                "hosts": [REDIS_URL],
                "prefix": f"asgi.db{_redis_db_number(REDIS_URL)}",
            },
        }
    }
    CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=_redis_db(REDIS_URL, 1))
    CELERY_TASK_ALWAYS_EAGER = False
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="memory://")
    CELERY_TASK_ALWAYS_EAGER = True

CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Picks up escalations whose routing task was lost (a killed worker) and offers
# nobody claimed in time.
CELERY_BEAT_SCHEDULE = {
    "sweep-escalations": {
        "task": "escalation.tasks.sweep_escalations_task",
        "schedule": env.float("ESCALATION_SWEEP_SECONDS", default=30.0),
    },
    # Does nothing while RETENTION_DAYS is 0.
    "apply-retention": {
        "task": "conversations.tasks.apply_retention_task",
        "schedule": 60 * 60,
    },
    # Answers questions whose web process stopped before answering them.
    "answer-stranded": {
        "task": "conversations.tasks.answer_stranded_task",
        "schedule": env.float("STRANDED_SWEEP_SECONDS", default=30.0),
    },
    # Compares the last hour with the week before; see oversight/alerts.py.
    "check-alerts": {
        "task": "oversight.tasks.check_alerts_task",
        "schedule": 10 * 60,
    },
}

# An agent whose console sent no heartbeat for this long gets no new work.
AGENT_PRESENCE_TIMEOUT = env.int("AGENT_PRESENCE_TIMEOUT", default=60)

# --- The bot ----------------------------------------------------------------

BOT_NAME = env.str("BOT_NAME", default="Kestrel Assistant")
BOT_GREETING = env.str(
    "BOT_GREETING",
    default="Hi! I'm the Kestrel Bank assistant. Ask me about cards, transfers, "
    "top-ups or your account.",
)
BOT_INSTRUCTIONS = env.str(
    "BOT_INSTRUCTIONS",
    default="You are {name}, the customer-support assistant of Kestrel Bank, a "
    "digital bank. Be friendly, brief and exact.",
)
OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="") or None
LLM_MODEL = env.str("LLM_MODEL", default="gpt-4o-mini")
LLM_TIMEOUT = env.float("LLM_TIMEOUT", default=20.0)
LLM_MAX_RETRIES = env.int("LLM_MAX_RETRIES", default=1)
LLM_MAX_TOKENS = env.int("LLM_MAX_TOKENS", default=400)
LLM_TEMPERATURE = env.float("LLM_TEMPERATURE", default=0.2)
# Offer the model a hand-off tool; turn off for servers without tool support.
LLM_TOOLS = env.bool("LLM_TOOLS", default=True)
# Ask for token log-probabilities, a confidence signal some servers provide.
LLM_LOGPROBS = env.bool("LLM_LOGPROBS", default=False)
# After each answer, ask the model in a second short call whether the answer is
# supported by its articles: one more confidence signal, one more call.
LLM_SELF_CHECK = env.bool("LLM_SELF_CHECK", default=False)
# A question still unanswered this long after it was stored lost its answer
# (the web process writing it stopped), and is answered again: longer than
# any answer can take, which is one model call and the self-check, each
# bounded by LLM_TIMEOUT (conversations/recovery.py).
STRANDED_ANSWER_SECONDS = env.float(
    "STRANDED_ANSWER_SECONDS", default=2 * LLM_TIMEOUT + 20
)
# Below this confidence the bot does not guess: it says so and hands over.
# (The bot settings record in admin overrides it.)
CONFIDENCE_THRESHOLD = env.float("CONFIDENCE_THRESHOLD", default=0.5)
# Hosts the bot may link to, besides those its articles link to.
LINK_ALLOWED_HOSTS = env.list("LINK_ALLOWED_HOSTS", default=[])
# What a model's tokens cost per 1,000, for the estimated-cost metric; the
# offline responder is never priced.
LLM_PRICE_PROMPT_PER_1K = env.float("LLM_PRICE_PROMPT_PER_1K", default=0.0)
LLM_PRICE_COMPLETION_PER_1K = env.float("LLM_PRICE_COMPLETION_PER_1K", default=0.0)
if min(LLM_PRICE_PROMPT_PER_1K, LLM_PRICE_COMPLETION_PER_1K) < 0:
    raise ImproperlyConfigured("LLM prices cannot be negative.")

# Tokens of recent turns kept word for word; older turns are folded into a
# running summary by a Celery task.
MEMORY_TOKEN_BUDGET = env.int("MEMORY_TOKEN_BUDGET", default=1200)
RETRIEVAL_TOP_K = env.int("RETRIEVAL_TOP_K", default=3)
# Below this similarity an article is not offered as an answer.
RETRIEVAL_MIN_SCORE = env.float("RETRIEVAL_MIN_SCORE", default=0.5)
OFFLINE_STREAM_DELAY_MS = env.int("OFFLINE_STREAM_DELAY_MS", default=25)

# --- The widget -------------------------------------------------------------

# The port `make run` serves on: the demo page's origin, allowed by default.
PORT = env.int("PORT", default=8000)
WIDGET_ALLOWED_ORIGINS = env.list(
    "WIDGET_ALLOWED_ORIGINS",
    default=[f"http://127.0.0.1:{PORT}", f"http://localhost:{PORT}"],
)
MAX_MESSAGE_CHARS = env.int("MAX_MESSAGE_CHARS", default=4000)
# A message of that many characters must fit in one frame of the widget
# protocol (conversations.protocol.MAX_FRAME_BYTES, 64 KiB) however it is
# written: JSON escapes a control character or a broken emoji as six bytes.
# A longer limit would let the widget send frames refused as a whole, which
# no error can tie back to the message.
MAX_MESSAGE_CHARS_LIMIT = 10_000
if MAX_MESSAGE_CHARS > MAX_MESSAGE_CHARS_LIMIT:
    raise ImproperlyConfigured(
        f"MAX_MESSAGE_CHARS can be at most {MAX_MESSAGE_CHARS_LIMIT:,}."
    )
# A burst of this many customer messages is allowed, refilled at this rate.
WIDGET_RATE_BURST = env.int("WIDGET_RATE_BURST", default=8)
WIDGET_RATE_PER_SECOND = env.float("WIDGET_RATE_PER_SECOND", default=0.5)

# --- Privacy ----------------------------------------------------------------

# Phone numbers written without "+" and a country code are read as numbers of
# this region when they are redacted (ISO 3166 code, e.g. GB, DE, US).
PRIVACY_PHONE_REGION = env.str("PRIVACY_PHONE_REGION", default="GB").upper()
if PRIVACY_PHONE_REGION not in phonenumbers.SUPPORTED_REGIONS:
    raise ImproperlyConfigured(
        f"PRIVACY_PHONE_REGION {PRIVACY_PHONE_REGION!r} is not a known region."
    )
# Conversations idle for longer than this are deleted or anonymised; 0 keeps
# them forever.
RETENTION_DAYS = env.int("RETENTION_DAYS", default=0)
if RETENTION_DAYS < 0:
    raise ImproperlyConfigured("RETENTION_DAYS cannot be negative.")
RETENTION_MODE = env.str("RETENTION_MODE", default="delete")
if RETENTION_MODE not in ("delete", "anonymise"):
    raise ImproperlyConfigured("RETENTION_MODE must be delete or anonymise.")
# Error reports (admins' email, the DEBUG page) show local variables; this
# reporter redacts them like log lines.
DEFAULT_EXCEPTION_REPORTER = "support_bot.logging.RedactingExceptionReporter"

# One model call bounded by LLM_TIMEOUT, and the self-check another: a bound
# below that would answer again questions whose answer is only slow.
_LONGEST_ANSWER = LLM_TIMEOUT * (2 if LLM_SELF_CHECK else 1)
if STRANDED_ANSWER_SECONDS <= _LONGEST_ANSWER:
    raise ImproperlyConfigured(
        f"STRANDED_ANSWER_SECONDS ({STRANDED_ANSWER_SECONDS:g}) must be longer "
        f"than an answer can take: {_LONGEST_ANSWER:g} s with LLM_TIMEOUT="
        f"{LLM_TIMEOUT:g}{' and LLM_SELF_CHECK' if LLM_SELF_CHECK else ''}."
    )

for _name in (
    "LLM_TIMEOUT",
    "STRANDED_ANSWER_SECONDS",
    "MEMORY_TOKEN_BUDGET",
    "MAX_MESSAGE_CHARS",
    "DB_THREADS",
):
    if globals()[_name] <= 0:
        raise ImproperlyConfigured(f"{_name} must be greater than zero.")

# --- The rest of Django -----------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# The widget script is loaded by other sites.
WHITENOISE_ALLOW_ALL_ORIGINS = True

# --- Monitoring ---------------------------------------------------------------

# Who gets alert and error emails: "Name <a@example.com>,Other <b@example.com>".
ADMINS = [
    (name or addr, addr)
    for name, addr in getaddresses(env.list("ADMINS", default=[]))
    if "@" in addr
]
if len(ADMINS) != len(env.list("ADMINS", default=[])):
    raise ImproperlyConfigured('ADMINS must read "Name <address>,Name <address>".')
# Unset: emails are printed to the console, which is what a laptop wants.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
SERVER_EMAIL = env.str("SERVER_EMAIL", default="support-bot@localhost")
EMAIL_SUBJECT_PREFIX = env.str("EMAIL_SUBJECT_PREFIX", default="[support-bot] ")

# Alerts: the last hour against the week before it (oversight/alerts.py).
# Nothing is judged on an hour with fewer events than this.
ALERT_MIN_SAMPLES = env.int("ALERT_MIN_SAMPLES", default=20)
# Rates alert when they exceed the week's rate by more than the margin
# (0.15: 15 percentage points).
ALERT_ESCALATION_RATE_MARGIN = env.float("ALERT_ESCALATION_RATE_MARGIN", default=0.15)
ALERT_LLM_ERROR_RATE_MARGIN = env.float("ALERT_LLM_ERROR_RATE_MARGIN", default=0.05)
ALERT_NOT_HELPFUL_RATE_MARGIN = env.float("ALERT_NOT_HELPFUL_RATE_MARGIN", default=0.15)
# Latency alerts when the hour's 95th percentile exceeds the week's times this.
ALERT_LATENCY_P95_FACTOR = env.float("ALERT_LATENCY_P95_FACTOR", default=1.5)
if ALERT_MIN_SAMPLES < 1 or ALERT_LATENCY_P95_FACTOR <= 1:
    raise ImproperlyConfigured(
        "ALERT_MIN_SAMPLES must be 1 or more and ALERT_LATENCY_P95_FACTOR over 1."
    )
for _name in (
    "ALERT_ESCALATION_RATE_MARGIN",
    "ALERT_LLM_ERROR_RATE_MARGIN",
    "ALERT_NOT_HELPFUL_RATE_MARGIN",
):
    if not 0 < globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be between 0 and 1.")

# Unset, /metrics answers anyone who can reach it: fine on a laptop, not on a
# public host (set it, or block the path at the proxy).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# prometheus-client reads this variable itself and counts an empty one as set;
# here, as for every variable, empty means unset.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR", "unset"):
    del os.environ["PROMETHEUS_MULTIPROC_DIR"]
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
if PROMETHEUS_MULTIPROC_DIR and not Path(PROMETHEUS_MULTIPROC_DIR).is_dir():
    raise ImproperlyConfigured("PROMETHEUS_MULTIPROC_DIR must be a directory.")

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# json: one object a line, for a log collector; text: for people reading a
# terminal.
LOG_FORMAT = env.str("LOG_FORMAT", default="") or ("text" if DEBUG else "json")
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured("LOG_FORMAT must be json or text.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        # Ids passed in `extra` become fields of their own.
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(levelname)s %(name)s %(message)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": True,
        },
    },
    # Every handler takes the redact filter: no card number, IBAN, phone
    # number or email address reaches a log, whoever logged it.
    "filters": {"redact": {"()": "support_bot.logging.RedactingFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["redact"],
        }
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "support_bot": {"level": LOG_LEVEL},
        "conversations": {"level": LOG_LEVEL},
        "escalation": {"level": LOG_LEVEL},
        "knowledge": {"level": LOG_LEVEL},
        # uvicorn sets up its own text handlers before Django starts; this
        # replaces the one of its messages, so they share our format. Not
        # "uvicorn" as a whole: dictConfig resets the children of a logger it
        # configures, so "uvicorn.access" propagated to our handler again
        # after `--no-access-log` had cut it off. Access lines, when on, keep
        # uvicorn's format.
        "uvicorn.error": {
            "handlers": ["console"],
            "level": LOG_LEVEL,
            "propagate": False,
        },
    },
}
