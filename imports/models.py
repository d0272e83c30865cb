"""Imports, their batches and staged rows, and the documents they create.

The database guards the invariants: one open import at a time (a partial unique constraint, so
concurrent creates cannot both win), counters that add up, one result per manifest row, a phase
only while active, and only the values the choices name.
"""

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import F, Q, Value
from django.utils import timezone


class ImportStatus(models.TextChoices):
    PENDING = "pending"
    ACTIVE = "active"
    FINISHED = "finished"
    ERROR = "error"
    CANCELLED = "cancelled"
    ROLLED_BACK = "rolled_back"


OPEN_STATUSES = (ImportStatus.PENDING, ImportStatus.ACTIVE)
ENDED_STATUSES = (
    ImportStatus.FINISHED,
    ImportStatus.ERROR,
    ImportStatus.CANCELLED,
    ImportStatus.ROLLED_BACK,
)


class ImportPhase(models.TextChoices):
    NONE = "", "none"
    COUNTING = "counting"
    IMPORTING = "importing"
    REPORTING = "reporting"
    # Undoing an ended import: it holds the one-open-import lock again meanwhile.
    ROLLING_BACK = "rolling_back"


class OnConflict(models.TextChoices):
    FAIL = "fail"
    SKIP = "skip"
    UPDATE = "update"


class CallbackState(models.TextChoices):
    NONE = "", "none"
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class RowStatus(models.TextChoices):
    IMPORTED = "imported"
    SKIPPED = "skipped"
    FAILED = "failed"
    NOT_PROCESSED = "not_processed"
    VALID = "valid"


