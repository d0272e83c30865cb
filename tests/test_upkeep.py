"""Upkeep, on Celery beat's schedule: pending imports expire, ended ones go after the retention,
stray copies are removed and staged cells dropped; each step harmless to repeat.

The periodic task is called directly, as beat would send it; the reports it queues are
recorded, not sent.
"""

from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from imports import batches, lifecycle, tasks, upkeep
from imports.batches import batch_run
from imports.lifecycle import import_cancel, import_create, import_fail
from imports.models import Batch, Document, Import, ImportStatus, Row

from .background import report_task_run
from .conftest import stored_files
from .factories import csv_bytes, import_run, import_staged, scans_in

pytestmark = pytest.mark.django_db

HEADER = "identifier,file_path,title"


@pytest.fixture(autouse=True)
def reports_queued(monkeypatch) -> list[tuple]:
    """The report tasks the upkeep queues, recorded instead of sent to a broker."""
    queued: list[tuple] = []
    monkeypatch.setattr(tasks.import_report_task, "delay", lambda *args: queued.append(args))
    return queued


def upkeep_run() -> None:
    """Run the periodic upkeep task, as Celery beat would send it."""
    result = tasks.imports_upkeep_task.apply()
    assert result.successful(), result.traceback


def finished(source, name: str) -> Import:
    """A finished import of one row, `name`, with its manifest, report and document."""
    scans_in(source, f"{name}.png")
    return import_run(csv_bytes(HEADER, f"{name},{name}.png,{name}"))


def ended_days_ago(job: Import, days: float) -> Import:
    Import.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(days=days))
    return job


def batch_ids(job: Import) -> list[int]:
    return list(Batch.objects.filter(import_job=job).values_list("pk", flat=True))


def attempt_left_uncommitted(batch_id: int, monkeypatch) -> set[str]:
    """Run an attempt at the batch up to its commit, which does not happen (it is still to come,
    or its worker died), its copies left in storage; the names of those copies."""
    before = stored_files()
    with monkeypatch.context() as patched:
        patched.setattr(batches, "_commit", lambda batch, rows, outcomes: 1 / 0)
        patched.setattr(batches, "_discard", lambda outcomes: None)
        with pytest.raises(ZeroDivisionError):
            batch_run(batch_id)
    return stored_files() - before


def cells(job: Import) -> list[list[str]]:
    return list(job.rows.order_by("number").values_list("cells", flat=True))


# Pending imports


@pytest.mark.parametrize(("age", "status"), [(59, ImportStatus.PENDING), (61, "cancelled")])
def test_a_pending_import_nobody_uploaded_to_in_time_is_cancelled(settings, age, status):
    # given an import created `age` seconds ago, with nothing uploaded to it
    settings.IMPORT_PENDING_TIMEOUT = 60
    job = import_create()
    Import.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(seconds=age))
    # when the upkeep runs
    upkeep_run()
    # then it expired once past the timeout, and not before
    job.refresh_from_db()
    assert job.status == status
    assert (job.finished_at is not None) == (status == ImportStatus.CANCELLED)


# Retention


def test_an_import_ended_before_the_retention_goes_with_its_files_and_rows(source, settings):
    # given an import that ended 31 days ago, with a retention of 30 days
    settings.IMPORT_RETENTION_DAYS = 30
    job = ended_days_ago(finished(source, "A"), 31)
    files = {job.manifest.name, job.report.name}
    assert files <= stored_files("manifests") | stored_files("reports")
    document = Document.objects.get()
    # when the upkeep runs
    upkeep_run()
    # then the import, its manifest, report and rows are gone
    assert not Import.objects.filter(pk=job.pk).exists()
    assert not Row.objects.filter(import_job_id=job.pk).exists()
    assert stored_files("manifests") | stored_files("reports") == set()
    # and its document stays, with its file
    document.refresh_from_db()
    assert document.import_job is None
    assert default_storage.exists(document.file.name)


def test_an_import_ended_within_the_retention_stays(source, settings):
    settings.IMPORT_RETENTION_DAYS = 30
    job = ended_days_ago(finished(source, "A"), 29)
    upkeep_run()
    job.refresh_from_db()
    assert job.rows.count() == 1
    assert stored_files("manifests") | stored_files("reports") == {
        job.manifest.name,
        job.report.name,
    }


def test_an_import_purged_by_another_upkeep_meanwhile_is_not_an_error(
    source, settings, monkeypatch
):
    # given two imports past the retention, the first of which another machine's upkeep
    # deletes while this one is about to
    settings.IMPORT_RETENTION_DAYS = 30
    first = ended_days_ago(finished(source, "A"), 32)
    second = ended_days_ago(finished(source, "B"), 31)
    delete = lifecycle.import_delete

    def purged_meanwhile(job: Import) -> None:
        if job.pk == first.pk:
            delete(Import.objects.get(pk=job.pk))  # the other machine's
        delete(job)

    monkeypatch.setattr(lifecycle, "import_delete", purged_meanwhile)
    # when this upkeep runs
    upkeep_run()
    # then it went on, and both are gone
    assert not Import.objects.filter(pk__in=(first.pk, second.pk)).exists()
    assert stored_files("manifests") | stored_files("reports") == set()


