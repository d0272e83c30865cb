"""Completion callbacks against the real bin/serve: its Celery worker posts an import's end to a
receiver in this test process, and retries it with backoff as a Celery task."""

import json
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from standardwebhooks import Webhook

from ..conftest import png_bytes
from ..test_webhooks import SECRET, Receiver
from .conftest import Service, _service_running, _stack_env, wait_until

# The receiver listens on 127.0.0.1, listed as an address; retries come within a second.
CALLBACKS = {
    "IMPORT_CALLBACK_ALLOWED_HOSTS": "127.0.0.1",
    "IMPORT_CALLBACK_SECRET": SECRET,
    "IMPORT_CALLBACK_RETRY_DELAY": "0.2",
    "IMPORT_CALLBACK_TIMEOUT": "5",
}


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[Service]:
    with ExitStack() as stack:
        yield from _service_running(
            tmp_path_factory.mktemp("service"), _stack_env(stack), CALLBACKS
        )


def test_an_end_is_delivered_signed_on_the_third_try(service):
    # given a receiver that answers 500 twice, then 204
    (service.source / "cb").mkdir(parents=True, exist_ok=True)
    (service.source / "cb" / "one.png").write_bytes(png_bytes("callback one"))
    manifest = b"identifier,title,file_path\r\nCB-1,One,cb/one.png\r\n"
    with Receiver(answers=[500, 500, 204]) as receiver:
        # when an import created with it as its callback_url runs to its end
        created = service.request(
            "POST",
            "/api/v1/imports/create",
            json.dumps({"callback_url": receiver.url("/hook?run=e2e")}).encode(),
            {"Content-Type": "application/json"},
        )
        assert created.status == 201, created.body
        job = created.json()
        upload = service.request("POST", job["upload_url"], manifest, {"Content-Type": "text/csv"})
        assert upload.status == 202, upload.body
        assert service.wait_ended(job["status_url"])["status"] == "finished"

        def delivered() -> dict | None:
            callback = service.request("GET", job["status_url"]).json()["callback"]
            return callback if callback and callback["state"] != "pending" else None

        callback = wait_until(delivered, timeout_s=30, what="callback delivered")
    # then the receiver got three posts of one delivery, each signed, the last one the end
    assert len(receiver.requests) == 3, service.log()
    assert {request.headers["webhook-id"] for request in receiver.requests} == {
        receiver.requests[0].headers["webhook-id"]
    }
    for request in receiver.requests:
        assert request.path == "/hook?run=e2e"
        posted = Webhook(SECRET).verify(request.body, request.headers)
        assert (posted["uuid"], posted["status"], posted["imported_rows"]) == (
            job["uuid"],
            "finished",
            1,
        )
        assert posted["status_url"] == job["status_url"]
    # and the status shows it delivered on the third try
    assert (callback["state"], callback["for_status"], callback["attempts"]) == (
        "delivered",
        "finished",
        3,
    )
    assert (callback["last_http_status"], callback["error"]) == (204, "")
    assert "run=e2e" not in service.log()


@pytest.mark.parametrize(
    "callback_url, code",
    [
        ("http://localhost:9/hook", "callback_host_not_allowed"),
        ("http://user:pw@127.0.0.1:9/hook", "callback_url_invalid"),
    ],
)
def test_a_callback_url_not_allowed_is_refused_at_create(service, callback_url, code):
    refused = service.request(
        "POST",
        "/api/v1/imports/create",
        json.dumps({"callback_url": callback_url}).encode(),
        {"Content-Type": "application/json"},
    )
    assert refused.status == 400, refused.body
    assert refused.json()["code"] == code
