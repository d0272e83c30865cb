"""The import's status body: what the API answers, a callback posts and the commands show.

It is shaped here, below the API and the tasks, so that one body serves all three. Its links are
absolute, made from the `base_url` in the serializer's context: the URL a request came by, or
settings.PUBLIC_URL where there is no request (a callback, a command).
"""

from django.conf import settings
from django.http import FileResponse, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from .models import Document, Import, ImportEvent, ImportPhase, ImportStatus
from .reports import failed_rows_manifest, report_content_type
from .rollbacks import rollback_report_lines
from .selectors import import_events


def import_link(base_url: str, name: str, uuid) -> str:
    """The absolute URL of one of an import's endpoints."""
    return base_url.rstrip("/") + reverse(name, kwargs={"uuid": uuid})


class ImportEventOutput(serializers.ModelSerializer):
    class Meta:
        model = ImportEvent
        fields = ["at", "kind", "detail"]
        read_only_fields = fields


class CallbackOutput(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=["pending", "delivered", "failed"],
        source="callback_state",
        help_text="`pending` while tries remain, `delivered` once the receiver answered 2xx, "
        "`failed` once every try failed or the receiver refused it for good.",
    )
    for_status = serializers.CharField(
        source="callback_for", help_text="The end the last delivery announces."
    )
    attempts = serializers.IntegerField(source="callback_attempts")
    last_http_status = serializers.IntegerField(source="callback_http_status", allow_null=True)
    last_attempt_at = serializers.DateTimeField(source="callback_at", allow_null=True)
    error = serializers.CharField(
        source="callback_error", help_text="Why the last try failed, in plain words."
    )


class RollbackOutput(serializers.Serializer):
    state = serializers.SerializerMethodField()
    started_at = serializers.DateTimeField(source="rollback_started_at")
    finished_at = serializers.DateTimeField(source="rollback_finished_at", allow_null=True)
    rows_done = serializers.IntegerField(
        source="rollback_rows", help_text="Imported rows the rollback has been through."
    )
    rows_total = serializers.IntegerField(
        source="imported_rows", help_text="The import's imported rows: every one is gone through."
    )
    progress = serializers.SerializerMethodField()
    documents_deleted = serializers.IntegerField()
    documents_kept = serializers.IntegerField()
    report_url = serializers.SerializerMethodField()

    @extend_schema_field(
        serializers.ChoiceField(
            choices=["rolling_back", "rolled_back", "failed"],
            help_text="`failed`: the rollback stopped (the import's `error` says why); "
            "rolling it back again goes on from where it stopped.",
        )
    )
    def get_state(self, job: Import) -> str:
        if job.status == ImportStatus.ROLLED_BACK:
            return "rolled_back"
        if job.phase == ImportPhase.ROLLING_BACK:
            return "rolling_back"
        return "failed"

    @extend_schema_field(serializers.FloatField(help_text="0 to 100."))
    def get_progress(self, job: Import) -> float:
        return job.rollback_progress_percent()

    @extend_schema_field(
        serializers.URLField(
            help_text="CSV of what the rollback did with each imported row's document: deleted, "
            "or kept and why."
        )
    )
    def get_report_url(self, job: Import) -> str:
        return import_link(self.context["base_url"], "import-rollback-report", job.uuid)


