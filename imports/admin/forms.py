"""The start page's form: the create options of the API's ImportCreateInput, and the manifest.

The fields are declared here for the page (labels, widgets, help), field for field with
ImportCreateInput, which tests/test_admin.py compares; the options are then checked by
ImportCreateInput itself, so that the rules are the API's alone.
"""

from django import forms

from ..inputs import ImportCreateInput
from ..models import OnConflict

BATCH_SIZE_MAX = 10_000


class ImportStartForm(forms.Form):
    manifest = forms.FileField(
        help_text="The manifest CSV: one row per document, with identifier, file_path and title."
    )
    dry_run = forms.BooleanField(
        required=False,
        help_text="Check every row as a real run would, reporting each valid or failed, and "
        "write nothing.",
    )
    on_conflict = forms.ChoiceField(
        required=False,
        choices=OnConflict.choices,
        initial=OnConflict.FAIL,
        help_text="What a row whose identifier is already a document does, unless it is "
        "identical (then it is skipped): fail the row, skip it, or update the document.",
    )
    batch_size = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=BATCH_SIZE_MAX,
        help_text="Rows per batch; empty for the service's default.",
    )
    callback_url = forms.URLField(
        required=False,
        max_length=2000,
        assume_scheme="https",
        help_text="Where to POST the status body, signed, each time the import ends. Its host "
        "must be in IMPORT_CALLBACK_ALLOWED_HOSTS.",
    )

    def clean(self) -> dict:
        cleaned = super().clean()
        # An option left empty is not given, so that it has the API's default.
        given = {name: value for name, value in cleaned.items() if name != "manifest" and value}
        options = ImportCreateInput(data=given)
        if options.is_valid():
            self.options = dict(options.validated_data)
        for name, problems in options.errors.items():
            self.add_error(name if name in self.fields else None, problems)
        return cleaned

    def create_options(self) -> dict:
        """The options as ImportCreateInput validated them, for lifecycle.import_create."""
        return self.options
