"""Completion callbacks: imports.callbacks delivering an import's end to a local receiver.

Each test calls callback_deliver the way imports.tasks.callback_deliver_task does, one try at a
time with its attempt number, and reads the outcome where a client would: the status body.
"""

import json
import logging
import socket
from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks import Webhook

from imports import callbacks, tasks
from imports.callbacks import callback_delay, callback_deliver
from imports.lifecycle import import_cancel, import_create
from imports.models import Import
from imports.outputs import import_body

from .test_webhooks import SECRET, Receiver


@pytest.fixture
def configured(settings):
    settings.IMPORT_CALLBACK_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.IMPORT_CALLBACK_SECRET = SECRET
    settings.IMPORT_CALLBACK_TIMEOUT = 5
    settings.IMPORT_CALLBACK_ATTEMPTS = 4
    settings.IMPORT_CALLBACK_RETRY_DELAY = 10
    return settings


def cancelled_with(url: str) -> Import:
    """An import created with `url` as its callback_url, and cancelled: ended."""
    return import_cancel(import_create(callback_url=url))


def callback_of(job: Import) -> dict | None:
    """The `callback` of the import's status body, as a client reads it."""
    job.refresh_from_db()
    return import_body(job)["callback"]


def tries(job: Import, status: str, delivery_id: str, attempts: range) -> list[bool]:
    """callback_deliver for each attempt, as the task's retries would: what each one said."""
    return [callback_deliver(str(job.pk), status, delivery_id, attempt) for attempt in attempts]


def test_an_end_is_delivered_once_signed_and_shown_in_the_status(db, configured):
    # given an ended import with a callback_url on a receiver that answers 204
    with Receiver(answers=[204]) as receiver:
        job = cancelled_with(receiver.url("/hook?run=1"))
        # when the delivery is tried
        again = callback_deliver(str(job.pk), "cancelled", "delivery-1", 1)
    # then it was posted once, signed, with the status body, and is not tried again
    assert again is False
    [request] = receiver.requests
    assert request.path == "/hook?run=1"
    assert request.headers["webhook-id"] == "delivery-1"
    body = Webhook(SECRET).verify(request.body, request.headers)
    assert (body["uuid"], body["status"]) == (str(job.pk), "cancelled")
    assert body["status_url"].endswith(f"/api/v1/imports/{job.pk}/status")
    shown = callback_of(job)
    assert shown["last_attempt_at"]
    assert {key: shown[key] for key in shown if key != "last_attempt_at"} == {
        "state": "delivered",
        "for_status": "cancelled",
        "attempts": 1,
        "last_http_status": 204,
        "error": "",
    }


def test_a_receiver_failing_twice_is_delivered_on_the_third_try(db, configured):
    with Receiver(answers=[500, 500, 204]) as receiver:
        job = cancelled_with(receiver.url())
        # when tried once: 500, to be tried again
        assert tries(job, "cancelled", "delivery-1", range(1, 2)) == [True]
        shown = callback_of(job)
        assert (shown["state"], shown["attempts"], shown["last_http_status"]) == (
            "pending",
            1,
            500,
        )
        assert shown["error"] == "the receiver answered HTTP 500"
        # and twice more
        assert tries(job, "cancelled", "delivery-1", range(2, 4)) == [True, False]
    # then three posts of one delivery, each signed, the third one taken
    assert len(receiver.requests) == 3
    for request in receiver.requests:
        assert request.headers["webhook-id"] == "delivery-1"
        Webhook(SECRET).verify(request.body, request.headers)
    shown = callback_of(job)
    assert (shown["state"], shown["attempts"], shown["last_http_status"], shown["error"]) == (
        "delivered",
        3,
        204,
        "",
    )


def test_a_delivery_failing_every_try_ends_failed(db, configured):
    with Receiver(answers=[503]) as receiver:
        job = cancelled_with(receiver.url())
        assert tries(job, "cancelled", "delivery-1", range(1, 5)) == [True, True, True, False]
    assert len(receiver.requests) == 4
    shown = callback_of(job)
    assert (shown["state"], shown["attempts"], shown["last_http_status"]) == ("failed", 4, 503)
    assert shown["error"] == "the receiver answered HTTP 503; every one of the 4 tries failed"


@pytest.mark.parametrize(
    "answer, again, state, error",
    [
        (302, False, "failed", "the receiver answered with a redirect; redirects are not followed"),
        (
            404,
            False,
            "failed",
            "the receiver refused the delivery with HTTP 404; it is not tried again",
        ),
        (429, True, "pending", "the receiver answered HTTP 429"),
        (408, True, "pending", "the receiver answered HTTP 408"),
        (200, False, "delivered", ""),
    ],
)
def test_each_answer_is_taken_as_it_says(db, configured, answer, again, state, error):
    with Receiver(answers=[answer]) as receiver:
        job = cancelled_with(receiver.url())
        assert callback_deliver(str(job.pk), "cancelled", "delivery-1", 1) is again
    assert [request.path for request in receiver.requests] == ["/hook"]  # no redirect followed
    shown = callback_of(job)
    assert (shown["state"], shown["last_http_status"], shown["error"]) == (state, answer, error)


def test_a_receiver_not_listening_is_tried_again(db, configured):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    job = cancelled_with(f"http://127.0.0.1:{port}/hook")
    assert callback_deliver(str(job.pk), "cancelled", "delivery-1", 1) is True
    shown = callback_of(job)
    assert (shown["state"], shown["attempts"], shown["last_http_status"], shown["error"]) == (
        "pending",
        1,
        None,
        "could not connect to the receiver",
    )


