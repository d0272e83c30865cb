"""What the API reads and writes; no logic beyond shaping data."""

from django.urls import reverse
from rest_framework import serializers

from ..models import DOCUMENT_METADATA_FIELDS, Document


class ErrorOutput(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()


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
