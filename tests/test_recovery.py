"""Self-healing: the recovery task queues again the batches and imports that stopped beating.

Time is frozen by passing `now` to imports_recover and setting heartbeats relative to it. The
tasks the recovery queues are recorded, not sent (`queued`), and run here when a test needs it.
"""

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from billiard.exceptions import WorkerLostError
from celery.signals import task_failure
from django.utils import timezone

from imports import batches, recovery, tasks
from imports.batches import batch_run
from imports.errors import BatchLostTooOften
from imports.lifecycle import import_cancel, import_fail, import_finish, import_resume
from imports.models import (
    Batch,
    Document,
    EventKind,
    Import,
    ImportPhase,
    ImportStatus,
)
from imports.selectors import batches_lost

from .background import report_task_run
from .conftest import stored_files
from .factories import csv_bytes, import_uploaded, run_inline, scans_in
from .waiting import on_threads

pytestmark = pytest.mark.django_db

HEADER = "identifier,file_path,title"
WORKER = "celery@worker-1"


@pytest.fixture
def sweep(django_capture_on_commit_callbacks) -> Callable[[datetime | None], None]:
    """Run the recovery task's work at `now`, then what it announced on commit."""

    def run(now: datetime | None = None) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            recovery.imports_recover(now)

    return run


def batch_ids(job: Import) -> list[int]:
    return list(Batch.objects.filter(import_job=job).values_list("pk", flat=True))


def started_and_silent(batch_id: int, seconds: float, now: datetime) -> Batch:
    """An attempt at the batch started on WORKER, whose last beat was `seconds` before `now`;
    the import itself beat at `now`, so only the batch is silent."""
    batch = batches._attempt_start(Batch.objects.get(pk=batch_id), WORKER)
    Batch.objects.filter(pk=batch_id).update(heartbeat_at=now - timedelta(seconds=seconds))
    Import.objects.filter(pk=batch.import_job_id).update(heartbeat_at=now)
    return Batch.objects.get(pk=batch_id)


def lost_seconds(settings) -> float:
    return settings.IMPORT_BATCH_LOST_AFTER + 1


def events(job: Import, kind: str) -> list[str]:
    return list(job.events.filter(kind=kind).values_list("detail", flat=True))


def report_statuses(job: Import) -> list[str]:
    with job.report.open("rb") as report:
        return [line.split(",")[3] for line in report.read().decode().splitlines()[1:]]


def assert_every_row_once(job: Import, rows: int) -> None:
    job.refresh_from_db()
    assert (job.status, job.processed_rows, job.imported_rows) == (
        ImportStatus.FINISHED,
        rows,
        rows,
    )
    assert Document.objects.count() == rows
    assert stored_files() == {document.file.name for document in Document.objects.all()}


# The selection


def test_a_running_batch_that_just_beat_is_left_alone(uploaded, queued, sweep, settings):
    now = timezone.now()
    first, *_ = batch_ids(uploaded)
    started_and_silent(first, 1, now)
    sweep(now)
    assert queued == []
    assert Batch.objects.get(pk=first).requeues == 0
    assert not uploaded.events.exists()


def test_a_slow_batch_silent_for_several_beats_but_less_than_the_limit_is_left_alone(
    uploaded, queued, sweep, settings
):
    # given a batch that missed a few beats (a large file on a slow mount), but not
    # IMPORT_BATCH_LOST_AFTER seconds of them
    settings.IMPORT_HEARTBEAT_SECONDS, settings.IMPORT_BATCH_LOST_AFTER = 10, 60
    now = timezone.now()
    first, *_ = batch_ids(uploaded)
    started_and_silent(first, 59, now)
    # when the recovery task runs
    sweep(now)
    # then it is still taken for running
    assert queued == []
    batch = Batch.objects.get(pk=first)
    assert (batch.requeues, batch.heartbeat_at) == (0, now - timedelta(seconds=59))


