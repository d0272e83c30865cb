"""Creating, listing, reading, cancelling and deleting imports."""

import socket
import uuid
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone
from standardwebhooks import Webhook

from imports import callbacks, tasks
from imports.batches import batch_run
from imports.models import Batch, Document, Import
from imports.staging import import_split
from tests.background import report_task_run
from tests.factories import csv_bytes, png_bytes, run_inline
from tests.test_webhooks import SECRET, Receiver

from .conftest import (
    MANIFEST_LINES,
    assert_error,
    body,
    create,
    job_of,
    status_of,
    streamed,
    upload,
    url,
)

STATUS_FIELDS = {
    "uuid",
    "status",
    "phase",
    "dry_run",
    "on_conflict",
    "total_rows",
    "processed_rows",
    "imported_rows",
    "skipped_rows",
    "failed_rows",
    "progress",
    "stale",
    "rows_per_second",
    "eta_seconds",
    "created_at",
    "started_at",
    "finished_at",
    "error",
    "upload_url",
    "status_url",
    "report_url",
}


# --- create -----------------------------------------------------------------------------------


def test_create_answers_201_with_the_import_and_its_urls(api):
    response = api.post(url("imports", "create"), {}, format="json")
    assert response.status_code == 201
    data = response.json()
    assert data.keys() >= STATUS_FIELDS
    assert data["status"] == "pending"
    assert data["dry_run"] is False
    assert data["on_conflict"] == "fail"
    uid = data["uuid"]
    assert data["upload_url"] == f"http://testserver/api/v1/imports/{uid}/upload"
    assert data["status_url"] == f"http://testserver/api/v1/imports/{uid}/status"
    assert data["report_url"] == f"http://testserver/api/v1/imports/{uid}/report"
    assert status_of(uid) == "pending"


def test_create_without_a_body(api):
    response = api.post(url("imports", "create"))
    assert response.status_code == 201
    assert response.json()["status"] == "pending"


def test_create_with_options(api, settings):
    data = create(api, dry_run=False, on_conflict="fail", batch_size=7)
    assert data["batch_size"] == 7
    assert job_of(data["uuid"]).batch_size == 7


def test_create_default_batch_size_is_the_setting(api, settings):
    settings.IMPORT_BATCH_SIZE = 123
    assert create(api)["batch_size"] == 123


def test_urls_follow_the_host_asked_for(api):
    response = api.post(url("imports", "create"), HTTP_HOST="localhost")
    assert response.json()["status_url"].startswith("http://localhost/api/v1/imports/")


def test_second_create_is_409_while_one_is_pending(api, pending):
    data = assert_error(api.post(url("imports", "create"), {}, format="json"), 409)
    assert data["code"] == "another_import_open"
    assert Import.objects.count() == 1


def test_second_create_is_409_while_one_is_active(api, active):
    assert_error(api.post(url("imports", "create")), 409, "another_import_open")


def test_create_is_allowed_again_once_the_open_import_ended(api, finished):
    assert create(api)["status"] == "pending"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"on_conflict": "bogus"}, "on_conflict"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": -5}, "batch_size"),
        ({"batch_size": "many"}, "batch_size"),
        ({"batch_size": 10_001}, "batch_size"),
        ({"dry_run": "maybe"}, "dry_run"),
    ],
)
def test_create_with_bad_options_is_400(api, options, field):
    data = assert_error(api.post(url("imports", "create"), options, format="json"), 400, "invalid")
    assert field in data["errors"]
    assert Import.objects.count() == 0


def test_create_with_malformed_json_is_400(api):
    response = api.post(
        url("imports", "create"), data=b"{not json", content_type="application/json"
    )
    assert_error(response, 400, "parse_error")
    assert Import.objects.count() == 0


# --- create with a callback_url ---------------------------------------------------------------


