"""Structured logs: each event of an import is one line, JSON (LOG_FORMAT=json) or readable text.

An event is a log record whose message is the event's name and whose `extra` holds `event`, the
import's uuid (`import`) and its figures; `event()` logs one. The settings' LOGGING puts one of
the two formatters below on the one handler, with WithoutExceptionText before it.

No line holds a server path, secret or token: events carry ids and figures only, and an
exception is told by its class and where it was raised, never by its text or its traceback's
file paths (an OSError's text names the file it failed on, a source file's path among them).
"""

import json
import logging
import traceback
from functools import partial
from pathlib import PurePath

from django.db import transaction
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

# What a record holds beyond these is an event's field (`extra=`); "message" is made by format().
STANDARD_ATTRS = {*RESERVED_ATTRS, "message", "asctime"}


def event(
    logger: logging.Logger, name: str, import_id, *, level: int = logging.INFO, **fields
) -> None:
    """Log the event `name` of the import `import_id`, one line with `fields` (ids and figures)."""
    logger.log(level, name, extra={"event": name, "import": str(import_id), **fields})


def event_on_commit(logger: logging.Logger, name: str, import_id, **fields) -> None:
    """Log the event once the current transaction commits: a fact rolled back is not told."""
    transaction.on_commit(partial(event, logger, name, import_id, **fields))


class JsonLines(JsonFormatter):
    """One JSON object per line: timestamp (UTC), level, logger, message, then any fields."""

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp=True,
        )

    def process_log_record(self, log_data: dict) -> dict:
        return {"timestamp": log_data.pop("timestamp"), **log_data}


class ConsoleFormatter(logging.Formatter):
    """The time, level, logger and message, then an event's fields as key=value (but `event`,
    which is its message)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = (
            f"{key}={_plain(value)}" for key, value in _fields(record).items() if key != "event"
        )
        return " ".join([line, *fields])


def _fields(record: logging.LogRecord) -> dict:
    return {key: value for key, value in vars(record).items() if key not in STANDARD_ATTRS}


def _plain(value) -> str:
    """A field's value as a word: a word as it is, anything else (numbers too) as JSON."""
    if isinstance(value, str) and value and not any(c.isspace() or c in '"=' for c in value):
        return value
    return json.dumps(value, default=str)


class WithoutExceptionText(logging.Filter):
    """Tell every exception by its class and where it was raised, never by its text.

    For our records and for those of Django, waitress, Celery and kombu alike: a record's
    traceback becomes `error` (the class) and `error_at` (its frames, innermost first, as
    `file:line function` with file names only); an exception among a message's arguments
    (Celery's "Task ... raised unexpected: %(exc)s") becomes its class. Celery's `data`, a copy
    of those arguments with the traceback's text, is dropped, and so is a stack's.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.error = exception_said(record.exc_info[1])
            record.error_at = _frames(record.exc_info[1])
        record.exc_info = record.exc_text = record.stack_info = None
        if isinstance(record.args, dict):
            record.args = {key: _said(value) for key, value in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(_said(value) for value in record.args)
        record.__dict__.pop("data", None)
        return True


def _said(value):
    return exception_said(value) if isinstance(value, BaseException) else value


def exception_said(exc: BaseException) -> str:
    """The exception's class; for Celery's Retry, when and the class of the error retried."""
    retried = getattr(exc, "exc", None)
    if isinstance(retried, BaseException) and hasattr(exc, "humanize"):
        return f"{type(exc).__name__} {exc.humanize()}: {type(retried).__name__}"
    return type(exc).__name__


def _frames(exc: BaseException) -> str:
    return " < ".join(
        f"{PurePath(frame.filename).name}:{frame.lineno} {frame.name}"
        for frame in reversed(traceback.extract_tb(exc.__traceback__))
    )