def test_a_lost_batch_is_queued_again_once_and_said_in_the_imports_events(
    uploaded, queued, sweep, settings, source
):
    # given an attempt whose worker stopped beating more than IMPORT_BATCH_LOST_AFTER ago
    now = timezone.now()
    first, *_ = batch_ids(uploaded)
    started_and_silent(first, lost_seconds(settings), now)
    # when the recovery task runs
    sweep(now)
    # then the batch is queued again, once, and counted as lost
    assert queued == [("batch", (str(uploaded.pk), first))]
    batch = Batch.objects.get(pk=first)
    assert (batch.requeues, batch.heartbeat_at) == (1, None)
    uploaded.refresh_from_db()
    assert (uploaded.status, uploaded.recovered_batches) == (ImportStatus.ACTIVE, 1)
    # and the import's events name the batch, its rows and its worker, and no server path
    (detail,) = events(uploaded, EventKind.BATCH_LOST)
    assert detail.startswith(f"batch 1 (rows {batch.first_row} to {batch.last_row}) ")
    assert WORKER in detail and "1 of at most 3 times" in detail
    assert str(source) not in detail and str(settings.DATA_DIR) not in detail


def test_a_lost_batch_whose_import_went_silent_with_it_is_not_recovered_twice(
    uploaded, queued, sweep, settings
):
    # given a lost batch, and its import silent as long (its only worker died)
    now = timezone.now()
    first, *_ = batch_ids(uploaded)
    started_and_silent(first, lost_seconds(settings), now)
    Import.objects.filter(pk=uploaded.pk).update(heartbeat_at=now - timedelta(hours=1))
    # when the recovery task runs
    sweep(now)
    # then the batch is queued again, and the import's silence is not taken for a stall too
    assert queued == [("batch", (str(uploaded.pk), first))]
    uploaded.refresh_from_db()
    assert uploaded.stalls == 0
    assert events(uploaded, EventKind.IMPORT_STALLED) == []


def test_a_committed_batch_is_never_queued_whatever_its_heartbeat_says(
    uploaded, queued, sweep, settings
):
    now = timezone.now()
    first, *_ = batch_ids(uploaded)
    batch_run(first)
    Batch.objects.filter(pk=first).update(heartbeat_at=now - timedelta(hours=1))
    Import.objects.filter(pk=uploaded.pk).update(heartbeat_at=now)
    sweep(now)
    assert queued == []
    assert Batch.objects.get(pk=first).requeues == 0


@pytest.mark.parametrize("end", [import_cancel, lambda job: import_fail(str(job.pk), "failed")])
def test_a_lost_batch_of_an_import_that_ended_is_never_queued(
    uploaded, queued, sweep, settings, end
):
    now = timezone.now()
    first, *_ = batch_ids(uploaded)
    started_and_silent(first, lost_seconds(settings), now)
    end(uploaded)
    sweep(now)
    assert [name for name, _ in queued if name == "batch"] == []
    assert Batch.objects.get(pk=first).requeues == 0


def test_two_sweeps_that_both_selected_a_lost_batch_queue_it_once(
    uploaded, queued, settings, django_capture_on_commit_callbacks
):
    # given two recovery tasks (two workers) that both found the batch lost
    now = timezone.now()
    silent_since = now - timedelta(seconds=settings.IMPORT_BATCH_LOST_AFTER)
    first, *_ = batch_ids(uploaded)
    started_and_silent(first, lost_seconds(settings), now)
    assert batches_lost(silent_since) == batches_lost(silent_since) == [first]
    # when each recovers it in turn
    with django_capture_on_commit_callbacks(execute=True):
        recovery.batch_recover(first, silent_since, now)
        recovery.batch_recover(first, silent_since, now)
    # then it is queued once, and lost once
    assert queued == [("batch", (str(uploaded.pk), first))]
    assert Batch.objects.get(pk=first).requeues == 1
    assert Import.objects.get(pk=uploaded.pk).recovered_batches == 1


