"""The admin made for imports: the list with progress, the read-only pages, the actions and
buttons through lifecycle, the start page, the downloads and the progress view."""

import csv
import io

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from rest_framework.fields import empty

from imports.admin.forms import ImportStartForm
from imports.inputs import ImportCreateInput
from imports.models import Document, Import, ImportPhase, ImportStatus
from imports.selectors import import_get

from .conftest import Queued
from .factories import csv_bytes, import_run, import_uploaded, scans_in

pytestmark = pytest.mark.django_db

MANIFEST = csv_bytes(
    "identifier,file_path,title",
    "doc-1,scans/a.png,First",
    "doc-2,scans/missing.png,Second",
    "doc-3,scans/b.png,Third",
)


def admin_url(name: str, *args) -> str:
    return reverse(f"admin:imports_{name}", args=args)


def page(response) -> str:
    assert response.status_code == 200, (response.status_code, response.content[:300])
    return response.content.decode()


def said(response) -> list[str]:
    """The messages the admin shows on the page a redirect led to."""
    return [str(message) for message in response.context["messages"]]


def user_with(*codenames: str, username: str = "staff"):
    user = get_user_model().objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def superuser() -> Client:
    return client_of(get_user_model().objects.create_superuser("boss", password="pw"))


@pytest.fixture
def viewer() -> Client:
    """Staff who may read imports and documents, and change nothing."""
    return client_of(user_with("view_import", "view_document"))


@pytest.fixture
def scans(source):
    return scans_in(source, "scans/a.png", "scans/b.png")


@pytest.fixture
def finished(scans) -> Import:
    """MANIFEST run to its end: doc-1 and doc-3 imported, doc-2 failed (its file is missing)."""
    job = import_run(MANIFEST, batch_size=2)
    assert job.status == ImportStatus.FINISHED
    return job


@pytest.fixture
def active(scans) -> Import:
    """An uploaded import, counting its manifest."""
    return import_uploaded(MANIFEST)


# --- the list ---------------------------------------------------------------------------------


def test_the_list_shows_each_import_with_its_progress_and_counts(superuser, finished):
    html = page(superuser.get(admin_url("import_changelist")))
    assert '<progress class="import-bar" value="100.0" max="100"></progress> 100.0 %' in html
    assert "3 of 3" in html and "2 / 0 / 1" in html
    assert str(finished.uuid) in html
    # starting is the start page, not the model's add form
    assert admin_url("import_start") in html
    assert admin_url("import_add") not in html


def test_the_list_shows_an_active_imports_share_done(superuser, active):
    Import.objects.filter(pk=active.pk).update(
        phase=ImportPhase.IMPORTING, total_rows=4, processed_rows=1, failed_rows=1
    )
    html = page(superuser.get(admin_url("import_changelist")))
    assert '<progress class="import-bar" value="25.0" max="100"></progress> 25.0 %' in html
    assert "1 of 4" in html and "0 / 0 / 1" in html


# --- the page of one import -------------------------------------------------------------------


def test_an_imports_page_is_read_only_and_links_its_downloads(superuser, finished):
    change = admin_url("import_change", finished.pk)
    html = page(superuser.get(change))
    for field in ("status", "processed_rows", "failed_rows", "batch_size", "on_conflict"):
        assert f'name="{field}"' not in html
    assert admin_url("import_report", finished.pk) in html
    assert admin_url("import_failed_rows", finished.pk) in html
    assert admin_url("import_progress", finished.pk) in html
    # its progress panel, which static/imports/progress.js keeps up to date while it runs
    assert '<span data-field="progress">100.0</span>' in html
    assert '<span data-field="failed_rows">1</span>' in html
    # and nothing posted to it changes the import
    assert superuser.post(change, {"status": "active", "failed_rows": 0}).status_code == 403
    finished.refresh_from_db()
    assert (finished.status, finished.failed_rows) == (ImportStatus.FINISHED, 1)


def test_the_report_downloads_with_the_failed_row_and_its_comment(superuser, finished):
    response = superuser.get(admin_url("import_report", finished.pk))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    failed = [row for row in rows if row["import_status"] == "failed"]
    assert [row["identifier"] for row in failed] == ["doc-2"]
    assert "no such file" in failed[0]["import_comment"]


def test_the_failed_rows_download_is_a_manifest_of_them(superuser, finished):
    response = superuser.get(admin_url("import_failed_rows", finished.pk))
    assert response.status_code == 200
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines == ["identifier,file_path,title", "doc-2,scans/missing.png,Second"]


