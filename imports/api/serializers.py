"""What the API reads and writes; no logic beyond shaping data."""

from django.urls import reverse
from rest_framework import serializers

from ..models import DOCUMENT_METADATA_FIELDS, Document, OnConflict


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
        required=False,
        max_length=2000,
        help_text="Where to POST the status body, signed (Standard Webhooks: `webhook-id`, "
        "`webhook-timestamp`, `webhook-signature`), each time the import ends: finished, "
        "error, cancelled, rolled back. Its host must be in IMPORT_CALLBACK_ALLOWED_HOSTS.",
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
