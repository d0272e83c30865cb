"""Rollback: an ended import's created documents deleted with their files, batch by batch, under
the one-open-import lock; what others changed since, or it only updated, kept and listed.

The rollback's work runs in this process (`rolled_back_inline`), as the workers would run what
import_rollback announced; what it announces is recorded by `queued`.
"""

from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from imports import batches, recovery, reports, rollbacks, tasks
from imports.batches import batch_run
from imports.errors import (
    AnotherImportOpen,
    ImportAlreadyRolledBack,
    ImportConflict,
    ImportNotResumable,
    ImportStillOpen,
    RollbackNotCancellable,
)
from imports.lifecycle import (
    import_cancel,
    import_create,
    import_fail,
    import_resume,
    import_rollback,
    imports_purge,
)
from imports.models import (
    Batch,
    Document,
    EventKind,
    Import,
    ImportPhase,
    ImportStatus,
    KeptBecause,
    RollbackAction,
)
from imports.rollbacks import (
    batch_rollback,
    batches_to_roll_back,
    rollback_finish,
    rollback_verdict,
)
from imports.selectors import batches_lost
from imports.signals import import_ended

from .factories import csv_bytes, import_run, import_uploaded, scans_in

pytestmark = pytest.mark.django_db

HEADER = "identifier,file_path,title"


@pytest.fixture
def ended(monkeypatch) -> list[tuple[str, str]]:
    """Every import_ended sent, as (import id, status)."""
    sent: list[tuple[str, str]] = []

    def record(sender, import_id, status, **_):
        sent.append((str(import_id), status))

    import_ended.connect(record, dispatch_uid="test-rollbacks-ended")
    yield sent
    import_ended.disconnect(dispatch_uid="test-rollbacks-ended")


def rollback_batches(job: Import) -> None:
    """Run the rollback of every batch left, as the workers would."""
    for batch_id in batches_to_roll_back(job.pk):
        batch_rollback(batch_id)


def rolled_back_inline(job: Import) -> Import:
    """Start the rollback, then run its work in this process."""
    job = import_rollback(job)
    rollback_batches(job)
    rollback_finish(job.pk)
    job.refresh_from_db()
    return job


@pytest.fixture
def two_imports(source: Path) -> tuple[Import, Import, Import]:
    """Import 1 creates A and B; import 2 (on_conflict=update, a batch per row) updates B and
    creates C and D; import 3 updates D. Every one finished."""
    scans_in(source, "a.png", "b.png", "b2.png", "c.png", "d.png", "d3.png")
    first = import_run(csv_bytes(HEADER, "A,a.png,A", "B,b.png,B"))
    second = import_run(
        csv_bytes(HEADER, "B,b2.png,B again", "C,c.png,C", "D,d.png,D"),
        on_conflict="update",
        batch_size=1,
    )
    third = import_run(csv_bytes(HEADER, "D,d3.png,D again"), on_conflict="update")
    assert [job.status for job in (first, second, third)] == ["finished"] * 3
    assert [job.imported_rows for job in (first, second, third)] == [2, 3, 1]
    return first, second, third


def document(identifier: str) -> Document:
    return Document.objects.get(identifier=identifier)


def report(job: Import) -> list[str]:
    return "".join(rollbacks.rollback_report_lines(job)).splitlines()


# The decision


def test_the_decision_deletes_only_what_the_import_created_and_last_wrote():
    this, later = "7a3c7c0e-63b6-4b3c-9f0b-6f1a7f7e0001", "7a3c7c0e-63b6-4b3c-9f0b-6f1a7f7e0002"
    assert rollback_verdict(this, this, this).action == RollbackAction.DELETED
    assert rollback_verdict(this, later, this).kept_because == KeptBecause.CHANGED_SINCE
    assert rollback_verdict(this, None, this).kept_because == KeptBecause.CHANGED_SINCE
    assert rollback_verdict(this, this, later).kept_because == KeptBecause.ONLY_UPDATED
    assert rollback_verdict(this, this, None).kept_because == KeptBecause.ONLY_UPDATED
    assert rollback_verdict(this, later, later).action == RollbackAction.KEPT