# Stray copies


def test_stray_copies_of_a_committed_batch_go_while_the_import_runs_on(uploaded, monkeypatch):
    # given an active import whose first batch committed on its second attempt, the first
    # attempt's copies left behind (its worker died), and the second batch's attempt still
    # to commit
    first, second, _ = batch_ids(uploaded)
    stray = attempt_left_uncommitted(first, monkeypatch)
    batch_run(first)
    committed = {document.file.name for document in Document.objects.all()}
    in_flight = attempt_left_uncommitted(second, monkeypatch)
    assert len(stray) == len(committed) == len(in_flight) == 2
    assert stored_files() == stray | committed | in_flight
    # when the upkeep runs
    upkeep_run()
    # then only the stray copies are gone
    assert stored_files() == committed | in_flight
    assert Import.objects.get(pk=uploaded.pk).status == ImportStatus.ACTIVE


def test_copies_an_import_in_error_may_still_commit_on_resume_stay(uploaded, monkeypatch):
    first, *_ = batch_ids(uploaded)
    left = attempt_left_uncommitted(first, monkeypatch)
    import_fail(str(uploaded.pk), "a batch of rows failed (OSError).")
    upkeep_run()
    assert stored_files() == left


# Staged cells


def test_the_staged_cells_of_a_cancelled_import_are_dropped(source):
    # given an import cancelled with its rows staged, none run
    job = import_cancel(import_staged(csv_bytes(HEADER, "A,a.png,A", "B,b.png,B")))
    assert cells(job) == [["A", "a.png", "A"], ["B", "b.png", "B"]]
    # when the upkeep runs
    upkeep_run()
    # then its rows keep their numbers and identifiers, not their cells
    job.refresh_from_db()
    assert job.staged_cells_dropped
    assert cells(job) == [[], []]
    assert list(job.rows.values_list("identifier", flat=True)) == ["A", "B"]
    # and its report, written afterwards, still lists every row from the manifest
    report_task_run(job)
    with job.report.open("rb") as report:
        assert report.read().decode().splitlines()[1].startswith("A,a.png,A,not_processed,")


def test_a_finished_import_is_marked_as_having_no_staged_cells(source):
    job = finished(source, "A")
    assert not job.staged_cells_dropped
    upkeep_run()
    job.refresh_from_db()
    assert job.staged_cells_dropped
    assert cells(job) == [[]]


def test_an_import_in_error_keeps_the_cells_of_its_uncommitted_rows(uploaded):
    # given an import whose first batch committed before it ended in error
    first, *_ = batch_ids(uploaded)
    batch_run(first)
    import_fail(str(uploaded.pk), "a batch of rows failed (OSError).")
    before = cells(uploaded)
    # when the upkeep runs
    upkeep_run()
    # then the rows a resume would run keep their cells
    uploaded.refresh_from_db()
    assert not uploaded.staged_cells_dropped
    assert cells(uploaded) == before
    assert before[:2] == [[], []] and all(before[2:])


def test_dropping_staged_cells_again_changes_nothing(source):
    import_cancel(import_staged(csv_bytes(HEADER, "A,a.png,A")))
    assert upkeep.staged_cells_drop() == 1
    assert upkeep.staged_cells_drop() == 0


# Repeating the upkeep


def everything() -> tuple:
    """What the upkeep may change: stored files, imports, rows."""
    return (
        stored_files(),
        list(Import.objects.order_by("pk").values_list("pk", "status", "staged_cells_dropped")),
        list(Row.objects.order_by("import_job_id", "number").values_list("number", "cells")),
    )


def test_running_the_upkeep_twice_is_harmless(source, settings, monkeypatch):
    # given one of everything the upkeep sees to
    settings.IMPORT_RETENTION_DAYS = 30
    ended_days_ago(finished(source, "Old"), 31)
    kept = ended_days_ago(finished(source, "Kept"), 1)
    cancelled = import_cancel(import_staged(csv_bytes(HEADER, "C,c.png,C")))
    scans_in(source, "d.png", "e.png")
    active = import_staged(csv_bytes(HEADER, "D,d.png,D", "E,e.png,E"), batch_size=1)
    first, second = batch_ids(active)
    attempt_left_uncommitted(first, monkeypatch)
    batch_run(first)
    in_flight = attempt_left_uncommitted(second, monkeypatch)
    # when the upkeep runs twice
    upkeep_run()
    after_once = everything()
    upkeep_run()
    # then the second run changed nothing
    assert everything() == after_once
    assert set(Import.objects.values_list("pk", flat=True)) == {kept.pk, cancelled.pk, active.pk}
    assert in_flight <= after_once[0]