@pytest.fixture
def callbacks_on(settings, monkeypatch):
    """Callbacks configured: hooks.example.org (a public address) and 127.0.0.1 listed;
    hooks.internal.example is listed too but resolves to a private address."""
    settings.IMPORT_CALLBACK_ALLOWED_HOSTS = [
        "hooks.example.org",
        "hooks.internal.example",
        "127.0.0.1",
    ]
    settings.IMPORT_CALLBACK_SECRET = SECRET
    names = {"hooks.example.org": "93.184.216.34", "hooks.internal.example": "10.1.2.3"}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in names:
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (names[host], port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return settings


def test_create_with_an_allowed_callback_url_keeps_it(api, callbacks_on):
    data = create(api, callback_url="https://hooks.example.org/bulk?token=t")
    assert data["callback"] is None  # no delivery until the import ends
    assert job_of(data["uuid"]).callback_url == "https://hooks.example.org/bulk?token=t"


@pytest.mark.parametrize(
    "callback_url, code",
    [
        ("https://elsewhere.example.org/hook", "callback_host_not_allowed"),
        ("http://10.1.2.3/hook", "callback_host_not_allowed"),
        ("https://hooks.internal.example/hook", "callback_address_not_allowed"),
        ("https://user:secret@hooks.example.org/hook", "callback_url_invalid"),
        ("ftp://hooks.example.org/hook", "callback_url_invalid"),
    ],
)
def test_create_with_a_callback_url_not_allowed_is_400(api, callbacks_on, callback_url, code):
    response = api.post(url("imports", "create"), {"callback_url": callback_url}, format="json")
    data = assert_error(response, 400, code)
    assert "secret" not in data["detail"] and "10.1.2.3" not in data["detail"]
    assert Import.objects.count() == 0


def test_create_with_a_callback_url_is_400_while_callbacks_are_not_configured(api, settings):
    settings.IMPORT_CALLBACK_ALLOWED_HOSTS = []
    response = api.post(
        url("imports", "create"), {"callback_url": "https://example.org/hook"}, format="json"
    )
    data = assert_error(response, 400, "callbacks_not_configured")
    assert "IMPORT_CALLBACK_ALLOWED_HOSTS" in data["detail"]
    assert Import.objects.count() == 0


def test_an_import_that_ends_posts_its_status_to_its_callback_url(
    api, callbacks_on, scans, monkeypatch, django_capture_on_commit_callbacks
):
    # given an import created with a callback_url on a receiver, its deliveries as queued
    queued = []
    monkeypatch.setattr(tasks.callback_deliver_task, "delay", lambda *args: queued.append(args))
    with Receiver(answers=[204]) as receiver:
        data = create(api, callback_url=receiver.url())
        assert upload(api, data["uuid"], csv_bytes(*MANIFEST_LINES)).status_code == 202
        # when it runs to its end, and the delivery queued is run as the worker would
        with django_capture_on_commit_callbacks(execute=True):
            run_inline(job_of(data["uuid"]))
        [(import_id, status, delivery_id)] = queued
        assert (import_id, status) == (data["uuid"], "finished")
        assert callbacks.callback_deliver(import_id, status, delivery_id, 1) is False
    # then the receiver got the status body, signed, and the status shows it delivered
    [request] = receiver.requests
    posted = Webhook(SECRET).verify(request.body, request.headers)
    assert (posted["uuid"], posted["status"], posted["imported_rows"]) == (
        data["uuid"],
        "finished",
        2,
    )
    shown = api.get(url("imports", data["uuid"], "status")).json()["callback"]
    assert (shown["state"], shown["for_status"], shown["attempts"], shown["last_http_status"]) == (
        "delivered",
        "finished",
        1,
        204,
    )


@pytest.mark.parametrize(
    "options",
    [{"dry_run": True}, {"on_conflict": "skip"}, {"on_conflict": "update"}],
    ids=["dry_run", "skip", "update"],
)
def test_create_keeps_the_dry_run_and_conflict_options(api, options):
    data = create(api, **options)
    assert {name: data[name] for name in options} == options
    job = Import.objects.get(pk=data["uuid"])
    assert {name: getattr(job, name) for name in options} == options


def test_create_with_an_unknown_option_is_400_naming_it(api):
    response = api.post(url("imports", "create"), {"batchsize": 10}, format="json")
    data = assert_error(response, 400, "invalid")
    assert "batchsize" in data["errors"]
    assert Import.objects.count() == 0


def test_pending_import_older_than_the_timeout_no_longer_blocks(api, settings, pending):
    settings.IMPORT_PENDING_TIMEOUT = 60
    Import.objects.filter(pk=pending["uuid"]).update(
        created_at=timezone.now() - timedelta(seconds=61)
    )
    fresh = create(api)
    assert fresh["uuid"] != pending["uuid"]
    old = job_of(pending["uuid"])
    assert old.status == "cancelled"
    assert old.finished_at is not None


def test_pending_import_within_the_timeout_still_blocks(api, settings, pending):
    settings.IMPORT_PENDING_TIMEOUT = 60
    Import.objects.filter(pk=pending["uuid"]).update(
        created_at=timezone.now() - timedelta(seconds=50)
    )
    assert_error(api.post(url("imports", "create")), 409, "another_import_open")
    assert status_of(pending["uuid"]) == "pending"


def test_expired_pending_import_refuses_its_upload(api, settings, pending, scans):
    settings.IMPORT_PENDING_TIMEOUT = 60
    Import.objects.filter(pk=pending["uuid"]).update(created_at=timezone.now() - timedelta(hours=1))
    response = upload(api, pending["uuid"], csv_bytes("identifier,file_path,title"))
    assert_error(response, 409, "import_not_pending")
    assert status_of(pending["uuid"]) == "cancelled"


def test_pending_import_past_the_timeout_reads_cancelled(api, settings, pending):
    settings.IMPORT_PENDING_TIMEOUT = 60
    Import.objects.filter(pk=pending["uuid"]).update(created_at=timezone.now() - timedelta(hours=1))
    assert api.get(url("imports", pending["uuid"], "status")).json()["status"] == "cancelled"
    assert api.delete(url("imports", pending["uuid"])).status_code == 204


# --- status -----------------------------------------------------------------------------------


def test_status_of_a_pending_import(api, pending):
    response = api.get(url("imports", pending["uuid"], "status"))
    assert response.status_code == 200
    data = response.json()
    assert data.keys() >= STATUS_FIELDS
    assert data["status"] == "pending"
    assert data["total_rows"] is None
    assert data["processed_rows"] == 0
    assert data["progress"] == 0
    assert data["started_at"] is None
    assert data["finished_at"] is None
    assert data["eta_seconds"] is None


def test_status_of_an_active_import(api, active):
    data = api.get(url("imports", active["uuid"], "status")).json()
    assert data.keys() >= STATUS_FIELDS
    assert data["status"] == "active"
    assert data["phase"] == "counting"
    assert data["started_at"] is not None


def test_status_after_the_import_ran(api, finished):
    data = api.get(url("imports", finished.uuid, "status")).json()
    assert data.keys() >= STATUS_FIELDS
    assert data["status"] == "finished"
    assert data["phase"] == ""
    assert data["total_rows"] == 3
    assert data["processed_rows"] == 3
    assert data["imported_rows"] == 2
    assert data["skipped_rows"] == 0
    assert data["failed_rows"] == 1
    assert data["processed_rows"] == (
        data["imported_rows"] + data["skipped_rows"] + data["failed_rows"]
    )
    assert data["progress"] == 100
    assert data["eta_seconds"] is None
    assert data["finished_at"] is not None
    assert data["error"] == ""


def test_status_of_a_manifest_without_rows(api, pending, source):
    assert upload(api, pending["uuid"], csv_bytes("identifier,file_path,title")).status_code == 202
    run_inline(job_of(pending["uuid"]))
    data = api.get(url("imports", pending["uuid"], "status")).json()
    assert data["status"] == "finished"
    assert data["total_rows"] == 0
    assert data["processed_rows"] == 0
    assert data["progress"] == 100


def upload_in_two_batches(api, uuid: str, source) -> list[str]:
    """Upload four good rows in two batches of two, and split them."""
    (source / "f").mkdir()
    lines = ["identifier,file_path,title"]
    for n in range(4):
        (source / "f" / f"{n}.png").write_bytes(png_bytes(str(n)))
        lines.append(f"id-{n},f/{n}.png,T{n}")
    Import.objects.filter(pk=uuid).update(batch_size=2)
    assert upload(api, uuid, csv_bytes(*lines)).status_code == 202
    import_split(uuid)
    return lines


def test_status_while_importing_shows_partial_progress(api, pending, source):
    upload_in_two_batches(api, pending["uuid"], source)
    batch_run(Batch.objects.filter(import_job_id=pending["uuid"]).first().pk)
    data = api.get(url("imports", pending["uuid"], "status")).json()
    assert data["status"] == "active"
    assert data["phase"] == "importing"
    assert data["total_rows"] == 4
    assert data["processed_rows"] == data["imported_rows"] == 2
    assert data["progress"] == 50


def test_status_of_an_unknown_import_is_404(api):
    assert_error(api.get(url("imports", uuid.uuid4(), "status")), 404, "not_found")


# --- list and detail --------------------------------------------------------------------------


def _ended_imports(count: int) -> list[Import]:
    """`count` cancelled imports, created one minute apart, oldest first."""
    now = timezone.now()
    jobs = Import.objects.bulk_create(
        Import(status="cancelled", batch_size=10) for _ in range(count)
    )
    for age, job in enumerate(reversed(jobs)):
        Import.objects.filter(pk=job.pk).update(created_at=now - timedelta(minutes=age))
    return jobs


def test_list_is_newest_first(api):
    jobs = _ended_imports(3)
    response = api.get(url("imports/"))
    assert response.status_code == 200
    data = response.json()
    assert data.keys() == {"count", "next", "previous", "results"}
    assert data["count"] == 3
    assert data["next"] is None
    assert data["previous"] is None
    assert [item["uuid"] for item in data["results"]] == [str(job.pk) for job in reversed(jobs)]
    assert data["results"][0].keys() >= STATUS_FIELDS


def test_list_newest_first_through_the_api(api):
    first = create(api)
    api.post(url("imports", first["uuid"], "cancel"))
    Import.objects.filter(pk=first["uuid"]).update(created_at=timezone.now() - timedelta(seconds=5))
    second = create(api)
    results = api.get(url("imports/")).json()["results"]
    assert [item["uuid"] for item in results] == [second["uuid"], first["uuid"]]


def test_list_is_paginated(api):
    jobs = _ended_imports(51)
    first = api.get(url("imports/")).json()
    assert first["count"] == 51
    assert len(first["results"]) == 50
    assert first["previous"] is None
    assert first["next"].startswith("http://testserver/api/v1/imports/")
    second = api.get(first["next"]).json()
    assert [item["uuid"] for item in second["results"]] == [str(jobs[0].pk)]
    assert second["next"] is None
    assert second["previous"].startswith("http://testserver/api/v1/imports/")


def test_list_page_out_of_range_is_404(api):
    _ended_imports(1)
    assert_error(api.get(url("imports/") + "?page=9"), 404, "not_found")


def test_empty_list(api):
    assert api.get(url("imports/")).json() == {
        "count": 0,
        "next": None,
        "previous": None,
        "results": [],
    }


def test_detail(api, pending):
    response = api.get(url("imports", pending["uuid"]))
    assert response.status_code == 200
    assert response.json()["uuid"] == pending["uuid"]
    assert response.json().keys() >= STATUS_FIELDS


def test_detail_of_an_unknown_import_is_404(api):
    assert_error(api.get(url("imports", uuid.uuid4())), 404, "not_found")


# --- cancel -----------------------------------------------------------------------------------


def test_cancel_a_pending_import(api, pending):
    response = api.post(url("imports", pending["uuid"], "cancel"))
    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "cancelled"
    assert data["finished_at"] is not None
    assert status_of(pending["uuid"]) == "cancelled"
    # It no longer holds the lock, and it has no report.
    assert create(api)["status"] == "pending"
    assert_error(api.get(url("imports", pending["uuid"], "report")), 404, "report_missing")


def test_cancel_an_active_import_answers_before_its_report_is_written(
    api, active, django_capture_on_commit_callbacks, monkeypatch
):
    # given the report task as queued, not run
    queued = []
    monkeypatch.setattr(tasks.import_report_task, "delay", lambda *args: queued.append(args))
    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(url("imports", active["uuid"], "cancel"))
    # then the cancel answers with the import cancelled, and its report is queued
    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "cancelled"
    assert data["phase"] == ""
    assert queued == [(active["uuid"],)]
    not_ready = assert_error(api.get(url("imports", active["uuid"], "report")), 409)
    assert (not_ready["code"], not_ready["detail"]) == (
        "report_not_ready",
        "The report is being written; try again in a moment.",
    )
    # and once the worker has run it, the report is there
    report_task_run(job_of(active["uuid"]))
    report = api.get(url("imports", active["uuid"], "report"))
    assert report.status_code == 200
    lines = streamed(report).decode().splitlines()
    assert lines[0].endswith(",import_status,import_comment")
    assert len(lines) == 4
    for line in lines[1:]:
        assert ",not_processed," in line
        assert "cancelled" in line


def test_cancelled_import_does_not_go_on(api, active):
    api.post(url("imports", active["uuid"], "cancel"))
    job = run_inline(job_of(active["uuid"]))
    assert job.status == "cancelled"
    assert job.processed_rows == 0
    assert Document.objects.count() == 0


def test_cancel_between_batches_keeps_committed_rows(api, pending, source):
    lines = upload_in_two_batches(api, pending["uuid"], source)
    first, second = Batch.objects.filter(import_job_id=pending["uuid"])
    batch_run(first.pk)
    data = api.post(url("imports", pending["uuid"], "cancel")).json()
    assert data["status"] == "cancelled"
    assert data["processed_rows"] == data["imported_rows"] == 2
    batch_run(second.pk)  # a batch delivered after the cancel commits nothing
    assert Document.objects.count() == 2
    report_task_run(job_of(pending["uuid"]))
    report = streamed(api.get(url("imports", pending["uuid"], "report"))).decode().splitlines()
    assert [line.split(",")[3] for line in report[1:]] == [
        "imported",
        "imported",
        "not_processed",
        "not_processed",
    ]
    failed = streamed(api.get(url("imports", pending["uuid"], "report") + "?rows=failed"))
    assert failed.decode().splitlines() == [lines[0], lines[3], lines[4]]


@pytest.mark.parametrize("end", ["cancel", "finish"])
def test_cancel_an_ended_import_is_409(api, pending, source, end):
    if end == "cancel":
        api.post(url("imports", pending["uuid"], "cancel"))
    else:
        upload(api, pending["uuid"], csv_bytes("identifier,file_path,title"))
        run_inline(job_of(pending["uuid"]))
    before = status_of(pending["uuid"])
    assert_error(api.post(url("imports", pending["uuid"], "cancel")), 409, "import_already_ended")
    assert status_of(pending["uuid"]) == before


def test_cancel_an_unknown_import_is_404(api):
    assert_error(api.post(url("imports", uuid.uuid4(), "cancel")), 404, "not_found")


# --- delete -----------------------------------------------------------------------------------


def test_delete_a_pending_import_is_409(api, pending):
    assert_error(api.delete(url("imports", pending["uuid"])), 409, "import_still_open")
    assert status_of(pending["uuid"]) == "pending"


def test_delete_an_active_import_is_409(api, active):
    assert_error(api.delete(url("imports", active["uuid"])), 409, "import_still_open")
    assert status_of(active["uuid"]) == "active"


def test_delete_an_ended_import_keeps_its_documents(api, finished):
    manifest, report = finished.manifest.name, finished.report.name
    assert default_storage.exists(manifest) and default_storage.exists(report)
    documents = list(Document.objects.values_list("pk", flat=True))
    assert len(documents) == 2
    response = api.delete(url("imports", finished.uuid))
    assert response.status_code == 204
    assert response.content == b""
    assert not Import.objects.filter(pk=finished.uuid).exists()
    assert not default_storage.exists(manifest)
    assert not default_storage.exists(report)
    assert list(Document.objects.values_list("pk", flat=True)) == documents
    for document in Document.objects.all():
        assert default_storage.exists(document.file.name)
        detail = api.get(url("documents", document.uuid))
        assert detail.status_code == 200
        assert detail.json()["import"] is None
        content = api.get(url("documents", document.uuid, "content"))
        assert content.status_code == 200
        assert streamed(content) == default_storage.open(document.file.name).read()
    assert_error(api.get(url("imports", finished.uuid, "status")), 404, "not_found")


def test_delete_a_cancelled_import_without_manifest(api, pending):
    api.post(url("imports", pending["uuid"], "cancel"))
    assert api.delete(url("imports", pending["uuid"])).status_code == 204
    assert not Import.objects.exists()


def test_delete_an_unknown_import_is_404(api):
    assert_error(api.delete(url("imports", uuid.uuid4())), 404, "not_found")


def test_delete_twice_is_404(api, pending):
    api.post(url("imports", pending["uuid"], "cancel"))
    assert api.delete(url("imports", pending["uuid"])).status_code == 204
    assert_error(api.delete(url("imports", pending["uuid"])), 404, "not_found")


def test_methods_not_allowed_are_json_405(api, pending):
    assert_error(api.get(url("imports", "create")), 405, "method_not_allowed")
    assert_error(api.put(url("imports", pending["uuid"]), {}), 405, "method_not_allowed")
    assert body(api.get(url("imports", pending["uuid"], "cancel")))["code"] == "method_not_allowed"


# --- resume -----------------------------------------------------------------------------------


def test_resume_an_import_that_ended_in_error(api, active, settings):
    Import.objects.filter(pk=active["uuid"]).update(
        status="error", phase="", error="a batch failed"
    )
    response = api.post(url("imports", active["uuid"], "resume"))
    assert response.status_code == 202
    data = response.json()
    assert (data["status"], data["error"], data["finished_at"]) == ("active", "", None)
    assert run_inline(job_of(active["uuid"])).status == "finished"


def test_an_active_import_that_stopped_reporting_shows_stale_and_resumes(api, active, settings):
    assert api.get(url("imports", active["uuid"], "status")).json()["stale"] is False
    long_ago = timezone.now() - timedelta(seconds=settings.IMPORT_STALE_AFTER + 1)
    Import.objects.filter(pk=active["uuid"]).update(heartbeat_at=long_ago)
    assert api.get(url("imports", active["uuid"], "status")).json()["stale"] is True
    response = api.post(url("imports", active["uuid"], "resume"))
    assert response.status_code == 202
    assert response.json()["stale"] is False


def test_the_status_says_what_recovery_did(api, active, settings, monkeypatch):
    # given an import whose only batch started on a worker that then died without a word
    monkeypatch.setattr(tasks.batch_run_task, "delay", lambda *args: None)
    import_split(active["uuid"])
    batch = Batch.objects.get(import_job_id=active["uuid"])
    silent_since = timezone.now() - timedelta(seconds=settings.IMPORT_BATCH_LOST_AFTER + 1)
    Batch.objects.filter(pk=batch.pk).update(
        attempts=1, heartbeat_at=silent_since, worker="celery@worker-3"
    )
    assert api.get(url("imports", active["uuid"], "status")).json()["events"] == []
    # when the recovery task runs
    tasks.imports_recover_task.apply()
    # then the status counts the batch queued again, and says which, where and when
    status = api.get(url("imports", active["uuid"], "status")).json()
    assert status["recovered_batches"] == 1
    [event] = status["events"]
    assert event["kind"] == "batch_lost"
    assert event["detail"] == (
        f"batch 1 (rows 1 to {batch.last_row}) stopped reporting for "
        f"{int(settings.IMPORT_BATCH_LOST_AFTER)} s on celery@worker-3; queued again "
        f"(1 of at most {settings.IMPORT_BATCH_MAX_REQUEUES} times)"
    )
    assert event["at"]


def test_resume_an_import_still_at_work_is_409(api, active):
    assert_error(api.post(url("imports", active["uuid"], "resume")), 409, "import_not_resumable")


def test_resume_a_finished_import_is_409(api, finished):
    assert_error(api.post(url("imports", finished.uuid, "resume")), 409, "import_not_resumable")


def test_resume_while_another_import_is_open_is_409(api, active):
    Import.objects.filter(pk=active["uuid"]).update(status="error", phase="")
    create(api)
    assert_error(api.post(url("imports", active["uuid"], "resume")), 409, "another_import_open")


def test_resume_of_an_unknown_import_is_404(api, db):
    assert_error(api.post(url("imports", uuid.uuid4(), "resume")), 404, "not_found")