def test_a_batch_records_the_import_that_created_a_document_and_an_update_leaves_it(two_imports):
    first, second, third = two_imports
    assert document("A").created_by_import_id == first.pk
    assert (document("B").created_by_import_id, document("B").import_job_id) == (
        first.pk,
        second.pk,
    )
    assert document("C").created_by_import_id == second.pk
    assert (document("D").created_by_import_id, document("D").import_job_id) == (
        second.pk,
        third.pk,
    )


# Rolling back


def test_rolling_back_the_second_import_deletes_only_what_it_created(
    two_imports, queued, ended, django_capture_on_commit_callbacks
):
    first, second, _third = two_imports
    untouched = {d.identifier: (d.file.name, d.sha256) for d in Document.objects.all()}
    c_file = document("C").file.name
    # when the second import is rolled back
    with django_capture_on_commit_callbacks(execute=True):
        started = import_rollback(second)
    assert (started.status, started.phase) == (ImportStatus.ACTIVE, ImportPhase.ROLLING_BACK)
    batch_ids = batches_to_roll_back(second.pk)
    assert len(batch_ids) == 3
    assert queued == [("rollback", (str(second.pk), batch_id)) for batch_id in batch_ids]
    with django_capture_on_commit_callbacks(execute=True):
        rollback_batches(second)
    # then the one document it created and nobody changed since is gone, with its file
    second.refresh_from_db()
    assert (second.status, second.phase) == (ImportStatus.ROLLED_BACK, ImportPhase.NONE)
    assert second.rollback_finished_at is not None
    assert (second.rollback_rows, second.documents_deleted, second.documents_kept) == (3, 1, 2)
    assert ended == [(str(second.pk), ImportStatus.ROLLED_BACK)]
    assert not default_storage.exists(c_file)
    assert set(Document.objects.values_list("identifier", flat=True)) == {"A", "B", "D"}
    # and the others' documents and files are as they were
    for identifier in ("A", "B", "D"):
        kept = document(identifier)
        assert (kept.file.name, kept.sha256) == untouched[identifier]
        assert default_storage.exists(kept.file.name)
    assert Document.objects.filter(import_job=first).count() == 1  # A; B is the second's
    # and the report lists each row: kept and why, or deleted
    b, d = document("B").uuid, document("D").uuid
    c = next(line for line in report(second) if ",C," in line).split(",")[2]
    assert report(second) == [
        "row,identifier,document_uuid,action,kept_because",
        f"1,B,{b},kept,only_updated",
        f"2,C,{c},deleted,",
        f"3,D,{d},kept,changed_since",
    ]


def test_rolling_back_the_first_import_keeps_what_a_later_import_changed(two_imports):
    first, _second, _third = two_imports
    a, a_file = document("A").uuid, document("A").file.name
    job = rolled_back_inline(first)
    assert (job.status, job.documents_deleted, job.documents_kept) == ("rolled_back", 1, 1)
    assert not default_storage.exists(a_file)
    assert set(Document.objects.values_list("identifier", flat=True)) == {"B", "C", "D"}
    assert report(first)[1:] == [
        f"1,A,{a},deleted,",
        f"2,B,{document('B').uuid},kept,changed_since",
    ]


def test_a_batch_delivered_twice_deletes_nothing_twice(two_imports):
    _first, second, _third = two_imports
    import_rollback(second)
    one, *_ = batches_to_roll_back(second.pk)
    batch_rollback(one)
    batch_rollback(one)  # delivered again: already claimed
    second.refresh_from_db()
    assert (second.rollback_rows, second.documents_deleted, second.documents_kept) == (1, 0, 1)
    rollback_batches(second)
    for batch_id in Batch.objects.filter(import_job=second).values_list("pk", flat=True):
        batch_rollback(batch_id)  # every one again, after the end
    second.refresh_from_db()
    assert (second.rollback_rows, second.documents_deleted, second.documents_kept) == (3, 1, 2)
    assert second.rollback_outcomes.count() == 3