def test_a_report_not_there_yet_is_said_in_plain_words(superuser, active):
    response = superuser.get(admin_url("import_report", active.pk), follow=True)
    assert said(response) == ["The report exists once the import has ended."]


# --- changes, through lifecycle ---------------------------------------------------------------


def test_the_cancel_action_cancels_an_active_import(superuser, active):
    response = superuser.post(
        admin_url("import_changelist"),
        {"action": "cancel", "_selected_action": [str(active.pk)]},
        follow=True,
    )
    assert import_get(active.pk).status == ImportStatus.CANCELLED
    assert said(response) == [f"Import {active.pk}: cancelled."]


def test_a_refusal_is_a_message_in_plain_words(superuser, finished):
    response = superuser.post(
        admin_url("import_changelist"),
        {"action": "cancel", "_selected_action": [str(finished.pk)]},
        follow=True,
    )
    assert said(response) == [f"Import {finished.pk}: This import has already ended."]
    assert import_get(finished.pk).status == ImportStatus.FINISHED


def test_the_pages_buttons_cancel_and_roll_back(superuser, active):
    html = page(superuser.get(admin_url("import_change", active.pk)))
    assert admin_url("import_cancel", active.pk) in html
    assert admin_url("import_rollback", active.pk) not in html  # only ended imports roll back
    response = superuser.post(admin_url("import_cancel", active.pk), follow=True)
    assert said(response) == [f"Import {active.pk}: cancelled."]
    assert import_get(active.pk).status == ImportStatus.CANCELLED
    # a cancelled import imported nothing: its rollback ends at once
    response = superuser.post(admin_url("import_rollback", active.pk), follow=True)
    assert said(response) == [f"Import {active.pk}: rollback started."]
    assert import_get(active.pk).status == ImportStatus.ROLLED_BACK
    response = superuser.post(admin_url("import_resume", active.pk), follow=True)
    assert said(response) == [f"Import {active.pk}: {_not_resumable()}"]


def _not_resumable() -> str:
    from imports.errors import ImportNotResumable

    return ImportNotResumable.default_detail


def test_the_delete_action_goes_through_lifecycle(superuser, finished, active):
    response = superuser.post(
        admin_url("import_changelist"),
        {"action": "delete", "_selected_action": [str(finished.pk), str(active.pk)]},
        follow=True,
    )
    assert sorted(said(response)) == sorted(
        [
            f"Import {finished.pk}: deleted.",
            f"Import {active.pk}: This import is still pending or active.",
        ]
    )
    assert list(Import.objects.values_list("pk", flat=True)) == [active.pk]


# --- permissions ------------------------------------------------------------------------------


def test_who_may_only_read_sees_imports_and_cannot_act(viewer, active):
    html = page(viewer.get(admin_url("import_changelist")))
    assert str(active.pk) in html
    assert 'value="cancel"' not in html
    assert admin_url("import_start") not in html
    assert admin_url("import_cancel", active.pk) not in page(
        viewer.get(admin_url("import_change", active.pk))
    )
    viewer.post(
        admin_url("import_changelist"), {"action": "cancel", "_selected_action": [str(active.pk)]}
    )
    assert viewer.post(admin_url("import_cancel", active.pk)).status_code == 403
    assert viewer.get(admin_url("import_start")).status_code == 403
    assert import_get(active.pk).status == ImportStatus.ACTIVE


def test_staff_without_permissions_read_nothing(finished, active):
    nobody = client_of(user_with(username="nobody"))
    assert nobody.get(admin_url("import_changelist")).status_code == 403
    assert nobody.get(admin_url("import_progress", active.pk)).status_code == 403
    assert nobody.get(admin_url("import_report", finished.pk)).status_code == 403


# --- the progress view ------------------------------------------------------------------------


def test_the_progress_view_needs_a_login(client, active):
    response = client.get(admin_url("import_progress", active.pk))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_the_progress_view_answers_the_status_body(superuser, finished):
    body = superuser.get(admin_url("import_progress", finished.pk)).json()
    assert body["uuid"] == str(finished.pk)
    assert (body["status"], body["progress"], body["failed_rows"]) == ("finished", 100.0, 1)
    assert body["status_url"] == f"http://testserver/api/v1/imports/{finished.pk}/status"


# --- the start page ---------------------------------------------------------------------------


def manifest_file(data: bytes = MANIFEST) -> SimpleUploadedFile:
    return SimpleUploadedFile("m.csv", data, content_type="text/csv")


