"""Reads: an import (pending ones not uploaded to in time expire first), imports, documents.

Every read of imports goes through imports_expire_pending, so that a pending import nobody
uploaded to stops holding the one-open-import lock whoever looks next, and views need not
remember to do it.
"""

from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from .models import Batch, Document, Import, ImportEvent, ImportPhase, ImportStatus


def imports_expire_pending() -> int:
    """Cancel pending imports nobody uploaded to in time, so they stop holding the lock.

    It writes only when there is something to expire, so reads never wait for a writer.
    """
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.IMPORT_PENDING_TIMEOUT)
    expired = Import.objects.filter(status=ImportStatus.PENDING, created_at__lt=cutoff)
    if not expired.exists():
        return 0
    return expired.update(status=ImportStatus.CANCELLED, finished_at=now)


def import_get(uuid: UUID | str) -> Import:
    """The import, as it is now; Http404 when there is none."""
    imports_expire_pending()
    return get_object_or_404(Import, pk=uuid)


def imports_list() -> QuerySet[Import]:
    """Every import, newest first."""
    imports_expire_pending()
    return Import.objects.all()


def imports_without_report() -> list[UUID]:
    """Imports that ended in error, were cancelled or rolled back, had a manifest, and still lack
    a report (one that ended in error was rolled back before its report could be written)."""
    ended = (ImportStatus.ERROR, ImportStatus.CANCELLED, ImportStatus.ROLLED_BACK)
    return list(
        Import.objects.filter(status__in=ended)
        .filter(report="")
        .exclude(manifest="")
        .values_list("pk", flat=True)
    )


def batches_uncommitted(import_id: UUID | str) -> QuerySet[Batch]:
    return Batch.objects.filter(import_job_id=import_id, committed_at__isnull=True)


def import_callback_url(import_id: UUID | str) -> str:
    """The callback_url the import was created with, or ""."""
    return Import.objects.filter(pk=import_id).values_list("callback_url", flat=True).first() or ""


def batches_lost(silent_since: datetime) -> list[int]:
    """Batches of importing imports whose running attempt has not beaten since `silent_since`
    (an import rolling back runs none of them again)."""
    return list(
        Batch.objects.filter(
            import_job__status=ImportStatus.ACTIVE,
            import_job__phase=ImportPhase.IMPORTING,
            committed_at__isnull=True,
            heartbeat_at__lt=silent_since,
        ).values_list("pk", flat=True)
    )


def imports_stalled(silent_since: datetime) -> list[UUID]:
    """Active imports nothing has beaten for since `silent_since`, and not recovered since."""
    return list(
        Import.objects.filter(status=ImportStatus.ACTIVE, heartbeat_at__lt=silent_since)
        .filter(Q(recovered_at__isnull=True) | Q(recovered_at__lt=silent_since))
        .values_list("pk", flat=True)
    )


def import_events(job: Import, limit: int = 20) -> list[ImportEvent]:
    """The import's latest events, oldest first."""
    return list(reversed(job.events.order_by("-at", "-pk")[:limit]))


def documents_filter(*, identifier: str = "", import_id: UUID | None = None) -> QuerySet[Document]:
    """Documents, all or those with this exact identifier or last written by this import."""
    documents = Document.objects.all()
    if identifier:
        documents = documents.filter(identifier=identifier)
    if import_id:
        documents = documents.filter(import_job_id=import_id)
    return documents


def document_get(uuid: UUID | str) -> Document:
    """The document; Http404 when there is none."""
    return get_object_or_404(Document, pk=uuid)
