"""State changes of an import, called as the API and the commands call them: resume, cancel,
delete, and the retention purge (`purge_imports`: ended imports past IMPORT_RETENTION_DAYS go;
documents stay)."""

import io
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone

from imports.errors import AnotherImportOpen, ImportNotResumable
from imports.lifecycle import import_cancel, import_create, import_delete, import_resume
from imports.models import Document, Import, ImportPhase, ImportStatus, Row

from .background import report_task_run
from .conftest import stored_files
from .factories import csv_bytes, import_cancelled, import_run, import_uploaded, scans_in

pytestmark = pytest.mark.django_db

HEADER = "identifier,file_path,title"


@pytest.fixture
def cancelled(source) -> Import:
    """A cancelled import whose report is not written yet."""
    return import_cancelled(csv_bytes(HEADER, "A,a,A"))


# --- resume ----------------------------------------------------------------------------------


def test_an_active_import_still_reporting_cannot_be_resumed(uploaded):
    with pytest.raises(ImportNotResumable):
        import_resume(uploaded)


@pytest.mark.parametrize("status", [ImportStatus.FINISHED, ImportStatus.CANCELLED])
def test_an_import_that_ended_otherwise_cannot_be_resumed(uploaded, status):
    Import.objects.filter(pk=uploaded.pk).update(status=status, phase=ImportPhase.NONE)
    with pytest.raises(ImportNotResumable):
        import_resume(uploaded)


def test_a_pending_import_cannot_be_resumed(db):
    with pytest.raises(ImportNotResumable):
        import_resume(import_create())


def test_resume_waits_for_another_open_import(uploaded):
    Import.objects.filter(pk=uploaded.pk).update(status=ImportStatus.ERROR, phase=ImportPhase.NONE)
    import_create()
    with pytest.raises(AnotherImportOpen):
        import_resume(uploaded)
    uploaded.refresh_from_db()
    assert uploaded.status == ImportStatus.ERROR


# --- cancel ----------------------------------------------------------------------------------


def test_cancel_queues_the_report_rather_than_writing_it(source):
    job = import_cancel(import_uploaded(csv_bytes("identifier,file_path,title", "A,a,A")))
    assert (job.status, job.report.name) == (ImportStatus.CANCELLED, "")
    assert report_task_run(job).report


# --- delete ----------------------------------------------------------------------------------


def test_deleting_an_import_removes_a_report_file_a_write_left(cancelled):
    # given a report file a write left without recording it (its worker was killed mid-write)
    left = default_storage.save(f"reports/{cancelled.pk}/0a1b2c3d.csv", ContentFile(b"ident"))
    assert not Import.objects.get(pk=cancelled.pk).report
    # when
    import_delete(Import.objects.get(pk=cancelled.pk))
    # then
    assert stored_files("reports") == set()
    assert not default_storage.exists(left)


# --- purge -----------------------------------------------------------------------------------


def finished_import(source, identifier: str, ended_days_ago: int) -> Import:
    scans_in(source, f"{identifier}.png")
    job = import_run(csv_bytes(HEADER, f"{identifier},{identifier}.png,T"))
    ended = timezone.now() - timedelta(days=ended_days_ago)
    Import.objects.filter(pk=job.pk).update(finished_at=ended, created_at=ended)
    return job


def purge(*args: str) -> str:
    out = io.StringIO()
    call_command("purge_imports", *args, stdout=out)
    return out.getvalue()


def test_imports_past_retention_go_with_their_files_and_documents_stay(source, settings):
    settings.IMPORT_RETENTION_DAYS = 30
    old = finished_import(source, "old", ended_days_ago=31)
    recent = finished_import(source, "recent", ended_days_ago=29)
    old_files = (old.manifest.name, old.report.name)

    assert purge() == "Removed 1 import(s) that ended more than 30 day(s) ago.\n"

    assert list(Import.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not any(default_storage.exists(name) for name in old_files)
    assert default_storage.exists(recent.manifest.name)
    assert not Row.objects.filter(import_job_id=old.pk).exists()
    document = Document.objects.get(identifier="old")
    assert document.import_job_id is None
    assert default_storage.exists(document.file.name)


def test_days_can_be_given_and_open_imports_are_never_removed(source):
    finished_import(source, "a", ended_days_ago=3)
    pending = import_create()
    Import.objects.filter(pk=pending.pk).update(created_at=timezone.now() - timedelta(days=9))
    assert purge("--days", "2") == "Removed 1 import(s) that ended more than 2 day(s) ago.\n"
    assert list(Import.objects.values_list("pk", flat=True)) == [pending.pk]
