"""Documents in the admin: searched and filtered, read only, the file served from storage.

A document is written by imports alone: nobody adds, edits or deletes one here, so its file and
its checksum are always those the import verified.
"""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import FileResponse
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils.html import format_html

from .. import selectors
from ..models import DOCUMENT_METADATA_FIELDS, Document
from ..outputs import INLINE_CONTENT_TYPES, document_file_response
from .readonly import ReadOnlyAdmin


@admin.register(Document)
class DocumentAdmin(ReadOnlyAdmin):
    list_display = (
        "identifier",
        "title",
        "thumbnail",
        "content_type",
        "language",
        "size_words",
        "import_job",
        "updated_at",
    )
    list_filter = ("import_job", "content_type", "language")
    search_fields = ("identifier", "title")
    list_select_related = ("import_job",)
    fieldsets = (
        (
            None,
            {"fields": ("uuid", "identifier", *DOCUMENT_METADATA_FIELDS, "extra")},
        ),
        ("File", {"fields": ("file_link", "thumbnail", "content_type", "size", "sha256")}),
        ("Imports", {"fields": ("import_job", "created_by_import", "created_at", "updated_at")}),
    )
    readonly_fields = tuple(name for _, options in fieldsets for name in options["fields"])
    view_permissions = ("imports.view_document", "imports.run_import")

    def get_queryset(self, request):
        return selectors.documents_filter().select_related("import_job")

    @admin.display(description="file")
    def file_link(self, document: Document) -> str:
        return format_html('<a href="{}">{}</a>', _content_url(document), document.file_name)

    @admin.display(description="thumbnail")
    def thumbnail(self, document: Document) -> str:
        if document.content_type not in INLINE_CONTENT_TYPES:
            return ""
        return format_html(
            '<img class="document-thumbnail" src="{}?inline=1" alt="{}">',
            _content_url(document),
            document.identifier,
        )

    @admin.display(description="size", ordering="size")
    def size_words(self, document: Document) -> str:
        return filesizeformat(document.size)

    def get_urls(self):
        content = self.admin_site.admin_view(self.content_view)
        return [
            path("<uuid:uuid>/content/", content, name="imports_document_content"),
            *super().get_urls(),
        ]

    def content_view(self, request, uuid) -> FileResponse:
        """The stored file, as the API's DocumentContentApi serves it, with the session's login."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        document = selectors.document_get(uuid)
        return document_file_response(document, request.GET.get("inline") in ("1", "true"))


def _content_url(document: Document) -> str:
    return reverse("admin:imports_document_content", kwargs={"uuid": document.pk})
