"""Tasks pass ids through; a task that fails ends its import in `error`, with a full report."""

import errno
import sqlite3

import psycopg.errors
import pytest
from django.db import OperationalError

from imports import lifecycle, outcomes, reports, tasks
from imports.lifecycle import import_cancel, import_create, import_fail
from imports.models import Batch, Document, Import, ImportPhase, ImportStatus

from .background import report_task_run
from .conftest import stored_files
from .factories import (
    csv_bytes,
    import_cancelled,
    import_failed,
    import_staged,
    import_uploaded,
    scans_in,
)

pytestmark = pytest.mark.django_db


def test_a_failing_batch_ends_the_import_in_error_with_every_row_reported(source, monkeypatch):
    # given an import whose second batch will hit a storage failure
    scans_in(source, "a.png", "b.png")
    manifest = csv_bytes("identifier,file_path,title", "A,a.png,A", "B,b.png,B")
    job = import_staged(manifest, batch_size=1)
    first, second = Batch.objects.filter(import_job=job)
    tasks.batch_run_task.apply(args=(str(job.pk), first.pk))

    def disk_full(source, located, name):
        raise OSError(errno.ENOSPC, "No space left on device", f"/srv/secret/{name}")

    monkeypatch.setattr(outcomes, "file_copy", disk_full)
    # when
    result = tasks.batch_run_task.apply(args=(str(job.pk), second.pk))
    # then the import ends in error saying the storage is full, and its report is queued
    assert result.failed()
    job.refresh_from_db()
    assert job.status == ImportStatus.ERROR
    assert job.error == (
        "a batch of rows failed: the storage is full. Free space, then resume the import."
    )
    assert "/srv" not in job.error
    assert Document.objects.count() == 1
    report_task_run(job)
    with job.report.open("rb") as report:
        lines = report.read().decode().splitlines()
    assert [line.split(",")[3] for line in lines[1:]] == ["imported", "not_processed"]
    assert "ended in error" in lines[2]


def test_a_task_for_an_import_that_is_no_longer_active_does_nothing(source):
    job = import_uploaded(csv_bytes("identifier,file_path,title", "A,a.png,A"))
    job.status, job.phase = ImportStatus.CANCELLED, ImportPhase.NONE
    job.save(update_fields=["status", "phase"])
    tasks.import_split_task.apply(args=(str(job.pk),))
    assert not job.rows.exists()


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "the storage is full"),
        (OSError(errno.EIO, "Input/output error", "/srv/x"), "a batch of rows failed (OSError)."),
        (MemoryError(), "a batch of rows failed (MemoryError)."),
    ],
)
def test_the_failure_reason_names_a_full_storage_and_only_the_kind_of_anything_else(exc, reason):
    said = tasks.failure_reason("a batch of rows", exc)
    assert reason in said
    assert "/srv" not in said and "quota" not in said.lower()


def sqlite_full() -> OperationalError:
    """The error Django raises when SQLite's database cannot grow: a real SQLITE_FULL."""
    database = sqlite3.connect(":memory:")
    database.execute("CREATE TABLE t (x)")
    database.execute("PRAGMA max_page_count = 4")
    try:
        for _ in range(100):
            database.execute("INSERT INTO t VALUES (randomblob(4096))")
    except sqlite3.OperationalError as cause:
        try:
            raise OperationalError(*cause.args) from cause
        except OperationalError as wrapped:
            return wrapped
    raise AssertionError("SQLite did not fill up")


def postgresql_full() -> OperationalError:
    try:
        raise OperationalError("could not extend file") from psycopg.errors.DiskFull()
    except OperationalError as wrapped:
        return wrapped


@pytest.mark.parametrize("database_error", [sqlite_full, postgresql_full])
def test_the_failure_reason_names_a_full_database_disk(database_error):
    said = tasks.failure_reason("a batch of rows", database_error())
    assert said == (
        "a batch of rows failed: the database's disk is full. Free space for the database, then "
        "resume the import."
    )


def test_a_database_that_answers_nothing_is_still_out_of_reach():
    said = tasks.failure_reason("a batch of rows", OperationalError("connection refused"))
    assert "could not be reached (OperationalError)" in said


def test_a_rollback_task_that_fails_says_to_roll_back_again_never_to_resume():
    # a rollback's import cannot be resumed: its hint must not say so
    said = tasks.batch_rollback_task.again
    reason = tasks.failure_reason("rolling back a batch", OperationalError("gone"), said)
    assert reason == (
        "rolling back a batch failed: the database could not be reached (OperationalError). "
        "Roll the import back again once the database is back."
    )
    assert tasks.batch_run_task.again == "resume the import"


@pytest.fixture
def ended_in_error(source) -> Import:
    return import_failed(
        csv_bytes("identifier,file_path,title", "A,a,A"), "a batch of rows failed (OSError)."
    )


