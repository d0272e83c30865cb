"""Retention: `purge_imports` removes ended imports past IMPORT_RETENTION_DAYS; documents stay."""

import io
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone

from imports.lifecycle import import_create
from imports.models import Document, Import, Row

from .conftest import csv_bytes, png_bytes, run_inline
from .factories import upload

pytestmark = pytest.mark.django_db


def finished_import(source, identifier: str, ended_days_ago: int) -> Import:
    (source / f"{identifier}.png").write_bytes(png_bytes(identifier))
    job = import_create()
    manifest = csv_bytes("identifier,file_path,title", f"{identifier},{identifier}.png,T")
    job = run_inline(upload(job, io.BytesIO(manifest)))
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
