"""Imports in the admin: the list with progress, a read-only page that follows the import by
itself, cancel / resume / roll back, the start page, and the report downloads.

Every change goes through imports.lifecycle, as the API's does; a refusal is its error's plain
`detail`, shown as a message. Nothing here writes an import's fields: the model form is never
saved (no change or add permission is granted to anyone).
"""

from collections.abc import Callable
from functools import partial

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpResponseBase, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from .. import lifecycle, reports, selectors
from ..errors import BulkImportError, ManifestTooLarge
from ..models import Import, ImportPhase, ImportStatus
from ..outputs import import_body, report_response, rollback_report_response
from .forms import ImportStartForm
from .readonly import ReadOnlyAdmin

# The changes a person can ask for, with the lifecycle function the API's endpoint calls and
# what is said once it is done.
CHANGES: dict[str, tuple[Callable[[Import], object], str, str]] = {
    "cancel": (lifecycle.import_cancel, "Cancel", "cancelled"),
    "resume": (lifecycle.import_resume, "Resume", "resumed"),
    "rollback": (lifecycle.import_rollback, "Roll back", "rollback started"),
}


def _upload(manifest: UploadedFile) -> lifecycle.Upload:
    if manifest.size > settings.IMPORT_MAX_MANIFEST_BYTES:
        raise ManifestTooLarge(settings.IMPORT_MAX_MANIFEST_BYTES)
    return lifecycle.Upload(manifest=manifest)


def changes_offered(job: Import) -> list[tuple[str, str]]:
    """The (change, label) buttons worth showing on the import's page; lifecycle still decides."""
    now = timezone.now()
    rolling_back = job.phase == ImportPhase.ROLLING_BACK
    offered = {
        "cancel": job.is_open and not rolling_back,
        "resume": job.rollback_started_at is None
        and (job.status == ImportStatus.ERROR or job.is_stale(now)),
        "rollback": job.status
        in (ImportStatus.FINISHED, ImportStatus.ERROR, ImportStatus.CANCELLED),
    }
    return [(change, CHANGES[change][1]) for change, shown in offered.items() if shown]


def duration_words(seconds: float | None) -> str | None:
    """`75` -> "1 min 15 s"; None stays None (the admin shows its empty value)."""
    if seconds is None:
        return None
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


