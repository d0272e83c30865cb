"""Failure and recovery: the database going away, stale imports, resume, killed attempts."""

from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from imports import batches, copies, staging, tasks
from imports.batches import batch_run
from imports.lifecycle import (
    import_cancel,
    import_delete,
    import_fail,
    import_finish,
    import_resume,
)
from imports.models import Batch, Document, Import, ImportPhase, ImportStatus
from imports.staging import import_split

from .background import report_task_run
from .conftest import stored_files
from .factories import csv_bytes, import_uploaded, run_inline, scans_in

pytestmark = pytest.mark.django_db

HEADER = "identifier,file_path,title"


def batch_ids(job: Import, **filters) -> list[int]:
    return list(Batch.objects.filter(import_job=job, **filters).values_list("pk", flat=True))


def resumed_inline(job: Import) -> Import:
    """Resume, then run in this process what the resume queued for the workers."""
    job = import_resume(job)
    if job.phase == ImportPhase.COUNTING:
        import_split(str(job.pk))
    for batch_id in batch_ids(job, committed_at__isnull=True):
        batch_run(batch_id)
    import_finish(str(job.pk))
    job.refresh_from_db()
    return job


def assert_every_row_once(job: Import, rows: int) -> None:
    assert (job.status, job.total_rows, job.processed_rows, job.imported_rows) == (
        ImportStatus.FINISHED,
        rows,
        rows,
        rows,
    )
    assert Document.objects.count() == rows
    assert stored_files() == {document.file.name for document in Document.objects.all()}
    assert set(job.rows.values_list("status", flat=True)) == {"imported"}


def test_a_database_gone_mid_import_ends_it_in_error_and_resume_finishes_it(uploaded, monkeypatch):
    # given the first batch commits, then the database stops answering
    first, second, third = batch_ids(uploaded)
    tasks.batch_run_task.apply(args=(str(uploaded.pk), first))

    def database_gone(batch_id, worker=""):
        raise OperationalError("connection to server at 10.0.0.7 failed: secret detail")

    monkeypatch.setattr(tasks, "batch_run", database_gone)
    # when a batch task meets it, through all its retries
    result = tasks.batch_run_task.apply(args=(str(uploaded.pk), second))
    # then the import ends in error, saying why, and the report covers every row
    assert result.failed()
    uploaded.refresh_from_db()
    assert uploaded.status == ImportStatus.ERROR
    assert uploaded.error == (
        "a batch of rows failed: the database could not be reached (OperationalError). "
        "Resume the import once the database is back."
    )
    report_task_run(uploaded)
    with uploaded.report.open("rb") as report:
        statuses = [line.split(",")[3] for line in report.read().decode().splitlines()[1:]]
    assert statuses == ["imported"] * 2 + ["not_processed"] * 4
    # and once the database is back, resume runs what did not commit, every row exactly once
    monkeypatch.undo()
    assert_every_row_once(resumed_inline(uploaded), 6)


def test_an_import_that_failed_while_counting_counts_again_on_resume(source, monkeypatch):
    scans_in(source, "a.png")
    job = import_uploaded(csv_bytes(HEADER, "A,a.png,A"))
    monkeypatch.setattr(staging, "read_rows", lambda raw, manifest_format: 1 / 0)
    assert tasks.import_split_task.apply(args=(str(job.pk),)).failed()
    job.refresh_from_db()
    assert (job.status, job.total_rows) == (ImportStatus.ERROR, None)
    monkeypatch.undo()
    assert_every_row_once(resumed_inline(job), 1)


def test_an_active_import_that_stopped_reporting_is_stale_and_resumes(uploaded, settings):
    # given a batch ran, then its worker and the broker's messages were lost
    first, *_ = batch_ids(uploaded)
    batch_run(first)
    now = timezone.now()
    uploaded.refresh_from_db()
    assert not uploaded.is_stale(now)
    # when nothing reports for longer than IMPORT_STALE_AFTER
    later = now + timedelta(seconds=settings.IMPORT_STALE_AFTER + 1)
    Import.objects.filter(pk=uploaded.pk).update(
        heartbeat_at=now - timedelta(seconds=settings.IMPORT_STALE_AFTER + 1)
    )
    uploaded.refresh_from_db()
    # then it is stale, and resume finishes it
    assert uploaded.is_stale(now) and uploaded.is_stale(later)
    assert_every_row_once(resumed_inline(uploaded), 6)