class Import(models.Model):
    uuid = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(
        max_length=16, choices=ImportStatus.choices, default=ImportStatus.PENDING
    )
    phase = models.CharField(
        max_length=16, choices=ImportPhase.choices, default=ImportPhase.NONE, blank=True
    )
    dry_run = models.BooleanField(default=False)
    on_conflict = models.CharField(
        max_length=8, choices=OnConflict.choices, default=OnConflict.FAIL
    )
    batch_size = models.PositiveIntegerField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    manifest = models.FileField(upload_to="manifests/", max_length=255, blank=True)
    report = models.FileField(upload_to="reports/", max_length=255, blank=True)
    report_error = models.CharField(
        max_length=255,
        blank=True,
        help_text="Why the report of an ended import is not written yet; it is tried again.",
    )
    manifest_format = models.JSONField(
        default=dict, blank=True, help_text="Encoding, dialect and header of the manifest."
    )
    manifest_sha256 = models.CharField(
        max_length=64, blank=True, help_text="The SHA-256 of the manifest as uploaded, in hex."
    )

    total_rows = models.PositiveBigIntegerField(null=True, blank=True)
    processed_rows = models.PositiveBigIntegerField(default=0)
    imported_rows = models.PositiveBigIntegerField(default=0)
    skipped_rows = models.PositiveBigIntegerField(default=0)
    failed_rows = models.PositiveBigIntegerField(default=0)
    error = models.TextField(blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="When a batch last reported progress."
    )
    recovered_batches = models.PositiveIntegerField(
        default=0, help_text="How many times a lost batch was queued again by the recovery task."
    )
    recovered_at = models.DateTimeField(
        null=True, blank=True, help_text="When the recovery task last queued this import's work."
    )
    stalls = models.PositiveIntegerField(
        default=0,
        help_text="Times in a row the whole import stopped reporting and was queued again; "
        "back to 0 when a batch commits or the rows are counted.",
    )
    staged_cells_dropped = models.BooleanField(
        default=False, help_text="Whether the upkeep dropped the cells its rows no longer need."
    )

    callback_url = models.URLField(
        max_length=2000,
        blank=True,
        help_text="Where the status body is POSTed, signed, each time the import ends.",
    )
    callback_state = models.CharField(
        max_length=16, choices=CallbackState.choices, default=CallbackState.NONE, blank=True
    )
    callback_delivery = models.CharField(
        max_length=100,
        blank=True,
        help_text="The id of the last delivery (its webhook-id): a later end's replaces it, and "
        "the tries of an earlier one stop.",
    )
    callback_for = models.CharField(
        max_length=16, blank=True, help_text="The status whose end the last delivery announces."
    )
    callback_attempts = models.PositiveIntegerField(
        default=0, help_text="Tries of the last delivery so far."
    )
    callback_http_status = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="What the receiver answered to the last try, if it did."
    )
    callback_at = models.DateTimeField(null=True, blank=True, help_text="When it was last tried.")
    callback_error = models.CharField(
        max_length=255, blank=True, help_text="Why the last try failed, in plain words."
    )

    rollback_started_at = models.DateTimeField(null=True, blank=True)
    rollback_finished_at = models.DateTimeField(null=True, blank=True)
    rollback_rows = models.PositiveBigIntegerField(
        default=0, help_text="Imported rows the rollback has been through."
    )
    documents_deleted = models.PositiveBigIntegerField(
        default=0, help_text="Documents this import created that its rollback deleted."
    )
    documents_kept = models.PositiveBigIntegerField(
        default=0,
        help_text="Documents its rollback kept: changed since by a later import, or only "
        "updated by this one.",
    )

    class Meta:
        ordering = ["-created_at"]
        permissions = [("run_import", "Can run imports")]
        constraints = [
            models.UniqueConstraint(
                Value(1), condition=Q(status__in=OPEN_STATUSES), name="one_open_import"
            ),
            models.CheckConstraint(
                condition=Q(
                    processed_rows=F("imported_rows") + F("skipped_rows") + F("failed_rows")
                ),
                name="processed_rows_add_up",
            ),
            models.CheckConstraint(
                condition=Q(total_rows__isnull=True) | Q(processed_rows__lte=F("total_rows")),
                name="processed_rows_within_total",
            ),
            models.CheckConstraint(
                condition=Q(manifest_sha256="") | Q(manifest_sha256__regex=r"^[0-9a-f]{64}$"),
                name="manifest_sha256_is_hex",
            ),
            models.CheckConstraint(
                condition=Q(report_error="") | Q(report=""), name="report_error_only_without_report"
            ),
            models.CheckConstraint(
                condition=Q(status__in=ImportStatus.values), name="import_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(phase__in=ImportPhase.values), name="import_phase_valid"
            ),
            models.CheckConstraint(
                condition=Q(on_conflict__in=OnConflict.values), name="import_on_conflict_valid"
            ),
            # An import is at a step exactly while it is active: one waiting for its manifest, or
            # ended, is at none. Which steps there are is import_phase_valid's to say.
            models.CheckConstraint(
                condition=(Q(status=ImportStatus.ACTIVE) & ~Q(phase=ImportPhase.NONE))
                | (~Q(status=ImportStatus.ACTIVE) & Q(phase=ImportPhase.NONE)),
                name="import_phase_matches_status",
            ),
            models.CheckConstraint(condition=Q(batch_size__gte=1), name="batch_size_positive"),
            models.CheckConstraint(
                condition=Q(callback_state__in=CallbackState.values),
                name="import_callback_state_valid",
            ),
            models.CheckConstraint(
                condition=Q(callback_url="") | Q(callback_url__regex=r"^https?://"),
                name="import_callback_url_is_http",
            ),
            # Rolled back exactly when its rollback finished, and finished only once started.
            models.CheckConstraint(
                condition=Q(status=ImportStatus.ROLLED_BACK, rollback_finished_at__isnull=False)
                | (~Q(status=ImportStatus.ROLLED_BACK) & Q(rollback_finished_at__isnull=True)),
                name="import_rolled_back_when_finished",
            ),
            models.CheckConstraint(
                condition=Q(rollback_finished_at__isnull=True)
                | Q(rollback_started_at__isnull=False),
                name="import_rollback_started_before_finished",
            ),
            models.CheckConstraint(
                condition=Q(rollback_rows__lte=F("imported_rows")),
                name="rollback_rows_within_imported",
            ),
        ]

    def __str__(self) -> str:
        return f"import {self.uuid} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def progress_percent(self) -> float:
        if not self.total_rows:
            return 100.0 if self.total_rows == 0 or self.status == ImportStatus.FINISHED else 0.0
        return round(100 * self.processed_rows / self.total_rows, 1)

    def rows_per_second(self, now: datetime) -> float | None:
        return _per_second(self.processed_rows, self.started_at, self.finished_at, now)

    def is_stale(self, now: datetime) -> bool:
        """Active, but no batch has reported for IMPORT_STALE_AFTER: its work was lost."""
        return (
            self.status == ImportStatus.ACTIVE
            and self.heartbeat_at is not None
            and now - self.heartbeat_at > timedelta(seconds=settings.IMPORT_STALE_AFTER)
        )

    def eta_seconds(self, now: datetime) -> float | None:
        rate = self.rows_per_second(now)
        if self.status != ImportStatus.ACTIVE or not rate or self.total_rows is None:
            return None
        return round((self.total_rows - self.processed_rows) / rate, 1)

    def rollback_progress_percent(self) -> float:
        """The share of its imported rows the rollback has gone through; a dry run's imported
        rows are its valid ones, which it never goes through: it is rolled back at once."""
        if self.status == ImportStatus.ROLLED_BACK or not self.imported_rows:
            return 100.0
        return round(100 * self.rollback_rows / self.imported_rows, 1)

    def rollback_rows_per_second(self, now: datetime) -> float | None:
        return _per_second(
            self.rollback_rows, self.rollback_started_at, self.rollback_finished_at, now
        )

    def rollback_eta_seconds(self, now: datetime) -> float | None:
        rate = self.rollback_rows_per_second(now)
        if self.phase != ImportPhase.ROLLING_BACK or not rate:
            return None
        return round((self.imported_rows - self.rollback_rows) / rate, 1)