def test_a_second_sweep_soon_after_the_first_does_not_queue_a_lost_batch_again(
    uploaded, queued, sweep, settings
):
    now = timezone.now()
    first, *_ = batch_ids(uploaded)
    started_and_silent(first, lost_seconds(settings), now)
    sweep(now)
    sweep(now + timedelta(seconds=1))
    assert queued == [("batch", (str(uploaded.pk), first))]


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_the_same_instant_queue_a_lost_batch_once(
    uploaded, queued, settings, monkeypatch
):
    # given a lost batch, and two recovery tasks on two threads (each its own connection, each
    # committing for real), each going on to claim it only once both have found it lost
    now = timezone.now()
    first, *_ = batch_ids(uploaded)
    started_and_silent(first, lost_seconds(settings), now)
    both_selected = threading.Barrier(2, timeout=30)

    def lost_then_wait(silent_since):
        lost = batches_lost(silent_since)
        both_selected.wait()
        return lost

    monkeypatch.setattr(recovery, "batches_lost", lost_then_wait)
    # when
    failures = on_threads(lambda: recovery.imports_recover(now), 2)
    # then
    assert failures == []
    assert queued == [("batch", (str(uploaded.pk), first))]
    assert Batch.objects.get(pk=first).requeues == 1


# A pool process that died, said at once by the worker's main process


def process_lost(batch_id: int, capture, exception: BaseException | None = None) -> None:
    """Celery's task_failure, as the worker's main process sends it when a pool process died."""
    with capture(execute=True):
        task_failure.send(
            sender=tasks.batch_run_task,
            task_id="t",
            exception=exception
            or WorkerLostError("Worker exited prematurely: signal 9 (SIGKILL)."),
            args=("import", batch_id),
            kwargs={},
            traceback=None,
            einfo=None,
        )


def test_a_batch_whose_pool_process_died_is_queued_again_at_once_and_counted(
    uploaded, queued, django_capture_on_commit_callbacks
):
    # given an attempt that just started (no silence to wait for)
    first, *_ = batch_ids(uploaded)
    batches._attempt_start(Batch.objects.get(pk=first), WORKER)
    # when the worker's main process says its pool process died
    process_lost(first, django_capture_on_commit_callbacks)
    # then the batch is queued again now, counted and said
    assert queued == [("batch", (str(uploaded.pk), first))]
    batch = Batch.objects.get(pk=first)
    assert (batch.requeues, batch.heartbeat_at) == (1, None)
    (detail,) = events(uploaded, EventKind.BATCH_LOST)
    assert f"lost its process on {WORKER}; queued again at once (1 of at most" in detail


def test_a_batch_whose_message_died_with_its_process_before_it_started_is_only_queued_again(
    uploaded, queued, django_capture_on_commit_callbacks
):
    first, *_ = batch_ids(uploaded)
    process_lost(first, django_capture_on_commit_callbacks)
    assert queued == [("batch", (str(uploaded.pk), first))]
    assert Batch.objects.get(pk=first).requeues == 0
    assert not uploaded.events.exists()


def test_a_batch_that_failed_otherwise_is_not_taken_for_a_lost_process(
    uploaded, queued, django_capture_on_commit_callbacks
):
    first, *_ = batch_ids(uploaded)
    batches._attempt_start(Batch.objects.get(pk=first), WORKER)
    process_lost(first, django_capture_on_commit_callbacks, ValueError("a bug"))
    assert queued == []
    assert Batch.objects.get(pk=first).requeues == 0


