"""The options an import is created with, checked the same way wherever it is started: the API's
create endpoint and the admin's start page (the command takes them as arguments)."""

from rest_framework import serializers

from .models import OnConflict


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
