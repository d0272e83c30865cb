"""Reads, one small test each: the API tests (tests/api/) cover them through the endpoints."""

import uuid
from datetime import timedelta

import pytest
from django.http import Http404
from django.utils import timezone

from imports.lifecycle import import_cancel, import_create
from imports.models import Document, Import, ImportStatus
from imports.selectors import (
    batches_uncommitted,
    document_get,
    documents_filter,
    import_get,
    imports_expire_pending,
    imports_list,
    imports_without_report,
)

from .factories import csv_bytes, import_cancelled, import_run, import_staged, scans_in

pytestmark = pytest.mark.django_db

HEADER = "identifier,file_path,title"


def created_ago(job: Import, seconds: int) -> None:
    Import.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(seconds=seconds))


def test_a_pending_import_past_the_timeout_is_expired_and_a_recent_one_is_not(settings):
    settings.IMPORT_PENDING_TIMEOUT = 60
    old = import_cancel(import_create())
    created_ago(old, 61)  # already cancelled: not pending, not expired again
    pending = import_create()
    assert imports_expire_pending() == 0
    created_ago(pending, 61)
    assert imports_expire_pending() == 1
    assert Import.objects.get(pk=pending.pk).status == ImportStatus.CANCELLED


def test_import_get_expires_first_and_is_404_for_an_unknown_import(settings):
    settings.IMPORT_PENDING_TIMEOUT = 60
    pending = import_create()
    created_ago(pending, 61)
    assert import_get(pending.pk).status == ImportStatus.CANCELLED
    with pytest.raises(Http404):
        import_get(uuid.uuid4())


def test_imports_list_is_newest_first():
    older = import_cancel(import_create())
    created_ago(older, 5)
    newer = import_create()
    assert list(imports_list()) == [newer, older]


def test_imports_without_report_are_those_ended_with_a_manifest_and_no_report(source):
    waiting = import_cancelled(csv_bytes(HEADER, "A,a,A"))
    import_cancel(import_create())  # no manifest: never has a report
    assert imports_without_report() == [waiting.pk]


def test_batches_uncommitted_are_those_not_yet_run(source):
    scans_in(source, "a.png", "b.png")
    job = import_staged(csv_bytes(HEADER, "A,a.png,A", "B,b.png,B"), batch_size=1)
    assert batches_uncommitted(job.pk).count() == 2


def test_documents_filter_by_identifier_and_import(source):
    scans_in(source, "a.png", "b.png")
    first = import_run(csv_bytes(HEADER, "A,a.png,A"))
    second = import_run(csv_bytes(HEADER, "B,b.png,B"))
    assert documents_filter().count() == 2
    assert [d.identifier for d in documents_filter(identifier="B")] == ["B"]
    assert [d.identifier for d in documents_filter(import_id=first.pk)] == ["A"]
    assert not documents_filter(identifier="A", import_id=second.pk).exists()


def test_document_get_is_the_document_or_404(source):
    scans_in(source, "a.png")
    import_run(csv_bytes(HEADER, "A,a.png,A"))
    document = Document.objects.get()
    assert document_get(document.pk) == document
    with pytest.raises(Http404):
        document_get(uuid.uuid4())
