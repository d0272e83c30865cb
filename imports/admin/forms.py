"""The start page's form: the create options of the API's ImportCreateInput, and the manifest.

The admin may not import imports.api (the layers in pyproject.toml), so the options are declared
here field for field with the API's: the same names, choices, bounds and defaults.
tests/test_admin.py compares the two, so that an option added to one and not the other fails.
"""

from django import forms

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

    def create_options(self) -> dict:
        """The validated options, as lifecycle.import_create takes them; one left empty is not
        given, so that it has the default the API's has."""
        options = {name: value for name, value in self.cleaned_data.items() if value}
        options.pop("manifest")
        return options