def _per_second(
    done: int, started: datetime | None, ended: datetime | None, now: datetime
) -> float | None:
    """Rows per second from `started` to `ended` (to `now` while not ended); None before the
    first row or when no time has passed."""
    if not started or not done:
        return None
    elapsed_s = ((ended or now) - started).total_seconds()
    return round(done / elapsed_s, 1) if elapsed_s > 0 else None


class Batch(models.Model):
    """A slice of staged rows that one task imports and commits in one transaction."""

    import_job = models.ForeignKey(Import, related_name="batches", on_delete=models.CASCADE)
    number = models.PositiveIntegerField()
    first_row = models.PositiveBigIntegerField()
    last_row = models.PositiveBigIntegerField()
    committed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(
        default=0,
        help_text="How many times a worker started this batch; each copies its files "
        "into a folder of its own.",
    )
    committed_attempt = models.PositiveIntegerField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="While an attempt runs, when it last said it is alive; empty when none runs.",
    )
    worker = models.CharField(
        max_length=255, blank=True, help_text="The Celery worker that started the last attempt."
    )
    requeues = models.PositiveIntegerField(
        default=0, help_text="How many times an attempt at it was lost and it was queued again."
    )
    rolled_back_at = models.DateTimeField(
        null=True, blank=True, help_text="When the import's rollback went through its rows."
    )
    duration_seconds = models.FloatField(
        null=True,
        blank=True,
        help_text="How long the attempt that committed it took, from its start to its commit.",
    )
    created_at = models.DateTimeField(
        default=timezone.now, help_text="When the count made it, ready to be queued."
    )

    class Meta:
        ordering = ["import_job", "number"]
        constraints = [
            models.UniqueConstraint(fields=["import_job", "number"], name="one_batch_per_number"),
            models.CheckConstraint(
                condition=Q(first_row__lte=F("last_row")), name="batch_rows_ordered"
            ),
            models.CheckConstraint(
                condition=Q(committed_at__isnull=True, committed_attempt__isnull=True)
                | Q(committed_attempt__gte=1, committed_attempt__lte=F("attempts")),
                name="batch_committed_by_an_attempt",
            ),
            models.CheckConstraint(
                condition=Q(rolled_back_at__isnull=True) | Q(committed_at__isnull=False),
                name="batch_rolled_back_once_committed",
            ),
            # Batches committed before it was recorded have none.
            models.CheckConstraint(
                condition=Q(duration_seconds__isnull=True)
                | Q(duration_seconds__gte=0, committed_at__isnull=False),
                name="batch_duration_once_committed",
            ),
        ]

    def __str__(self) -> str:
        return f"batch {self.number} of import {self.import_job_id}"


class Row(models.Model):
    """One manifest row, staged so any worker can run its batch, and its outcome once committed."""

    import_job = models.ForeignKey(Import, related_name="rows", on_delete=models.CASCADE)
    number = models.PositiveBigIntegerField(help_text="1 for the first row after the header.")
    identifier = models.CharField(max_length=255, blank=True)
    cells = models.JSONField()
    status = models.CharField(max_length=16, choices=RowStatus.choices, blank=True)
    comment = models.TextField(blank=True)

    class Meta:
        ordering = ["import_job", "number"]
        constraints = [
            models.UniqueConstraint(fields=["import_job", "number"], name="one_row_per_number"),
            # "" until its batch judges it.
            models.CheckConstraint(
                condition=Q(status__in=[*RowStatus.values, ""]), name="row_status_valid"
            ),
        ]
        indexes = [models.Index(fields=["import_job", "identifier"], name="row_identifier")]

    def __str__(self) -> str:
        return f"row {self.number} of import {self.import_job_id}"