def test_the_start_page_creates_uploads_and_queues_the_count(
    superuser, scans, queued: Queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = superuser.post(
            admin_url("import_start"),
            {"manifest": manifest_file(), "on_conflict": "skip", "batch_size": "2"},
        )
    [job] = Import.objects.all()
    assert response.status_code == 302
    assert response["Location"] == admin_url("import_change", job.pk)
    assert (job.status, job.phase) == (ImportStatus.ACTIVE, ImportPhase.COUNTING)
    assert (job.on_conflict, job.batch_size, job.dry_run) == ("skip", 2, False)
    assert job.created_by.username == "boss"
    assert queued == [("split", (str(job.pk),))]


def test_the_start_page_refuses_bad_options_before_opening_anything(superuser, scans):
    response = superuser.post(
        admin_url("import_start"),
        {"manifest": manifest_file(), "on_conflict": "overwrite", "batch_size": "0"},
    )
    html = page(response)
    assert "errornote" in html
    assert set(response.context["form"].errors) == {"on_conflict", "batch_size"}
    assert not Import.objects.exists()


def test_a_refused_upload_cancels_the_import_it_opened(superuser, scans):
    response = superuser.post(
        admin_url("import_start"),
        {"manifest": manifest_file(b"\xff\xfe\x00broken"), "on_conflict": "fail"},
        follow=True,
    )
    [job] = Import.objects.all()
    assert job.status == ImportStatus.CANCELLED
    [message] = said(response)
    assert message.startswith("The manifest starts with a UTF-16 byte-order mark")


def test_another_open_import_is_said_on_the_start_page(superuser, active):
    response = superuser.post(
        admin_url("import_start"), {"manifest": manifest_file(), "on_conflict": "fail"}
    )
    assert said(response) == ["Another import is pending or active; finish or cancel it first."]
    assert Import.objects.count() == 1


def test_the_start_form_takes_the_apis_create_options():
    """The admin may not import the API's serializer (the layers): its form declares the same
    options, which this compares field by field."""
    form, api = ImportStartForm().fields, ImportCreateInput().fields
    assert set(form) - {"manifest"} == set(api)
    for name, option in api.items():
        field = form[name]
        assert field.required == option.required, name
        if hasattr(option, "choices"):
            assert list(field.choices) == list(option.choices.items()), name
        if option.default not in (empty, False):
            assert field.initial == option.default, name
        for bound in ("min_value", "max_value", "max_length"):
            assert getattr(field, bound, None) == getattr(option, bound, None), (name, bound)


# --- documents --------------------------------------------------------------------------------


def test_documents_are_read_only_and_served_from_storage(superuser, finished, scans):
    document = Document.objects.get(identifier="doc-1")
    change = admin_url("document_change", document.pk)
    html = page(superuser.get(change))
    assert document.sha256 in html
    for field in ("file", "sha256", "size", "content_type", "title"):
        assert f'name="{field}"' not in html
    content = admin_url("document_content", document.pk)
    assert f'<img class="document-thumbnail" src="{content}?inline=1"' in html
    # nothing posted changes it, and nobody adds one
    assert superuser.post(change, {"sha256": "0" * 64, "title": "x"}).status_code == 403
    assert superuser.get(admin_url("document_add")).status_code == 403
    document.refresh_from_db()
    assert (document.sha256, document.title) != ("0" * 64, "x")
    # the file, as stored: a download, or inline for an image
    response = superuser.get(content)
    assert b"".join(response.streaming_content) == scans["scans/a.png"]
    assert response["Content-Disposition"].startswith("attachment")
    assert response["Content-Security-Policy"] == "sandbox"
    inline = superuser.get(content + "?inline=1")
    assert inline["Content-Disposition"].startswith("inline")
    assert inline["Content-Type"] == "image/png"


def test_documents_are_searched_by_identifier_and_title(superuser, finished):
    html = page(superuser.get(admin_url("document_changelist"), {"q": "Third"}))
    assert "doc-3" in html and "doc-1" not in html
    html = page(superuser.get(admin_url("document_changelist"), {"q": "doc-1"}))
    assert "doc-1" in html and "doc-3" not in html


def test_the_document_file_needs_a_permission(finished):
    document = Document.objects.get(identifier="doc-1")
    reader = client_of(user_with("view_import", username="imports-only"))
    assert reader.get(admin_url("document_content", document.pk)).status_code == 403