def test_an_ended_import_queues_its_report_on_commit(
    source, django_capture_on_commit_callbacks, monkeypatch
):
    queued = []
    monkeypatch.setattr(tasks.import_report_task, "delay", lambda *args: queued.append(args))
    job = import_uploaded(csv_bytes("identifier,file_path,title", "A,a,A"))
    with django_capture_on_commit_callbacks(execute=True):
        import_fail(str(job.pk), "a batch of rows failed (OSError).")
    job.refresh_from_db()
    assert (job.status, job.report.name) == (ImportStatus.ERROR, "")
    assert queued == [(str(job.pk),)]


def test_a_report_task_that_fails_never_ends_its_import_again(ended_in_error, monkeypatch):
    # given a report write that fails for a reason no retry can fix
    def broken(job):
        raise ValueError("a bug")

    monkeypatch.setattr(reports, "report_write", broken)
    # when
    result = tasks.import_report_task.apply(args=(str(ended_in_error.pk),))
    # then the task failed, and the import is as it ended: the report task is not its work
    assert result.failed()
    job = Import.objects.get(pk=ended_in_error.pk)
    assert (job.status, job.error) == (ImportStatus.ERROR, ended_in_error.error)
    assert not job.report
    # and the import says why its report is missing, by the failure's kind alone
    assert job.report_error == (
        "The report could not be written (ValueError); it is tried again every few minutes."
    )


def test_a_report_the_storage_has_no_space_for_comes_from_the_upkeep_once_there_is(
    ended_in_error, monkeypatch
):
    # given a storage full for the first three tries
    write = reports.report_write
    tries = []

    def full_three_times(job):
        tries.append(job.pk)
        if len(tries) <= 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(job)

    monkeypatch.setattr(reports, "report_write", full_three_times)
    # (the report task the upkeep queues, run at once as a worker would)
    queued_run = lambda import_id: tasks.import_report_task.apply(args=(import_id,))  # noqa: E731
    monkeypatch.setattr(tasks.import_report_task, "delay", queued_run)
    # when the report task tries once, then the upkeep's schedule three times
    job = report_task_run(ended_in_error)
    assert (job.report.name, job.report_error) == ("", reports.REPORT_WAITS_FOR_SPACE)
    for _ in range(3):
        tasks.imports_upkeep_task.apply()
    # then the fourth try wrote the report, and the notice of a full storage is gone
    job.refresh_from_db()
    assert len(tries) == 4
    assert job.report and job.report_error == ""
    assert job.error == "a batch of rows failed (OSError)."


def test_a_report_task_for_an_import_deleted_meanwhile_does_nothing(ended_in_error):
    import_id = str(ended_in_error.pk)
    lifecycle.import_delete(ended_in_error)
    result = tasks.import_report_task.apply(args=(import_id,))
    assert result.successful()
    assert stored_files("reports") == set()


def test_a_report_task_for_a_resumed_import_does_nothing(ended_in_error):
    job = lifecycle.import_resume(ended_in_error)
    tasks.import_report_task.apply(args=(str(job.pk),))
    job.refresh_from_db()
    assert (job.status, job.report.name) == (ImportStatus.ACTIVE, "")


def test_the_upkeep_queues_again_the_reports_still_missing(ended_in_error, monkeypatch):
    # given an import in error without its report (the worker that held its try died), one
    # cancelled with its report, one cancelled before it had a manifest
    reported = report_task_run(import_cancelled(csv_bytes("identifier,file_path,title", "A,a,A")))
    never_uploaded = import_cancel(import_create())
    queued = []
    monkeypatch.setattr(tasks.import_report_task, "delay", lambda *args: queued.append(args))
    # when the upkeep runs
    tasks.imports_upkeep_task.apply()
    # then only the missing report is queued
    assert queued == [(str(ended_in_error.pk),)]
    assert reported.report and not never_uploaded.manifest


def test_only_workers_taking_this_services_queue_count_as_running(settings, monkeypatch):
    # given two workers answering on a shared broker, one of another service (another queue)
    settings.CELERY_TASK_DEFAULT_QUEUE = "archive-a"
    replies = {
        "worker1@a": [{"name": "archive-a"}, {"name": "archive-a.upkeep"}],
        "worker1@b": [{"name": "archive-b"}, {"name": "archive-b.upkeep"}],
    }

    class Inspect:
        def __init__(self, timeout):
            pass

        def active_queues(self):
            return replies

    monkeypatch.setattr(tasks.current_app.control, "inspect", Inspect)
    # then only this service's worker is running
    assert tasks.workers_running() == ["worker1@a"]
    # and none answering is none running
    replies = None
    assert tasks.workers_running() == []


def test_a_worker_that_missed_the_first_question_is_asked_again(settings, monkeypatch):
    # given a worker that misses the first broadcast (just started: not yet subscribed on Redis)
    settings.CELERY_TASK_DEFAULT_QUEUE = "archive-a"
    answers = iter([{}, {"worker1@a": [{"name": "archive-a"}]}])

    class Inspect:
        def __init__(self, timeout):
            pass

        def active_queues(self):
            return next(answers)

    monkeypatch.setattr(tasks.current_app.control, "inspect", Inspect)
    # then the second question finds it
    assert tasks.workers_running() == ["worker1@a"]