# A row's columns in the order staging and a batch's results write them (imports.inserts).
ROW_COLUMNS = ("import_job", "number", "identifier", "cells", "status", "comment")


class EventKind(models.TextChoices):
    BATCH_LOST = "batch_lost"
    IMPORT_STALLED = "import_stalled"
    GAVE_UP = "gave_up"


class ImportEvent(models.Model):
    """Something the service did by itself to an import (recovery), said for its operator."""

    import_job = models.ForeignKey(Import, related_name="events", on_delete=models.CASCADE)
    at = models.DateTimeField()
    kind = models.CharField(max_length=32, choices=EventKind.choices)
    detail = models.CharField(max_length=500)

    class Meta:
        ordering = ["import_job", "at", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=EventKind.values), name="import_event_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} of import {self.import_job_id} at {self.at}"


class RollbackAction(models.TextChoices):
    DELETED = "deleted"
    KEPT = "kept"


class KeptBecause(models.TextChoices):
    NOT_KEPT = "", "not kept"
    CHANGED_SINCE = "changed_since", "changed since by a later import"
    ONLY_UPDATED = "only_updated", "only updated by this import, not created"


class RollbackOutcome(models.Model):
    """What the rollback of an import did with the document of one of its imported rows."""

    import_job = models.ForeignKey(
        Import, related_name="rollback_outcomes", on_delete=models.CASCADE
    )
    row_number = models.PositiveBigIntegerField()
    identifier = models.CharField(max_length=255)
    document_uuid = models.UUIDField(help_text="The document's uuid, kept after it is deleted.")
    action = models.CharField(max_length=8, choices=RollbackAction.choices)
    kept_because = models.CharField(
        max_length=16, choices=KeptBecause.choices, default=KeptBecause.NOT_KEPT, blank=True
    )

    class Meta:
        ordering = ["import_job", "row_number"]
        constraints = [
            models.UniqueConstraint(
                fields=["import_job", "row_number"], name="one_rollback_outcome_per_row"
            ),
            # Kept exactly when there is a reason to keep it.
            models.CheckConstraint(
                condition=Q(action=RollbackAction.DELETED, kept_because="")
                | (
                    Q(action=RollbackAction.KEPT, kept_because__in=KeptBecause.values)
                    & ~Q(kept_because="")
                ),
                name="rollback_outcome_kept_for_a_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.identifier} (rollback of import {self.import_job_id})"


class Confidentiality(models.TextChoices):
    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    SECRET = "secret"


# What a manifest row says of its document besides its identifier and file, in the API's order.
DOCUMENT_METADATA_FIELDS = (
    "title",
    "description",
    "author",
    "created_date",
    "language",
    "confidentiality",
)


class Document(models.Model):
    uuid = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    identifier = models.CharField(max_length=255, unique=True)
    title = models.CharField(max_length=1000)
    description = models.TextField(blank=True)
    author = models.CharField(max_length=255, blank=True)
    created_date = models.DateField(null=True, blank=True)
    language = models.CharField(max_length=3, blank=True)
    confidentiality = models.CharField(max_length=16, choices=Confidentiality.choices, blank=True)
    content_type = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField(help_text="Bytes.")
    sha256 = models.CharField(max_length=64)
    file = models.FileField(max_length=500)
    file_name = models.CharField(max_length=500, help_text="The source file's name.")
    extra = models.JSONField(default=dict, blank=True)
    import_job = models.ForeignKey(
        Import,
        null=True,
        blank=True,
        related_name="documents",
        on_delete=models.SET_NULL,
        help_text="The import that last wrote this document.",
    )
    created_by_import = models.ForeignKey(
        Import,
        null=True,
        blank=True,
        related_name="documents_created",
        on_delete=models.SET_NULL,
        help_text="The import that created this document: only its rollback may delete it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "identifier"]
        constraints = [
            models.CheckConstraint(
                condition=Q(sha256__regex=r"^[0-9a-f]{64}$"), name="sha256_is_hex"
            ),
            models.CheckConstraint(
                condition=Q(confidentiality__in=[*Confidentiality.values, ""]),
                name="document_confidentiality_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.identifier
