"""Structured logs: each event of an import is one line with its uuid and figures, as JSON or as
readable text, and no line holds an exception's text (which may name a file on the server)."""

import errno
import io
import json
import logging
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import OperationalError
from django.utils import timezone

from imports import batches, outcomes, tasks
from imports.lifecycle import import_cancel, import_create, import_rollback
from imports.logs import ConsoleFormatter, JsonLines, WithoutExceptionText, event
from imports.models import Batch
from imports.recovery import batch_process_lost
from imports.rollbacks import batch_rollback
from imports.staging import import_split

from .factories import csv_bytes, run_inline, scans_in, upload

ROOT = Path(__file__).resolve().parents[1]
SECRET_PATH = "/srv/secret/source/box 1/a.png"


def formatted(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    """The line the service's handler writes for `record`: its filter, then `formatter`."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    handler.addFilter(WithoutExceptionText())
    handler.handle(record)
    return out.getvalue()


def recorded(log) -> logging.LogRecord:
    """The record `log(logger)` makes."""
    records: list[logging.LogRecord] = []
    logger = logging.getLogger("tests.logs")
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        log(logger)
    finally:
        logger.removeHandler(handler)
    (record,) = records
    return record


def committed(logger: logging.Logger) -> None:
    event(logger, "batch committed", "b6977430-0bbe", batch=3, worker="w1@host", failed_rows=1)


def test_a_json_line_holds_the_event_its_import_and_its_fields():
    line = formatted(JsonLines(), recorded(committed))
    # one line, one object, the timestamp first
    assert line.count("\n") == 1
    fields = json.loads(line)
    assert list(fields)[:4] == ["timestamp", "level", "logger", "message"]
    assert fields | {"timestamp": None} == {
        "timestamp": None,
        "level": "INFO",
        "logger": "tests.logs",
        "message": "batch committed",
        "event": "batch committed",
        "import": "b6977430-0bbe",
        "batch": 3,
        "worker": "w1@host",
        "failed_rows": 1,
    }
    assert fields["timestamp"].endswith("+00:00")


def test_a_console_line_shows_the_message_then_the_fields_as_key_value():
    line = formatted(ConsoleFormatter(), recorded(committed))
    assert line.rstrip("\n").endswith(
        "INFO tests.logs: batch committed import=b6977430-0bbe batch=3 worker=w1@host failed_rows=1"
    )


def failed_on_a_file() -> OSError:
    try:
        raise OSError(errno.ENOENT, "No such file or directory", SECRET_PATH)
    except OSError as error:
        return error


FORMATS = [JsonLines(), ConsoleFormatter()]


@pytest.mark.parametrize("formatter", FORMATS, ids=["json", "console"])
def test_an_exception_is_told_by_its_class_and_frames_never_its_text(formatter):
    error = failed_on_a_file()
    record = recorded(lambda logger: logger.error("copy failed", exc_info=error))
    line = formatted(formatter, record)
    assert "FileNotFoundError" in line
    assert "test_logs.py:" in line  # where: the file's name and line, no folder
    assert "/srv" not in line
    assert str(ROOT) not in line
    assert "Traceback" not in line


def test_celerys_failure_line_names_the_exception_by_its_class():
    # as celery.app.trace logs a task's failure: the exception among the arguments, a copy of
    # them (with the traceback's text) in `data`
    error = failed_on_a_file()
    context = {"name": "imports.tasks.batch_run_task", "id": "1", "exc": error}

    def failure(logger):
        logger.error(
            "Task %(name)s[%(id)s] raised unexpected: %(exc)s",
            context,
            exc_info=error,
            extra={"data": {**context, "traceback": f"... {SECRET_PATH}"}},
        )

    line = formatted(JsonLines(), recorded(failure))
    fields = json.loads(line)
    assert (
        fields["message"]
        == "Task imports.tasks.batch_run_task[1] raised unexpected: FileNotFoundError"
    )
    assert fields["error"] == "FileNotFoundError"
    assert "data" not in fields
    assert "/srv" not in line


def test_an_exception_given_as_an_argument_is_told_by_its_class():
    error = failed_on_a_file()
    line = formatted(
        ConsoleFormatter(), recorded(lambda logger: logger.error("Unrecoverable error: %r", error))
    )
    assert line.rstrip("\n").endswith("Unrecoverable error: 'FileNotFoundError'")
    assert "/srv" not in line


def test_celerys_retry_line_keeps_when_and_the_class_of_the_error():
    from celery.exceptions import Retry

    retry = Retry(exc=OperationalError(f"unable to open {SECRET_PATH}"), when=2)
    line = formatted(
        ConsoleFormatter(),
        recorded(
            lambda logger: logger.info("Task %(name)s retry: %(exc)s", {"name": "t", "exc": retry})
        ),
    )
    assert "Task t retry: Retry in 2s: OperationalError" in line
    assert "/srv" not in line


def settings_loaded(
    log_format: str, tmp_path: Path, code: str = "", **variables: str
) -> subprocess.CompletedProcess:
    """A process that sets Django up with LOG_FORMAT and `variables`, logs a warning 'up', then
    runs `code`."""
    env = {
        "PATH": os.environ["PATH"],
        "DATA_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "imports.settings",
        "LOG_FORMAT": log_format,
        **variables,
    }
    setup = "import django, logging; django.setup(); logging.getLogger('x').warning('up')\n"
    return subprocess.run(
        [sys.executable, "-c", setup + code], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_log_format_json_makes_every_line_json(tmp_path):
    loaded = settings_loaded("json", tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stderr)["message"] == "up"


def test_an_unknown_log_format_is_refused_saying_which_are_known(tmp_path):
    loaded = settings_loaded("xml", tmp_path)
    assert loaded.returncode != 0
    assert "LOG_FORMAT must be console or json, not 'xml'." in loaded.stderr


def test_log_level_debug_logs_no_sql_parameters_nor_s3_requests(tmp_path):
    # given the most verbose settings: DEBUG (Django logs every query) and LOG_LEVEL=DEBUG
    code = f"""
from django.db import connection
connection.cursor().execute("SELECT %s", ["{SECRET_PATH}"])
logging.getLogger("botocore.endpoint").debug("X-Amz-Security-Token: the-token")
logging.getLogger("s3transfer.upload").debug("key {SECRET_PATH}")
logging.getLogger("imports.tasks").debug("down")
"""
    loaded = settings_loaded("console", tmp_path, code, LOG_LEVEL="DEBUG", DEBUG="true")
    assert loaded.returncode == 0, loaded.stderr
    assert "down" in loaded.stderr  # DEBUG is logged
    assert "/srv" not in loaded.stderr
    assert "the-token" not in loaded.stderr


def test_with_debug_djangos_records_are_json_too_and_without_the_exceptions_text(tmp_path):
    code = f"""
try:
    open("{SECRET_PATH}")
except OSError:
    logging.getLogger("django.request").error("Internal Server Error: /x", exc_info=True)
"""
    loaded = settings_loaded("json", tmp_path, code, DEBUG="true")
    assert loaded.returncode == 0, loaded.stderr
    up, failed = [json.loads(line) for line in loaded.stderr.splitlines()]
    assert (failed["logger"], failed["error"]) == ("django.request", "FileNotFoundError")
    assert "/srv" not in loaded.stderr


# An import's events, logged by the services themselves.


def events_of(caplog, when: str = "call") -> list[logging.LogRecord]:
    """The event records logged in the test's phase `when` (a fixture's: "setup")."""
    return [record for record in caplog.get_records(when) if hasattr(record, "event")]


def fields(record: logging.LogRecord) -> dict:
    """The record as its JSON line says it."""
    return json.loads(formatted(JsonLines(), record))


def staged(source: Path):
    """An import of one row, staged in one batch, not yet run."""
    scans_in(source, "a.png")
    job = import_create(batch_size=1)
    upload(job, csv_bytes("identifier,file_path,title", "A,a.png,A"))
    import_split(str(job.pk))
    return job


@pytest.fixture
def ran(db, source, queued, caplog, django_capture_on_commit_callbacks):
    """An import of two rows, one failing (its file is missing), run to its end in this
    process with every on-commit step run; its event records."""
    scans_in(source, "a.png")
    caplog.set_level(logging.INFO)
    with django_capture_on_commit_callbacks(execute=True):
        job = import_create(batch_size=1)
    with django_capture_on_commit_callbacks(execute=True):
        upload(job, csv_bytes("identifier,file_path,title", "A,a.png,A", "B,missing.png,B"))
    with django_capture_on_commit_callbacks(execute=True):
        run_inline(job)
    return job


def test_an_import_logs_each_step_once_committed_with_its_uuid_and_figures(ran, caplog, source):
    logged = [fields(record) for record in events_of(caplog, "setup")]
    assert [line["event"] for line in logged] == [
        "import created",
        "manifest accepted",
        "manifest counted",
        "batch committed",
        "batch committed",
        "import ended",
    ]
    assert {line["import"] for line in logged} == {str(ran.pk)}
    created, accepted, counted, first, second, ended = logged
    assert (created["dry_run"], created["on_conflict"], created["batch_size"]) == (False, "fail", 1)
    assert created["callback"] is False
    assert (accepted["bytes"], accepted["encoding"]) == (53, "utf-8")
    assert (counted["total_rows"], counted["batches"]) == (2, 2)
    assert (first["batch"], first["first_row"], first["last_row"]) == (1, 1, 1)
    assert (first["imported_rows"], first["failed_rows"], first["attempt"]) == (1, 0, 1)
    assert (second["imported_rows"], second["failed_rows"]) == (0, 1)
    assert first["duration_seconds"] >= 0
    assert ended["status"] == "finished"
    assert (ended["total_rows"], ended["imported_rows"], ended["failed_rows"]) == (2, 1, 1)
    assert ended["duration_seconds"] >= 0
    # and no line names the source, not even the failing row's missing file
    said = [formatted(formatter, r) for r in caplog.get_records("setup") for formatter in FORMATS]
    assert str(source) not in "".join(said)


def test_a_rollback_logs_its_start_each_batch_and_its_end(
    ran, caplog, django_capture_on_commit_callbacks
):
    caplog.clear()
    with django_capture_on_commit_callbacks(execute=True):
        import_rollback(ran)
    with django_capture_on_commit_callbacks(execute=True):
        for batch in Batch.objects.filter(import_job=ran).order_by("number"):
            batch_rollback(batch.pk)
    logged = [fields(record) for record in events_of(caplog)]
    assert [line["event"] for line in logged] == [
        "rollback started",
        "batch rolled back",
        "batch rolled back",
        "import ended",
    ]
    assert {line["import"] for line in logged} == {str(ran.pk)}
    assert (logged[1]["rows"], logged[1]["documents_deleted"]) == (1, 1)
    assert (logged[-1]["status"], logged[-1]["documents_deleted"]) == ("rolled_back", 1)


@pytest.mark.django_db
def test_a_cancelled_import_logs_its_end(
    source, queued, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.INFO)
    with django_capture_on_commit_callbacks(execute=True):
        job = import_create()
        import_cancel(job)
    (ended,) = [fields(r) for r in events_of(caplog) if r.event == "import ended"]
    assert (ended["import"], ended["status"]) == (str(job.pk), "cancelled")


@pytest.mark.django_db
def test_a_batch_lost_with_its_process_logs_its_number_and_requeues(
    source, queued, caplog, django_capture_on_commit_callbacks
):
    # given a batch an attempt started on a worker
    job = staged(source)
    batch = batches._attempt_start(Batch.objects.get(import_job=job), "celery@w1")
    caplog.set_level(logging.INFO)
    # when its pool process dies
    with django_capture_on_commit_callbacks(execute=True):
        batch_process_lost(batch.pk, timezone.now() + timedelta(seconds=1))
    # then
    (lost,) = [fields(r) for r in events_of(caplog) if r.event == "batch lost"]
    assert lost["import"] == str(job.pk)
    assert (lost["batch"], lost["worker"], lost["how"]) == (1, "celery@w1", "lost its process")
    assert (lost["requeues"], lost["requeued"]) == (1, True)


@pytest.mark.django_db
def test_a_failed_task_logs_the_class_and_the_reason_never_the_exceptions_text(
    source, queued, caplog, monkeypatch
):
    # given an import whose batch fails on a file, with the path in the error's text
    job = staged(source)

    def disk_full(source, located, name):
        raise OSError(errno.ENOSPC, "No space left on device", SECRET_PATH)

    monkeypatch.setattr(outcomes, "file_copy", disk_full)
    caplog.set_level(logging.INFO)
    # when the task runs
    batch = Batch.objects.get(import_job=job)
    assert tasks.batch_run_task.apply(args=(str(job.pk), batch.pk)).failed()
    # then its failure is one event with the exception's class and the operator's reason
    (failed,) = [r for r in events_of(caplog) if r.event == "task failed"]
    assert failed.levelno == logging.ERROR
    assert (failed.error, failed.task) == ("OSError", "imports.tasks.batch_run_task")
    assert failed.reason.startswith("a batch of rows failed: the storage is full")
    assert failed.exc_info is None
    assert "/srv" not in fields(failed)["reason"]