def test_a_batch_whose_pool_process_dies_every_time_ends_the_import_in_error(
    uploaded, queued, settings, django_capture_on_commit_callbacks
):
    settings.IMPORT_BATCH_MAX_REQUEUES = 2
    first, *_ = batch_ids(uploaded)
    for _ in range(3):
        batches._attempt_start(Batch.objects.get(pk=first), WORKER)
        process_lost(first, django_capture_on_commit_callbacks)
    job = Import.objects.get(pk=uploaded.pk)
    batch = Batch.objects.get(pk=first)
    assert job.status == ImportStatus.ERROR
    assert job.error == str(BatchLostTooOften(1, batch.first_row, batch.last_row, 3))
    assert queued[-1] == ("report", (str(job.pk),))


# Giving up


def test_a_batch_lost_more_than_the_limit_ends_the_import_in_error_with_its_report(
    uploaded, queued, sweep, settings
):
    # given a first batch committed, and a second whose worker dies every time it runs it
    settings.IMPORT_BATCH_MAX_REQUEUES = 2
    first, second, _ = batch_ids(uploaded)
    batch_run(first)
    now = timezone.now()
    # when it is found lost three times
    for loss in range(1, 4):
        now += timedelta(seconds=lost_seconds(settings))
        started_and_silent(second, lost_seconds(settings), now)
        sweep(now)
        status = Import.objects.get(pk=uploaded.pk).status
        assert status == (ImportStatus.ACTIVE if loss <= 2 else ImportStatus.ERROR)
    # then it was queued again twice, then the import ended in error naming the batch's rows
    batch = Batch.objects.get(pk=second)
    assert batch.requeues == 3
    job = Import.objects.get(pk=uploaded.pk)
    assert job.error == str(BatchLostTooOften(2, batch.first_row, batch.last_row, 3))
    assert f"rows {batch.first_row} to {batch.last_row}" in job.error
    assert len(events(job, EventKind.BATCH_LOST)) == 2
    assert events(job, EventKind.GAVE_UP) == [
        f"batch 2 (rows {batch.first_row} to {batch.last_row}) was lost 3 times; "
        "the import ends in error"
    ]
    # and its report was queued, listing every row, those not committed as not processed
    batch_run_ = ("batch", (str(job.pk), second))
    assert queued == [batch_run_, batch_run_, ("report", (str(job.pk),))]
    assert report_statuses(report_task_run(job)) == ["imported"] * 2 + ["not_processed"] * 4


def test_a_delivery_while_another_attempt_beats_is_a_duplicate_and_runs_nothing(uploaded):
    # given an attempt that beat just now (running, or its pool process just killed)
    first, *_ = batch_ids(uploaded)
    batches._attempt_start(Batch.objects.get(pk=first), WORKER)
    # when the batch is delivered again (queued twice, or Celery put it back)
    again = batches._attempt_start(Batch.objects.get(pk=first), "celery@worker-2")
    # then that delivery runs nothing and counts nothing: only silence makes an attempt lost
    assert again is None
    batch = Batch.objects.get(pk=first)
    assert (batch.attempts, batch.requeues, batch.worker) == (1, 0, WORKER)
    assert not uploaded.events.exists()


def test_a_delivery_after_an_attempt_stopped_beating_counts_it_as_lost(uploaded, settings):
    # given an attempt that stopped beating longer ago than the limit (its process died)
    first, *_ = batch_ids(uploaded)
    started_and_silent(first, lost_seconds(settings), timezone.now())
    # when the batch is delivered again before the recovery task found it
    again = batches._attempt_start(Batch.objects.get(pk=first), "celery@worker-2")
    # then the first attempt is counted as lost, as the recovery task would, and the second runs
    assert (again.attempts, again.requeues, again.worker) == (2, 1, "celery@worker-2")
    (detail,) = events(uploaded, EventKind.BATCH_LOST)
    silent = int(settings.IMPORT_BATCH_LOST_AFTER)
    assert f"stopped reporting for {silent} s on {WORKER}; delivered again" in detail
    assert Import.objects.get(pk=uploaded.pk).recovered_batches == 1