def test_copies_of_an_attempt_killed_before_its_commit_are_swept(uploaded, monkeypatch):
    # given an attempt that copied its files and died before committing (SIGKILL: no cleanup)
    first, *_ = batch_ids(uploaded)

    def killed(batch, rows, outcomes):
        raise SystemExit("killed")

    monkeypatch.setattr(batches, "_commit", killed)
    monkeypatch.setattr(batches, "_discard", lambda outcomes: None)
    with pytest.raises(SystemExit):
        batch_run(first)
    assert len(stored_files()) == 2
    monkeypatch.undo()
    # when the batch is delivered again and the import runs to its end
    job = run_inline(uploaded)
    # then each row is imported once and only the committed attempt's files remain
    assert Batch.objects.get(pk=first).attempts == 2
    assert Batch.objects.get(pk=first).committed_attempt == 2
    assert_every_row_once(job, 6)


def test_an_attempt_running_while_its_import_fails_and_resumes_keeps_its_files(
    uploaded, monkeypatch
):
    # given a batch that has copied its files when another batch ends the import in error,
    # and the operator resumes at once, before that batch commits
    first, *_ = batch_ids(uploaded)
    commit = batches._commit

    def failed_and_resumed_meanwhile(batch, rows, outcomes):
        import_fail(str(uploaded.pk), "a batch of rows failed (OSError).")
        import_resume(uploaded)
        return commit(batch, rows, outcomes)

    monkeypatch.setattr(batches, "_commit", failed_and_resumed_meanwhile)
    # when that batch commits, and the resumed import runs to its end
    batch_run(first)
    monkeypatch.undo()
    job = run_inline(uploaded)
    # then no document lost its file to a sweep, and every row ended once
    assert_every_row_once(job, 6)


def attempt_left_uncommitted(job: Import, monkeypatch) -> None:
    """Run the first batch up to its commit, which fails without cleaning up after itself."""
    first, *_ = batch_ids(job)
    with monkeypatch.context() as patched:
        patched.setattr(batches, "_commit", lambda batch, rows, outcomes: 1 / 0)
        patched.setattr(batches, "_discard", lambda outcomes: None)
        with pytest.raises(ZeroDivisionError):
            batch_run(first)


def test_an_import_deleted_after_an_error_takes_its_uncommitted_copies(uploaded, monkeypatch):
    attempt_left_uncommitted(uploaded, monkeypatch)
    import_fail(str(uploaded.pk), "a batch of rows failed (ZeroDivisionError).")
    assert stored_files(), "kept while the import may still be resumed"
    import_delete(Import.objects.get(pk=uploaded.pk))
    assert stored_files() == set()


def test_cancel_sweeps_an_uncommitted_attempt_in_the_background(uploaded, monkeypatch):
    attempt_left_uncommitted(uploaded, monkeypatch)
    assert stored_files()
    import_cancel(uploaded)
    assert stored_files(), "listing storage folders is left to the report task"
    report_task_run(uploaded)
    assert stored_files() == set()


def test_two_attempts_at_a_batch_at_once_keep_their_copies_apart(uploaded, settings):
    # given an attempt taken for lost (silent for longer than the limit), but only slow
    first, *_ = batch_ids(uploaded)
    batch = Batch.objects.get(pk=first)
    one = batches._attempt_start(batch)
    silent = timezone.now() - timedelta(seconds=settings.IMPORT_BATCH_LOST_AFTER + 1)
    Batch.objects.filter(pk=first).update(heartbeat_at=silent)
    # when another attempt starts while it still runs
    two = batches._attempt_start(batch)
    # then each copies into a folder of its own
    assert copies.attempt_folder(one) != copies.attempt_folder(two)


def test_a_commit_whose_answer_was_lost_keeps_its_files(uploaded, monkeypatch):
    # given the database commits a batch, but the connection drops before the worker hears it
    first, *_ = batch_ids(uploaded)
    commit = batches._commit

    def answer_lost(batch, rows, outcomes):
        commit(batch, rows, outcomes)
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(batches, "_commit", answer_lost)
    with pytest.raises(OperationalError):
        batch_run(first)
    monkeypatch.undo()
    # when the task is retried and the import runs to its end
    batch_run(first)
    job = run_inline(uploaded)
    # then the committed documents still have their files
    assert_every_row_once(job, 6)


def test_resume_removes_the_report_of_the_error_it_resumes_from(uploaded):
    # given an import that ended in error, its report written
    import_fail(str(uploaded.pk), "a batch of rows failed (OSError).")
    error_report = report_task_run(uploaded).report.name
    assert stored_files("reports") == {error_report}
    # when it is resumed and runs to its end
    job = resumed_inline(uploaded)
    # then only the finished import's report is left
    assert job.status == ImportStatus.FINISHED
    assert stored_files("reports") == {job.report.name} != {error_report}