def test_a_batch_of_an_import_not_rolling_back_is_left_alone(two_imports):
    _first, second, _third = two_imports
    for batch_id in Batch.objects.filter(import_job=second).values_list("pk", flat=True):
        batch_rollback(batch_id)
    assert Document.objects.count() == 4
    assert not Batch.objects.filter(rolled_back_at__isnull=False).exists()


def test_the_end_is_queued_when_no_batch_is_left(two_imports, queued, ended, monkeypatch):
    # given the batches are rolled back but the last one's end was lost
    _first, second, _third = two_imports
    import_rollback(second)
    with monkeypatch.context() as patched:
        patched.setattr(rollbacks, "_end_if_done", lambda import_id: False)
        rollback_batches(second)
    assert Import.objects.get(pk=second.pk).status == ImportStatus.ACTIVE
    # when its work is announced again, the end is queued; it ends the rollback
    tasks.work_queue(None, import_id=second.pk, phase=ImportPhase.ROLLING_BACK)
    assert queued == [("rollback_finish", (str(second.pk),))]
    rollback_finish(second.pk)
    assert Import.objects.get(pk=second.pk).status == ImportStatus.ROLLED_BACK


def test_rollback_finish_is_a_no_op_while_a_batch_is_left(two_imports):
    _first, second, _third = two_imports
    import_rollback(second)
    rollback_finish(second.pk)
    assert Import.objects.get(pk=second.pk).phase == ImportPhase.ROLLING_BACK


def test_a_dry_run_is_rolled_back_at_once_and_announced(
    source, queued, ended, django_capture_on_commit_callbacks
):
    scans_in(source, "a.png")
    dry = import_run(csv_bytes(HEADER, "A,a.png,A"), dry_run=True)
    with django_capture_on_commit_callbacks(execute=True):
        job = import_rollback(dry)
    assert (job.status, job.phase, job.documents_deleted) == ("rolled_back", "", 0)
    assert job.rollback_started_at == job.rollback_finished_at
    assert ended == [(str(dry.pk), ImportStatus.ROLLED_BACK)]
    assert [name for name, _ in queued] == []
    assert report(job) == ["row,identifier,document_uuid,action,kept_because"]


def test_a_file_deleted_before_a_crash_is_gone_through_again(two_imports, monkeypatch):
    # given the rollback of a batch deletes its files, then its worker dies before it commits
    _first, second, _third = two_imports
    c_file = document("C").file.name
    import_rollback(second)
    b_batch, c_batch, _d_batch = batches_to_roll_back(second.pk)
    batch_rollback(b_batch)

    def crash(import_id):
        raise SystemExit("killed")

    with monkeypatch.context() as patched:
        patched.setattr(rollbacks, "_end_if_done", crash)
        with pytest.raises(SystemExit):
            batch_rollback(c_batch)
    assert not default_storage.exists(c_file) and document("C")  # its file went first
    # and the import ends in error, as the task's failure does
    import_fail(str(second.pk), "rolling back a batch failed (SystemExit).")
    failed = Import.objects.get(pk=second.pk)
    assert failed.status == ImportStatus.ERROR
    assert failed.error == (
        "the rollback stopped: rolling back a batch failed (SystemExit). Rolled back again, it "
        "goes on where it stopped."
    )
    # when it is rolled back again, it goes on, each document counted once
    job = rolled_back_inline(failed)
    assert (job.status, job.error) == (ImportStatus.ROLLED_BACK, "")
    assert job.rollback_started_at == failed.rollback_started_at
    assert (job.rollback_rows, job.documents_deleted, job.documents_kept) == (3, 1, 2)
    assert not Document.objects.filter(identifier="C").exists()