def test_an_attempt_that_ended_in_an_exception_is_not_taken_for_a_lost_one(uploaded, monkeypatch):
    # given an attempt that failed (the task will be retried), its end recorded
    first, *_ = batch_ids(uploaded)
    with monkeypatch.context() as patched:
        patched.setattr(batches, "_commit", lambda batch, rows, outcomes: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            batch_run(first)
    assert Batch.objects.get(pk=first).heartbeat_at is None
    # when it is retried
    batch_run(first)
    # then nothing was lost
    batch = Batch.objects.get(pk=first)
    assert (batch.attempts, batch.requeues, batch.committed_attempt) == (2, 0, 2)
    assert not uploaded.events.exists()


def delivered_again_after_dying_too_often(job: Import, settings, capture) -> Batch:
    """Kill three attempts at the first batch (each silent for longer than the limit), with at
    most two losses allowed, then let it be delivered once more; the batch."""
    settings.IMPORT_BATCH_MAX_REQUEUES = 2
    first, *_ = batch_ids(job)
    for _ in range(3):
        started_and_silent(first, lost_seconds(settings), timezone.now())
    with capture(execute=True):
        result = tasks.batch_run_task.apply(args=(str(job.pk), first))
    assert result.failed()
    return Batch.objects.get(pk=first)


def test_a_batch_delivered_again_too_often_after_dying_ends_the_import_in_error(
    uploaded, queued, settings, django_capture_on_commit_callbacks
):
    # given a batch whose three attempts were each cut short
    # when Celery delivers it once more
    batch = delivered_again_after_dying_too_often(
        uploaded, settings, django_capture_on_commit_callbacks
    )
    # then the task fails without running it, and the import ends in error
    assert (batch.attempts, batch.requeues) == (3, 3)
    job = Import.objects.get(pk=uploaded.pk)
    assert job.status == ImportStatus.ERROR
    assert len(events(job, EventKind.BATCH_LOST)) == 2
    assert events(job, EventKind.GAVE_UP) == [
        f"batch 1 (rows {batch.first_row} to {batch.last_row}) was lost 3 times; "
        "the import ends in error"
    ]
    # and its report is queued, every row in it not processed
    assert queued == [("report", (str(job.pk),))]
    assert report_statuses(report_task_run(job)) == ["not_processed"] * 6


def test_a_batch_delivered_again_too_often_after_dying_says_which_rows_in_the_error(
    uploaded, queued, settings, django_capture_on_commit_callbacks
):
    batch = delivered_again_after_dying_too_often(
        uploaded, settings, django_capture_on_commit_callbacks
    )
    job = Import.objects.get(pk=uploaded.pk)
    assert job.error == str(BatchLostTooOften(1, batch.first_row, batch.last_row, 3))


def test_resume_after_giving_up_gives_the_batch_its_tries_again(uploaded, queued, sweep, settings):
    # given an import that gave up on a batch lost three times
    settings.IMPORT_BATCH_MAX_REQUEUES = 2
    first, *_ = batch_ids(uploaded)
    now = timezone.now()
    for _ in range(3):
        now += timedelta(seconds=lost_seconds(settings))
        started_and_silent(first, lost_seconds(settings), now)
        sweep(now)
    assert Import.objects.get(pk=uploaded.pk).status == ImportStatus.ERROR
    # when it is resumed, and the batch is lost once more
    job = import_resume(uploaded)
    assert Batch.objects.get(pk=first).requeues == 0
    now = timezone.now()
    started_and_silent(first, lost_seconds(settings), now)
    sweep(now)
    # then it is queued again rather than given up on, and the import runs to its end
    assert Import.objects.get(pk=job.pk).status == ImportStatus.ACTIVE
    assert Batch.objects.get(pk=first).requeues == 1
    assert queued[-1] == ("batch", (str(job.pk), first))
    assert_every_row_once(run_inline(job), 6)


# A slow worker, taken for lost, that commits after all


def test_a_slow_attempt_taken_for_lost_that_commits_late_is_refused(
    uploaded, queued, sweep, settings, monkeypatch
):
    # given attempt 1 has copied its files, then went silent so long that it was taken for
    # lost, and attempt 2 ran and committed meanwhile
    first, *_ = batch_ids(uploaded)
    commit = batches._commit
    late_commits: list[bool] = []

    def overtaken_meanwhile(batch, rows, outcomes):
        monkeypatch.setattr(batches, "_commit", commit)
        now = timezone.now() + timedelta(seconds=lost_seconds(settings))
        Import.objects.filter(pk=uploaded.pk).update(heartbeat_at=now)
        sweep(now)
        assert queued == [("batch", (str(uploaded.pk), first))]
        batch_run(first)  # attempt 2, as queued
        # when attempt 1 commits at last
        late_commits.append(commit(batch, rows, outcomes))
        return late_commits[-1]

    monkeypatch.setattr(batches, "_commit", overtaken_meanwhile)
    batch_run(first)
    # then its commit was refused, and attempt 2's stands
    assert late_commits == [False]
    batch = Batch.objects.get(pk=first)
    assert (batch.attempts, batch.committed_attempt, batch.requeues) == (2, 2, 1)
    # and the import ends with every row exactly once, only the committed copies stored
    assert_every_row_once(run_inline(uploaded), 6)


def test_a_slow_attempt_that_commits_before_the_one_queued_after_it_wins(
    uploaded, queued, sweep, settings, monkeypatch
):
    # given attempt 1 was taken for lost, and attempt 2 has copied its files meanwhile
    first, *_ = batch_ids(uploaded)
    commit = batches._commit
    held: dict = {}

    def slow_one_commits_first(batch, rows, outcomes):
        if batch.attempts == 1:
            held["slow"] = (batch, rows, outcomes)
            now = timezone.now() + timedelta(seconds=lost_seconds(settings))
            Import.objects.filter(pk=uploaded.pk).update(heartbeat_at=now)
            sweep(now)
            batch_run(first)  # attempt 2, as queued
            return held["slow committed"]
        # when attempt 1 commits at last, just before attempt 2 does
        held["slow committed"] = commit(*held["slow"])
        held["queued committed"] = commit(batch, rows, outcomes)
        return held["queued committed"]

    monkeypatch.setattr(batches, "_commit", slow_one_commits_first)
    batch_run(first)
    monkeypatch.undo()
    # then attempt 1's commit stands, and attempt 2's was refused
    assert (held["slow committed"], held["queued committed"]) == (True, False)
    batch = Batch.objects.get(pk=first)
    assert (batch.attempts, batch.committed_attempt) == (2, 1)
    # and the import ends with every row exactly once, only the committed copies stored
    assert_every_row_once(run_inline(uploaded), 6)


# A whole import that stopped beating


def silent_import(job: Import, now: datetime, settings) -> None:
    Import.objects.filter(pk=job.pk).update(
        heartbeat_at=now - timedelta(seconds=lost_seconds(settings))
    )


def test_an_import_stalled_while_counting_is_counted_again(source, queued, sweep, settings):
    # given an import whose count was lost (its message, or its worker): nothing beats
    scans_in(source, "a.png")
    job = import_uploaded(csv_bytes(HEADER, "A,a.png,A"))
    now = timezone.now()
    silent_import(job, now, settings)
    # when the recovery task runs
    sweep(now)
    # then its count is queued again, and the stall counted and said
    assert queued == [("split", (str(job.pk),))]
    job.refresh_from_db()
    assert (job.status, job.phase, job.stalls, job.recovered_at) == (
        ImportStatus.ACTIVE,
        ImportPhase.COUNTING,
        1,
        now,
    )
    assert events(job, EventKind.IMPORT_STALLED) == [
        f"nothing reported for {int(settings.IMPORT_BATCH_LOST_AFTER)} s while counting; "
        "its rows are counted again"
    ]


def test_an_import_stalled_while_importing_queues_its_uncommitted_batches(
    uploaded, queued, sweep, settings
):
    # given a committed batch, and the messages of the two others lost: nothing beats
    first, second, third = batch_ids(uploaded)
    batch_run(first)
    now = timezone.now()
    silent_import(uploaded, now, settings)
    # when the recovery task runs
    sweep(now)
    # then the two batches are queued again
    assert queued == [("batch", (str(uploaded.pk), second)), ("batch", (str(uploaded.pk), third))]
    uploaded.refresh_from_db()
    assert (uploaded.phase, uploaded.stalls) == (ImportPhase.IMPORTING, 1)
    assert len(events(uploaded, EventKind.IMPORT_STALLED)) == 1


def test_an_import_stalled_while_reporting_writes_its_report_again(
    uploaded, queued, sweep, settings
):
    # given every batch committed, and the worker writing the report died
    for batch_id in batch_ids(uploaded):
        batch_run(batch_id)
    Import.objects.filter(pk=uploaded.pk).update(phase=ImportPhase.REPORTING)
    now = timezone.now()
    silent_import(uploaded, now, settings)
    # when the recovery task runs
    sweep(now)
    # then the import goes back to importing and its finish is queued, which then finishes it
    assert queued == [("finish", (str(uploaded.pk),))]
    assert Import.objects.get(pk=uploaded.pk).phase == ImportPhase.IMPORTING
    import_finish(str(uploaded.pk))
    assert_every_row_once(uploaded, 6)


def test_two_sweeps_that_both_selected_a_stalled_import_queue_its_work_once(
    uploaded, queued, settings, django_capture_on_commit_callbacks
):
    now = timezone.now()
    silent_since = now - timedelta(seconds=settings.IMPORT_BATCH_LOST_AFTER)
    silent_import(uploaded, now, settings)
    with django_capture_on_commit_callbacks(execute=True):
        recovery.import_recover(uploaded.pk, silent_since, now)
        recovery.import_recover(uploaded.pk, silent_since, now)
    assert len(queued) == 3  # its three batches, once each
    assert Import.objects.get(pk=uploaded.pk).stalls == 1


def test_a_stalled_import_is_not_recovered_again_before_it_had_time_to_beat(
    uploaded, queued, sweep, settings
):
    now = timezone.now()
    silent_import(uploaded, now, settings)
    sweep(now)
    sweep(now + timedelta(seconds=settings.IMPORT_BATCH_LOST_AFTER - 1))
    assert len(queued) == 3
    assert Import.objects.get(pk=uploaded.pk).stalls == 1


def test_an_import_that_stalls_more_than_the_limit_ends_in_error(uploaded, queued, sweep, settings):
    # given an import whose work stops every time it is queued again
    settings.IMPORT_BATCH_MAX_REQUEUES = 2
    now = timezone.now()
    silent_import(uploaded, now, settings)
    # when it is found stalled three times, each after the last recovery had time to beat
    for _ in range(3):
        now += timedelta(seconds=lost_seconds(settings))
        sweep(now)
    # then its work was queued twice, and the third time the import ended in error
    job = Import.objects.get(pk=uploaded.pk)
    assert (job.status, job.stalls) == (ImportStatus.ERROR, 3)
    assert job.error == (
        "the import stopped reporting 3 times while importing, with nothing left running: its "
        "worker may be stopping on it (out of memory, a crash, a kill)."
    )
    assert [name for name, _ in queued] == ["batch"] * 6 + ["report"]
    stalled = events(job, EventKind.IMPORT_STALLED)
    assert len(stalled) == 3 and stalled[-1].endswith("3 times; the import ends in error")


def test_a_batch_commit_resets_the_imports_stalls(uploaded):
    Import.objects.filter(pk=uploaded.pk).update(stalls=2)
    first, *_ = batch_ids(uploaded)
    batch_run(first)
    assert Import.objects.get(pk=uploaded.pk).stalls == 0