@admin.register(Import)
class ImportAdmin(ReadOnlyAdmin):
    list_display = (
        "short_uuid",
        "status",
        "phase",
        "progress_bar",
        "rows",
        "outcomes",
        "rows_per_second",
        "eta",
        "stale",
        "recovered",
        "created_by",
        "created_at",
    )
    list_display_links = ("short_uuid",)
    list_filter = ("status",)
    list_select_related = ("created_by",)
    actions = ("cancel", "resume", "rollback", "delete")
    # Its status, progress, counts, rate and ETA are in the panel above the fields, which
    # static/imports/progress.js keeps up to date (templates/admin/imports/import/).
    fieldsets = (
        (None, {"fields": ("uuid", "created_by", "dry_run", "on_conflict", "batch_size", "error")}),
        (
            "Times",
            {"fields": ("created_at", "started_at", "finished_at", "heartbeat_at")},
        ),
        ("Report", {"fields": ("downloads", "report_error", "manifest_sha256")}),
        (
            "Rollback",
            {
                "fields": (
                    "rollback_started_at",
                    "rollback_finished_at",
                    "rollback_rows",
                    "documents_deleted",
                    "documents_kept",
                )
            },
        ),
        (
            "Callback",
            {
                "classes": ("collapse",),
                "fields": (
                    "callback_url",
                    "callback_state",
                    "callback_attempts",
                    "callback_http_status",
                    "callback_at",
                    "callback_error",
                ),
            },
        ),
        ("Recovery", {"fields": ("recovered_batches", "recent_events")}),
    )
    # Everything, so that no field is ever an input, whoever looks.
    readonly_fields = tuple(name for _, options in fieldsets for name in options["fields"])
    change_form_template = "admin/imports/import/change_form.html"
    change_list_template = "admin/imports/import/change_list.html"
    # Reading needs view_import (or run_import), as the API; every change needs run_import, and
    # goes through lifecycle (the start page starts: nobody adds through the model form).
    view_permissions = ("imports.view_import", "imports.run_import")

    def has_run_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("imports.run_import")

    def get_queryset(self, request):
        return selectors.imports_list().select_related("created_by")

    def changelist_view(self, request, extra_context=None):
        context = {**(extra_context or {}), "can_start": self.has_run_permission(request)}
        return super().changelist_view(request, context)

    # The list's columns and the page's read-only fields.

    @admin.display(description="import", ordering="created_at")
    def short_uuid(self, job: Import) -> str:
        return str(job.uuid)[:8]

    @admin.display(description="progress")
    def progress_bar(self, job: Import) -> str:
        percent = job.progress_percent()
        return format_html(
            '<progress class="import-bar" value="{}" max="100"></progress> {} %', percent, percent
        )

    @admin.display(description="rows")
    def rows(self, job: Import) -> str:
        total = "?" if job.total_rows is None else job.total_rows
        return f"{job.processed_rows} of {total}"

    # Three figures in one narrow column: the list stays within a laptop's screen.
    @admin.display(description="imported / skipped / failed")
    def outcomes(self, job: Import) -> str:
        return f"{job.imported_rows} / {job.skipped_rows} / {job.failed_rows}"

    @admin.display(description="rows/s")
    def rows_per_second(self, job: Import) -> float | None:
        return job.rows_per_second(timezone.now())

    @admin.display(description="ETA")
    def eta(self, job: Import) -> str | None:
        return duration_words(job.eta_seconds(timezone.now()))

    @admin.display(boolean=True, description="stale")
    def stale(self, job: Import) -> bool:
        return job.is_stale(timezone.now())

    @admin.display(boolean=True, description="recovered")
    def recovered(self, job: Import) -> bool:
        return job.recovered_batches > 0

    @admin.display(description="downloads")
    def downloads(self, job: Import) -> str:
        links = []
        try:
            reports.report_content_type(job)
        except BulkImportError as refusal:
            said = refusal.detail
        else:
            said = ""
            links += [
                (self._url("report", job), "the report"),
                (self._url("failed_rows", job), "the failed rows, as a manifest to fix"),
            ]
        if job.rollback_started_at is not None:
            links.append((self._url("rollback_report", job), "the rollback report"))
        shown = format_html_join(" · ", '<a href="{}">{}</a>', links)
        return format_html("{} {}", shown, said) if said else shown

    @admin.display(description="recent events")
    def recent_events(self, job: Import) -> str:
        events = selectors.import_events(job)
        if not events:
            return "none"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    formats.localize(timezone.localtime(event.at)),
                    event.get_kind_display(),
                    event.detail,
                )
                for event in events
            ),
        )
        return format_html("<table><tbody>{}</tbody></table>", rows)

    # Actions on the list, each through lifecycle.

    @admin.action(description="Cancel the selected imports", permissions=["run"])
    def cancel(self, request, queryset) -> None:
        self._change_each(request, queryset, "cancel")

    @admin.action(description="Resume the selected imports", permissions=["run"])
    def resume(self, request, queryset) -> None:
        self._change_each(request, queryset, "resume")

    @admin.action(description="Roll back the selected imports", permissions=["run"])
    def rollback(self, request, queryset) -> None:
        self._change_each(request, queryset, "rollback")

    @admin.action(
        description="Delete the selected ended imports (their documents stay)",
        permissions=["run"],
    )
    def delete(self, request, queryset) -> None:
        for job in list(queryset):
            self._act(request, job, lifecycle.import_delete, "deleted")

    def _change_each(self, request, queryset, change: str) -> None:
        for job in list(queryset):
            self._change(request, job, change)

    def _change(self, request, job: Import, change: str) -> None:
        act, _label, done = CHANGES[change]
        self._act(request, job, act, done)

    def _act(self, request, job: Import, act: Callable[[Import], object], done: str) -> None:
        """Call `act` (a lifecycle function) on the import and say what came of it."""
        try:
            act(job)
        except BulkImportError as refusal:
            self.message_user(request, f"Import {job.uuid}: {refusal.detail}", messages.ERROR)
        else:
            self.message_user(request, f"Import {job.uuid}: {done}.", messages.SUCCESS)

    # The page of one import: its buttons and its progress, followed by static/imports/progress.js.

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["import_body"] = import_body(obj, request.build_absolute_uri("/"))
            context["import_eta"] = duration_words(obj.eta_seconds(timezone.now()))
            context["import_changes"] = (
                changes_offered(obj) if self.has_run_permission(request) else []
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self):
        own = self.admin_site.admin_view
        changes = [
            path(
                f"<uuid:uuid>/{change}/",
                own(require_POST(self.change_state_view)),
                {"change": change},
                name=f"imports_import_{change}",
            )
            for change in CHANGES
        ]
        return [
            path("start/", own(self.start_view), name="imports_import_start"),
            path("<uuid:uuid>/progress/", own(self.progress_view), name="imports_import_progress"),
            path("<uuid:uuid>/report/", own(self.report_view), name="imports_import_report"),
            path(
                "<uuid:uuid>/failed-rows/",
                own(self.failed_rows_view),
                name="imports_import_failed_rows",
            ),
            path(
                "<uuid:uuid>/rollback-report/",
                own(self.rollback_report_view),
                name="imports_import_rollback_report",
            ),
            *changes,
            *super().get_urls(),
        ]

    def _url(self, name: str, job: Import) -> str:
        return reverse(f"admin:imports_import_{name}", kwargs={"uuid": job.pk})

    def _page(self, job: Import) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:imports_import_change", args=[job.pk]))

    def _readable(self, request, uuid) -> Import:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return selectors.import_get(uuid)

    def _refused(self, request, job: Import, refusal: BulkImportError) -> HttpResponseRedirect:
        self.message_user(request, refusal.detail, messages.ERROR)
        return self._page(job)

    def change_state_view(self, request, uuid, change: str):
        if not self.has_run_permission(request):
            raise PermissionDenied
        job = selectors.import_get(uuid)
        self._change(request, job, change)
        return self._page(job)

    def progress_view(self, request, uuid) -> JsonResponse:
        """The import's status body, as the API's status endpoint answers it, for the page."""
        job = self._readable(request, uuid)
        return JsonResponse(import_body(job, request.build_absolute_uri("/")))

    # The downloads: the API's report views' functions, with the session's login.

    def report_view(self, request, uuid):
        return self._download(request, uuid, report_response)

    def failed_rows_view(self, request, uuid):
        return self._download(request, uuid, partial(report_response, failed_only=True))

    def rollback_report_view(self, request, uuid):
        return self._download(request, uuid, rollback_report_response)

    def _download(self, request, uuid, response_of: Callable[[Import], HttpResponseBase]):
        job = self._readable(request, uuid)
        try:
            return response_of(job)
        except BulkImportError as refusal:
            return self._refused(request, job, refusal)

    # Starting an import from the browser.

    def start_view(self, request):
        if not self.has_run_permission(request):
            raise PermissionDenied
        form = ImportStartForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                job = lifecycle.import_start(
                    partial(_upload, form.cleaned_data["manifest"]),
                    user=request.user,
                    **form.create_options(),
                )
            except BulkImportError as refusal:
                self.message_user(request, refusal.detail, messages.ERROR)
            else:
                self.message_user(request, f"Import {job.uuid} started.", messages.SUCCESS)
                return self._page(job)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Start an import",
            "form": form,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/imports/import/start.html", context)
