"""Completion callbacks: each end of an import posted, signed, to its callback_url.

Each end (finished, error, cancelled, rolled back) is one delivery, with an id of its own that
its tries keep (the `webhook-id` a receiver can tell a repeat by), tried by
imports.tasks.callback_deliver_task until the receiver answers 2xx, refuses it for good, or
IMPORT_CALLBACK_ATTEMPTS tries failed. The Import keeps the outcome of the last delivery
(callback_*), which the status body shows.

Every write is conditional on the import's callback_delivery still being this delivery's id, so
that the late try of an earlier end never overwrites what a later one recorded: it stops
instead. A delivery also stops once the import has left the end it announces (resumed after an
error, say): its body, always read afresh, would no longer say what it announces.

What is recorded and logged never holds the URL (its query may carry a token), the secret or an
exception's text: plain words only.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models.functions import Coalesce
from django.utils import timezone

from .errors import CallbackRefused
from .models import CallbackState, Import
from .webhooks import CallbackUnreachable, callback_post

logger = logging.getLogger(__name__)

MAX_DELAY_S = 3600
# Answers that say "not now": the same body may be welcome later.
RETRIED_STATUSES = {408, 425, 429}
ERROR_MAX_LENGTH = Import._meta.get_field("callback_error").max_length


def callback_deliver(import_id, status: str, delivery_id: str, attempt: int) -> bool:
    """Try once to deliver the end `status` of the import; whether to try again later.

    The first try (attempt 1) makes this delivery the import's last one, so long as the import
    is still `status`; a later try goes on only while it still is the last one.
    """
    job = _delivery_start(import_id, status, delivery_id, attempt)
    if job is None:
        return False
    if job.status != status:
        _record(
            job.pk,
            delivery_id,
            callback_state=CallbackState.FAILED,
            callback_error=f"the import is no longer {status}: this end is not announced any more",
        )
        return False
    try:
        # Imported here, not at the top: the body is DRF's serializers, which a worker would
        # otherwise load (with DRF and its test client, about 20 MiB) to never send a callback.
        from .outputs import import_body_json

        http_status = callback_post(job.callback_url, import_body_json(job), delivery_id)
    except CallbackRefused as refused:
        # The host now resolves to an address not allowed, or the settings changed: for good.
        return _tried(job.pk, delivery_id, attempt, None, refused.detail, retry=False)
    except CallbackUnreachable as unreachable:
        return _tried(job.pk, delivery_id, attempt, None, str(unreachable), retry=True)
    if 200 <= http_status < 300:
        return _tried(job.pk, delivery_id, attempt, http_status, "", retry=False)
    if 300 <= http_status < 400:
        words = "the receiver answered with a redirect; redirects are not followed"
        return _tried(job.pk, delivery_id, attempt, http_status, words, retry=False)
    if http_status >= 500 or http_status in RETRIED_STATUSES:
        words = f"the receiver answered HTTP {http_status}"
        return _tried(job.pk, delivery_id, attempt, http_status, words, retry=True)
    words = f"the receiver refused the delivery with HTTP {http_status}; it is not tried again"
    return _tried(job.pk, delivery_id, attempt, http_status, words, retry=False)


def callback_delay(attempt: int) -> float:
    """Seconds to wait after the failed try number `attempt` (1 for the first):
    IMPORT_CALLBACK_RETRY_DELAY, doubling with each try, at most an hour."""
    return min(settings.IMPORT_CALLBACK_RETRY_DELAY * 2 ** (attempt - 1), MAX_DELAY_S)


def callbacks_stuck(now: datetime) -> list[tuple[str, str, str, int]]:
    """Deliveries still pending well after their next try was due: the worker holding the try
    died (its message went with it). Each as (import id, status, delivery id, the next try's
    number), for the upkeep to queue again; a try that turns out not to be lost after all is a
    repeat the receiver knows by its webhook-id."""
    pending = Import.objects.filter(callback_state=CallbackState.PENDING).exclude(
        callback_delivery=""
    )
    stuck = []
    for import_id, status, delivery_id, attempts, tried_at in pending.values_list(
        "pk",
        "callback_for",
        "callback_delivery",
        "callback_attempts",
        Coalesce("callback_at", "rollback_finished_at", "finished_at"),
    ):
        late_after = (callback_delay(attempts) if attempts else 0) + settings.IMPORT_UPKEEP_EVERY
        if tried_at is None or tried_at < now - timedelta(seconds=late_after):
            stuck.append((str(import_id), status, delivery_id, attempts + 1))
    return stuck


def _delivery_start(import_id, status: str, delivery_id: str, attempt: int) -> Import | None:
    """The import for this try, or None when the delivery is to stop unrecorded: the import is
    gone or has no callback_url, the first try finds the import no longer `status`, or a later
    end's delivery replaced this one."""
    imports = Import.objects.filter(pk=import_id).exclude(callback_url="")
    if attempt == 1:
        started = imports.filter(status=status).update(
            callback_state=CallbackState.PENDING,
            callback_delivery=delivery_id,
            callback_for=status,
            callback_attempts=0,
            callback_http_status=None,
            callback_at=None,
            callback_error="",
        )
        if not started:
            return None
    elif attempt > settings.IMPORT_CALLBACK_ATTEMPTS:
        return None  # a try beyond the bound (the setting was lowered meanwhile): stop
    return imports.filter(callback_delivery=delivery_id).first()


def _tried(
    import_id, delivery_id: str, attempt: int, http_status: int | None, words: str, *, retry: bool
) -> bool:
    """Record try `attempt` and what came of it; whether to try again."""
    delivered = http_status is not None and 200 <= http_status < 300
    again = retry and attempt < settings.IMPORT_CALLBACK_ATTEMPTS
    if retry and not again:
        words = f"{words}; every one of the {attempt} tries failed"
    if delivered:
        state = CallbackState.DELIVERED
    else:
        state = CallbackState.PENDING if again else CallbackState.FAILED
    recorded = _record(
        import_id,
        delivery_id,
        callback_state=state,
        callback_attempts=attempt,
        callback_http_status=http_status,
        callback_at=timezone.now(),
        callback_error=words[:ERROR_MAX_LENGTH],
    )
    if not recorded:
        return False  # a later end's delivery replaced this one meanwhile
    logger.info(
        "callback %s of import %s, try %d: %s%s",
        delivery_id,
        import_id,
        attempt,
        state,
        f" (HTTP {http_status})" if http_status is not None else f" ({words})",
    )
    return again


def _record(import_id, delivery_id: str, **fields) -> bool:
    """Write `fields` if this delivery is still the import's last one; whether it was."""
    return bool(Import.objects.filter(pk=import_id, callback_delivery=delivery_id).update(**fields))
