"""What the API reads and writes; no logic beyond shaping data."""

from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import DOCUMENT_METADATA_FIELDS, Document, Import, ImportEvent, OnConflict
from ..selectors import import_events


class ErrorOutput(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()


class ImportCreateInput(serializers.Serializer):
    dry_run = serializers.BooleanField(
        default=False,
        help_text="Check every row as a real run would (files read, checksums verified, "
        "conflicts found), reporting each `valid` or `failed`, and write nothing.",
    )
    on_conflict = serializers.ChoiceField(
        choices=OnConflict.choices,
        default=OnConflict.FAIL,
        help_text="What a row whose identifier is already a document does, unless it is "
        "identical (then it is `skipped`): `fail` the row, `skip` it, or `update` the document.",
    )
    batch_size = serializers.IntegerField(min_value=1, max_value=10_000, required=False)
    callback_url = serializers.URLField(
        required=False, help_text="Not supported yet: refused with 400 option_not_supported."
    )

    def validate(self, attrs: dict) -> dict:
        # A misspelt option must not be silently ignored on an import of a million rows.
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: "Unknown option." for name in unknown})
        return attrs


class ManifestUploadInput(serializers.Serializer):
    file = serializers.FileField()


def _absolute(request, name: str, uuid) -> str:
    return request.build_absolute_uri(reverse(name, kwargs={"uuid": uuid}))


class ImportEventOutput(serializers.ModelSerializer):
    class Meta:
        model = ImportEvent
        fields = ["at", "kind", "detail"]
        read_only_fields = fields


class ImportOutput(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    stale = serializers.SerializerMethodField()
    events = serializers.SerializerMethodField()
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

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_rows_per_second(self, job: Import) -> float | None:
        return job.rows_per_second(timezone.now())

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_eta_seconds(self, job: Import) -> float | None:
        return job.eta_seconds(timezone.now())

    def get_upload_url(self, job: Import) -> str:
        return _absolute(self.context["request"], "import-upload", job.uuid)

    def get_status_url(self, job: Import) -> str:
        return _absolute(self.context["request"], "import-status", job.uuid)

    def get_report_url(self, job: Import) -> str:
        return _absolute(self.context["request"], "import-report", job.uuid)


class DocumentOutput(serializers.ModelSerializer):
    content_url = serializers.SerializerMethodField()

    class Meta:
        model = Document
        fields = [
            "uuid",
            "identifier",
            *DOCUMENT_METADATA_FIELDS,
            "content_type",
            "size",
            "sha256",
            "file_name",
            "extra",
            "created_at",
            "updated_at",
            "content_url",
        ]
        read_only_fields = fields

    def get_content_url(self, document: Document) -> str:
        return _absolute(self.context["request"], "document-content", document.uuid)

    def get_fields(self):
        # `import` is a Python keyword, so it cannot be declared as a class attribute.
        fields = super().get_fields()
        fields["import"] = serializers.UUIDField(
            source="import_job_id",
            allow_null=True,
            read_only=True,
            help_text="The import that last wrote this document.",
        )
        return fields