def test_a_host_that_now_resolves_to_an_internal_address_fails_for_good(
    db, configured, monkeypatch
):
    # given a listed name that resolved to a public address when the import was created
    configured.IMPORT_CALLBACK_ALLOWED_HOSTS = ["hooks.example.org"]
    answers = {"hooks.example.org": "93.184.216.34"}

    def getaddrinfo(host, port, *_, **__):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    job = cancelled_with("https://hooks.example.org/hook")
    # when it resolves to a private one at delivery time
    answers["hooks.example.org"] = "10.0.0.1"
    # then nothing is posted, and the delivery failed for good, in the refusal's words
    assert callback_deliver(str(job.pk), "cancelled", "delivery-1", 1) is False
    shown = callback_of(job)
    assert (shown["state"], shown["attempts"], shown["last_http_status"]) == ("failed", 1, None)
    assert shown["error"].startswith("The callback_url's host resolves to a loopback, private")


def test_the_tries_of_an_earlier_delivery_stop_once_a_later_one_began(db, configured):
    with Receiver(answers=[500, 204]) as receiver:
        job = cancelled_with(receiver.url())
        # given an earlier delivery that failed once, and a later one delivered
        assert callback_deliver(str(job.pk), "cancelled", "delivery-1", 1) is True
        assert callback_deliver(str(job.pk), "cancelled", "delivery-2", 1) is False
        # when the earlier one's retry comes
        assert callback_deliver(str(job.pk), "cancelled", "delivery-1", 2) is False
    # then it posted nothing more and recorded nothing
    assert [request.headers["webhook-id"] for request in receiver.requests] == [
        "delivery-1",
        "delivery-2",
    ]
    # and the later one's body showed its own delivery, begun afresh
    assert json.loads(receiver.requests[1].body)["callback"] == {
        "state": "pending",
        "for_status": "cancelled",
        "attempts": 0,
        "last_http_status": None,
        "last_attempt_at": None,
        "error": "",
    }
    job.refresh_from_db()
    assert (job.callback_delivery, job.callback_state, job.callback_attempts) == (
        "delivery-2",
        "delivered",
        1,
    )


def test_a_try_that_ends_after_a_later_delivery_began_records_nothing(db, configured, monkeypatch):
    # given a delivery whose post is answered once a later delivery has begun meanwhile
    job = cancelled_with("http://127.0.0.1:9/hook")

    def answered_late(url, body, delivery_id):
        Import.objects.filter(pk=job.pk).update(
            callback_delivery="delivery-2", callback_state="pending", callback_attempts=0
        )
        return 500

    monkeypatch.setattr(callbacks, "callback_post", answered_late)
    # when its try ends
    again = callback_deliver(str(job.pk), "cancelled", "delivery-1", 1)
    # then it stops, and the later delivery's record stands
    assert again is False
    job.refresh_from_db()
    assert (job.callback_delivery, job.callback_attempts, job.callback_http_status) == (
        "delivery-2",
        0,
        None,
    )


def test_an_end_the_import_has_left_is_not_announced(db, configured):
    with Receiver(answers=[500]) as receiver:
        job = cancelled_with(receiver.url())
        # a first try of an end the import is not in records and posts nothing
        assert callback_deliver(str(job.pk), "error", "delivery-0", 1) is False
        assert callback_of(job) is None
        # a delivery whose import left its end between two tries stops, failed
        assert callback_deliver(str(job.pk), "cancelled", "delivery-1", 1) is True
        Import.objects.filter(pk=job.pk).update(status="error")
        assert callback_deliver(str(job.pk), "cancelled", "delivery-1", 2) is False
    assert len(receiver.requests) == 1
    shown = callback_of(job)
    assert (shown["state"], shown["for_status"], shown["attempts"]) == ("failed", "cancelled", 1)
    assert shown["error"] == "the import is no longer cancelled: this end is not announced any more"


def test_the_url_and_secret_are_never_recorded_or_logged(db, configured, caplog):
    # INFO, the service's LOG_LEVEL by default: urllib3 logs each request line at DEBUG.
    caplog.set_level(logging.INFO)
    with Receiver(answers=[500, 302]) as receiver:
        job = cancelled_with(receiver.url("/hook?token=do-not-show"))
        tries(job, "cancelled", "delivery-1", range(1, 3))
    shown = json.dumps(callback_of(job))
    for secret in ("do-not-show", SECRET, SECRET.removeprefix("whsec_")):
        assert secret not in shown
        assert secret not in caplog.text
    assert "delivery-1" in caplog.text


def test_the_delay_doubles_from_the_setting_up_to_an_hour(configured):
    assert [callback_delay(attempt) for attempt in range(1, 5)] == [10, 20, 40, 80]
    assert callback_delay(20) == 3600


def test_a_try_lost_with_its_worker_is_queued_again_by_the_upkeep(db, configured, monkeypatch):
    # given two ended imports whose delivery is pending after two failed tries: one tried just
    # now (its next try is still to come), one tried two hours ago (its worker died holding it)
    queued: list[tuple] = []
    monkeypatch.setattr(tasks.callback_deliver_task, "delay", lambda *args: queued.append(args))
    now = timezone.now()
    fresh, lost = (cancelled_with("http://127.0.0.1:9/hook") for _ in range(2))
    for job, tried_at in ((fresh, now), (lost, now - timedelta(hours=2))):
        Import.objects.filter(pk=job.pk).update(
            callback_state="pending",
            callback_delivery=f"delivery-{job.pk}",
            callback_for="cancelled",
            callback_attempts=2,
            callback_at=tried_at,
        )
    # when the upkeep runs
    result = tasks.imports_upkeep_task.apply()
    assert result.successful(), result.traceback
    # then only the lost one's third try is queued, with the same delivery id
    assert queued == [(str(lost.pk), "cancelled", f"delivery-{lost.pk}", 3)]