class ImportOutput(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    stale = serializers.SerializerMethodField()
    events = serializers.SerializerMethodField()
    callback = serializers.SerializerMethodField()
    rollback = serializers.SerializerMethodField()
    rows_per_second = serializers.SerializerMethodField()
    eta_seconds = serializers.SerializerMethodField()
    upload_url = serializers.SerializerMethodField()
    status_url = serializers.SerializerMethodField()
    report_url = serializers.SerializerMethodField()

    class Meta:
        model = Import
        fields = [
            "uuid",
            "status",
            "phase",
            "dry_run",
            "on_conflict",
            "batch_size",
            "total_rows",
            "processed_rows",
            "imported_rows",
            "skipped_rows",
            "failed_rows",
            "progress",
            "stale",
            "recovered_batches",
            "events",
            "callback",
            "rollback",
            "rows_per_second",
            "eta_seconds",
            "created_at",
            "started_at",
            "finished_at",
            "error",
            "manifest_sha256",
            "report_error",
            "upload_url",
            "status_url",
            "report_url",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.FloatField(help_text="0 to 100."))
    def get_progress(self, job: Import) -> float:
        return job.progress_percent()

    @extend_schema_field(
        serializers.BooleanField(
            help_text="Active, but nothing has reported for IMPORT_STALE_AFTER seconds: no "
            "worker is running it (lost work is queued again by itself once a worker runs)."
        )
    )
    def get_stale(self, job: Import) -> bool:
        return job.is_stale(timezone.now())

    @extend_schema_field(
        ImportEventOutput(
            many=True,
            help_text="The latest things the service did by itself to this import (work found "
            "lost and queued again), oldest first; at most 20.",
        )
    )
    def get_events(self, job: Import) -> list[dict]:
        return ImportEventOutput(import_events(job), many=True).data

    @extend_schema_field(
        CallbackOutput(
            allow_null=True,
            help_text="The last delivery of the callback_url given at create; null without one.",
        )
    )
    def get_callback(self, job: Import) -> dict | None:
        if not job.callback_url or not job.callback_state:
            return None
        return CallbackOutput(job).data

    @extend_schema_field(
        RollbackOutput(allow_null=True, help_text="The import's rollback; null until one starts.")
    )
    def get_rollback(self, job: Import) -> dict | None:
        if job.rollback_started_at is None:
            return None
        return RollbackOutput(job, context=self.context).data

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_rows_per_second(self, job: Import) -> float | None:
        return job.rows_per_second(timezone.now())

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_eta_seconds(self, job: Import) -> float | None:
        return job.eta_seconds(timezone.now())

    def get_upload_url(self, job: Import) -> str:
        return import_link(self.context["base_url"], "import-upload", job.uuid)

    def get_status_url(self, job: Import) -> str:
        return import_link(self.context["base_url"], "import-status", job.uuid)

    def get_report_url(self, job: Import) -> str:
        return import_link(self.context["base_url"], "import-report", job.uuid)


def import_body(job: Import, base_url: str | None = None) -> dict:
    """The import's status body, its links made from `base_url` (by default PUBLIC_URL)."""
    return ImportOutput(job, context={"base_url": base_url or settings.PUBLIC_URL}).data


def import_body_json(job: Import) -> bytes:
    """The status body as the API sends it, as bytes to post and sign."""
    return JSONRenderer().render(import_body(job))


# Types a browser shows without running anything; every other file is served as an attachment.
INLINE_CONTENT_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp")


def document_file_response(document: Document, inline: bool = False) -> FileResponse:
    """The document's stored file, for the API and the admin: shown in the browser only when
    asked and a raster image, downloaded otherwise."""
    response = FileResponse(
        document.file.open("rb"),
        as_attachment=not (inline and document.content_type in INLINE_CONTENT_TYPES),
        content_type=document.content_type,
        filename=document.file_name,
    )
    # An archive's PDF or HTML must never run as a page of the service's origin.
    response["Content-Security-Policy"] = "sandbox"
    return response


def report_response(job: Import, failed_only: bool = False) -> FileResponse | StreamingHttpResponse:
    """The import's report to download, for the API and the admin; or only its failed rows, as a
    manifest to fix and upload again. Raises the error that says why there is none yet."""
    content_type = report_content_type(job)
    if failed_only:
        return _download(failed_rows_manifest(job), content_type, f"import-{job.uuid}-failed.csv")
    return FileResponse(
        job.report.open("rb"),
        as_attachment=True,
        filename=f"import-{job.uuid}-report.csv",
        content_type=content_type,
    )


def rollback_report_response(job: Import) -> StreamingHttpResponse:
    """The rollback's report to download (so far, while it runs); raises RollbackNotStarted."""
    lines = rollback_report_lines(job)
    return _download(lines, "text/csv; charset=utf-8", f"import-{job.uuid}-rollback.csv")


def _download(lines, content_type: str, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(lines, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