# Refusals


def test_an_open_import_cannot_be_rolled_back(source):
    scans_in(source, "a.png")
    pending = import_create()
    with pytest.raises(ImportStillOpen):
        import_rollback(pending)
    import_cancel(pending)
    active = import_uploaded(csv_bytes(HEADER, "A,a.png,A"))
    with pytest.raises(ImportStillOpen):
        import_rollback(active)


def test_an_import_rolled_back_is_not_rolled_back_again(two_imports):
    _first, second, _third = two_imports
    rolled_back_inline(second)
    with pytest.raises(ImportAlreadyRolledBack):
        import_rollback(second)


def test_a_rollback_holds_the_lock(two_imports):
    first, second, _third = two_imports
    import_rollback(second)
    with pytest.raises(AnotherImportOpen):
        import_create()
    with pytest.raises(AnotherImportOpen):
        import_rollback(first)
    with pytest.raises(ImportStillOpen):
        import_rollback(second)  # already rolling back


def test_a_rollback_waits_for_an_open_import(two_imports):
    _first, second, _third = two_imports
    import_create()
    with pytest.raises(AnotherImportOpen):
        import_rollback(second)
    assert Import.objects.get(pk=second.pk).rollback_started_at is None


def test_a_rollback_is_not_cancelled(two_imports):
    _first, second, _third = two_imports
    import_rollback(second)
    with pytest.raises(RollbackNotCancellable):
        import_cancel(second)
    assert Import.objects.get(pk=second.pk).phase == ImportPhase.ROLLING_BACK


def test_an_import_whose_rollback_started_is_not_resumed(two_imports, settings):
    _first, second, _third = two_imports
    import_rollback(second)
    stale = timezone.now() - timedelta(seconds=settings.IMPORT_STALE_AFTER + 1)
    Import.objects.filter(pk=second.pk).update(heartbeat_at=stale)
    with pytest.raises(ImportNotResumable):
        import_resume(second)  # stale, but rolling back
    import_fail(str(second.pk), "rolling back a batch failed (OSError).")
    with pytest.raises(ImportNotResumable):
        import_resume(second)  # in error, but its rollback started
    rolled_back_inline(Import.objects.get(pk=second.pk))
    with pytest.raises(ImportNotResumable):
        import_resume(second)


def test_the_rollback_report_of_an_import_never_rolled_back_is_refused(two_imports):
    with pytest.raises(ImportConflict):
        rollbacks.rollback_report_lines(two_imports[1])


# The import machinery stays away


def test_a_batch_left_uncommitted_is_not_run_while_rolling_back(source, settings):
    # given an import that ended in error with a batch not committed, whose attempt went silent
    scans_in(source, "a.png", "b.png")
    job = import_uploaded(csv_bytes(HEADER, "A,a.png,A", "B,b.png,B"), batch_size=1)
    tasks.import_split_task.apply(args=(str(job.pk),))
    first, second = Batch.objects.filter(import_job=job).values_list("pk", flat=True)
    batch_run(first)
    batches._attempt_start(Batch.objects.get(pk=second))
    silent = timezone.now() - timedelta(seconds=settings.IMPORT_BATCH_LOST_AFTER + 1)
    Batch.objects.filter(pk=second).update(heartbeat_at=silent)
    import_fail(str(job.pk), "a batch of rows failed (OSError).")
    # when it is rolled back
    import_rollback(job)
    # then its lost batch is not queued again, and it does not run if delivered
    assert batches_lost(timezone.now()) == []
    Batch.objects.filter(pk=second).update(heartbeat_at=None)
    batch_run(second)
    assert not Batch.objects.get(pk=second).committed_at
    rollback_batches(job)
    job.refresh_from_db()
    assert (job.status, job.documents_deleted) == (ImportStatus.ROLLED_BACK, 1)
    assert list(Document.objects.values_list("identifier", flat=True)) == []


