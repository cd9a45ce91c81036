"""Keeping personal data out of log lines and error reports.

Our own code logs ids, never text; this filter is the backstop for what it
cannot control: a third-party library logging a request body (the OpenAI SDK
does at DEBUG), an exception whose message quotes its input, a traceback.
It is installed on every handler in settings.LOGGING, and on the handlers a
Celery worker sets up for itself (which replace Django's on the root logger).
"""

import logging
from typing import Any

from celery.signals import after_setup_logger, after_setup_task_logger
from django.views.debug import ExceptionReporter

from support_bot.privacy import redact

# What a record says when redaction itself failed: better a lost line than a
# leaked one, and a filter that raises would break the caller's log call.
UNREDACTABLE = "[log message withheld: redaction failed]"

# Attributes every record has; anything else came in through `extra`.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """Formats a record's message, redacts it, and keeps it without args."""

    def filter(self, record: logging.LogRecord) -> bool:
        # A record goes through every handler's filter; once is enough.
        if getattr(record, "_redacted", False):
            return True
        try:
            _redact_record(record)
        except Exception:
            record.msg, record.args = UNREDACTABLE, None
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        # Underscored, so JSON formatters do not print it as a field.
        record._redacted = True
        return True


def _redact_record(record: logging.LogRecord) -> None:
    # The message is formatted here, not by the handler: an argument can be
    # any object whose str() carries text, so redacting args one by one
    # would miss some.
    record.msg = redact(record.getMessage())
    record.args = None
    if record.exc_info:
        # Formatters print exc_text when there is no exc_info (the JSON one
        # would otherwise format exc_info again, unredacted). Handlers that
        # ran before this one on the record's way up still had exc_info.
        text = record.exc_text or logging.Formatter().formatException(record.exc_info)
        record.exc_info, record.exc_text = None, redact(text)
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    # Fields passed in `extra` should be ids, but a mistake must not leak.
    for name, value in vars(record).items():
        if name not in _STANDARD and isinstance(value, str):
            setattr(record, name, redact(value))


def install(logger: logging.Logger) -> None:
    """Add the filter to every handler of `logger` that lacks it."""
    for handler in logger.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


# A worker configures logging after Django has (and so after this module was
# imported through settings.LOGGING), replacing the root logger's handlers.
@after_setup_logger.connect
@after_setup_task_logger.connect
def _install_on_celery_handlers(logger: logging.Logger, **kwargs: Any) -> None:
    install(logger)


class RedactingExceptionReporter(ExceptionReporter):
    """Error reports (the admins' email, the DEBUG error page), redacted.

    A report shows every frame's local variables and the exception's message,
    which on our paths hold what the customer wrote.
    """

    def get_traceback_data(self) -> dict[str, Any]:
        data = super().get_traceback_data()
        for frame in data.get("frames", []):
            if "vars" in frame:
                frame["vars"] = [(name, redact(value)) for name, value in frame["vars"]]
        if isinstance(data.get("exception_value"), str):
            data["exception_value"] = redact(data["exception_value"])
        return data