def test_a_rollback_whose_worker_died_is_queued_again_by_the_recovery(
    two_imports, queued, settings, django_capture_on_commit_callbacks
):
    # given a rollback that did one batch, then nothing reported
    _first, second, _third = two_imports
    import_rollback(second)
    one, *rest = batches_to_roll_back(second.pk)
    batch_rollback(one)
    now = timezone.now()
    silent = now - timedelta(seconds=settings.IMPORT_BATCH_LOST_AFTER + 1)
    Import.objects.filter(pk=second.pk).update(heartbeat_at=silent)
    # when the recovery sweeps
    with django_capture_on_commit_callbacks(execute=True):
        recovery.imports_recover(now)
    # then the batches left are queued again, and said
    assert queued == [("rollback", (str(second.pk), batch_id)) for batch_id in rest]
    job = Import.objects.get(pk=second.pk)
    assert (job.status, job.phase, job.stalls) == ("active", "rolling_back", 1)
    assert [event.detail for event in job.events.filter(kind=EventKind.IMPORT_STALLED)] == [
        f"nothing reported for {int(settings.IMPORT_BATCH_LOST_AFTER)} s while rolling back; "
        "the batches not yet rolled back are queued again"
    ]
    rollback_batches(job)
    job.refresh_from_db()
    assert (job.status, job.rollback_rows, job.documents_deleted) == ("rolled_back", 3, 1)


def test_a_rollback_that_stalls_too_often_ends_in_error_to_be_rolled_back_again(
    two_imports, queued, settings
):
    _first, second, _third = two_imports
    import_rollback(second)
    Import.objects.filter(pk=second.pk).update(stalls=settings.IMPORT_BATCH_MAX_REQUEUES)
    now = timezone.now()
    silent = now - timedelta(seconds=settings.IMPORT_BATCH_LOST_AFTER + 1)
    Import.objects.filter(pk=second.pk).update(heartbeat_at=silent)
    recovery.imports_recover(now)
    job = Import.objects.get(pk=second.pk)
    assert job.status == ImportStatus.ERROR
    assert job.error.startswith("the rollback stopped: the import stopped reporting")
    assert job.error.endswith("Rolled back again, it goes on where it stopped.")
    assert rolled_back_inline(job).status == ImportStatus.ROLLED_BACK


def test_a_failed_rollback_task_ends_the_import_in_error_in_words(two_imports, monkeypatch):
    _first, second, _third = two_imports
    import_rollback(second)
    one, *_ = batches_to_roll_back(second.pk)

    def storage_fails(batch_id):
        raise OSError("/srv/media/secret: input/output error")

    monkeypatch.setattr(tasks, "batch_rollback", storage_fails)
    assert tasks.batch_rollback_task.apply(args=(str(second.pk), one)).failed()
    job = Import.objects.get(pk=second.pk)
    assert (job.status, job.error) == (
        ImportStatus.ERROR,
        "the rollback stopped: rolling back a batch failed (OSError). Rolled back again, it "
        "goes on where it stopped.",
    )


def test_a_rolled_back_import_keeps_its_report(two_imports):
    _first, second, _third = two_imports
    name = second.report.name
    assert name
    job = import_rollback(second)
    assert reports.report_content_type(job).startswith("text/csv")  # while rolling back too
    rollback_batches(job)
    job.refresh_from_db()
    assert reports.report_content_type(job).startswith("text/csv")
    reports.ended_import_report(str(job.pk))
    job.refresh_from_db()
    assert job.report.name == name


def test_a_rolled_back_import_is_purged_with_its_documents_unlinked(two_imports):
    first, _second, _third = two_imports
    rolled_back_inline(first)
    assert imports_purge(0) == 3
    assert not Import.objects.exists()
    assert set(Document.objects.values_list("created_by_import", flat=True)) == {None}
