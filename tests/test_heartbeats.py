"""Heartbeats: work on an import says it is alive from a thread of its own while it runs.

The thread writes through its own connection, so these tests commit for real
(`transaction=True`), and wait for its beats by polling with a deadline.
"""

from datetime import UTC, datetime

import pytest
from django.db import DatabaseError

from imports import batches, heartbeats
from imports.batches import batch_run
from imports.heartbeats import Heartbeat
from imports.models import Batch, Import

from .waiting import wait_until

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def import_beat_at(job: Import) -> datetime | None:
    return Import.objects.values_list("heartbeat_at", flat=True).get(pk=job.pk)


def batch_beat_at(batch_id: int) -> datetime | None:
    return Batch.objects.values_list("heartbeat_at", flat=True).get(pk=batch_id)


def silenced(job: Import, batch_id: int) -> None:
    """Make the import and the batch look silent since long ago."""
    Import.objects.filter(pk=job.pk).update(heartbeat_at=LONG_AGO)
    Batch.objects.filter(pk=batch_id).update(heartbeat_at=LONG_AGO)


def started(batch_id: int) -> Batch:
    return batches._attempt_start(Batch.objects.get(pk=batch_id), "celery@worker-1")


@pytest.mark.django_db(transaction=True)
def test_a_heartbeat_beats_the_import_and_its_attempt_every_interval(uploaded, settings):
    # given an attempt at a batch, silent so far
    settings.IMPORT_HEARTBEAT_SECONDS = 0.05
    first, *_ = (batch.pk for batch in Batch.objects.filter(import_job=uploaded))
    attempt = started(first)
    silenced(uploaded, first)
    with Heartbeat(uploaded.pk, first, attempt.attempts):
        # when it runs, then the import and the batch beat
        wait_until(lambda: batch_beat_at(first) > LONG_AGO, what="the batch's first beat")
        assert import_beat_at(uploaded) > LONG_AGO
        # and they beat again, not once only
        beat = batch_beat_at(first)
        wait_until(lambda: batch_beat_at(first) > beat, what="the batch's second beat")
        wait_until(
            lambda: import_beat_at(uploaded) > beat, what="the import's second beat", every_s=0.01
        )


@pytest.mark.django_db(transaction=True)
def test_an_earlier_attempts_heartbeat_does_not_speak_for_the_batch(uploaded, settings):
    # given an attempt at a batch taken for lost, and a later attempt at it
    settings.IMPORT_HEARTBEAT_SECONDS = 0.05
    first, *_ = (batch.pk for batch in Batch.objects.filter(import_job=uploaded))
    earlier = started(first)
    Batch.objects.filter(pk=first).update(heartbeat_at=None)  # the recovery found it lost
    later = started(first)
    assert (earlier.attempts, later.attempts) == (1, 2)
    silenced(uploaded, first)
    # when the earlier attempt, still running somewhere, beats twice
    with Heartbeat(uploaded.pk, first, earlier.attempts):
        wait_until(
            lambda: import_beat_at(uploaded) > LONG_AGO,
            what="the import's first beat",
            every_s=0.01,
        )
        beat = import_beat_at(uploaded)
        wait_until(
            lambda: import_beat_at(uploaded) > beat, what="the import's second beat", every_s=0.01
        )
    # then the import heard it, but the batch is still as silent as its later attempt left it
    assert batch_beat_at(first) == LONG_AGO


@pytest.mark.django_db
def test_a_beat_after_the_commit_does_not_make_the_batch_look_running(uploaded):
    # given a batch committed, whose attempt's heartbeat thread beats once more as it stops
    first, *_ = (batch.pk for batch in Batch.objects.filter(import_job=uploaded))
    batch_run(first)
    committed = Batch.objects.get(pk=first)
    # when
    heartbeats.beat(uploaded.pk, first, committed.attempts)
    # then the batch is not taken for running (nor, later, for lost)
    assert batch_beat_at(first) is None


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_thread_ends_with_its_block(uploaded, settings):
    settings.IMPORT_HEARTBEAT_SECONDS = 0.05
    with Heartbeat(uploaded.pk) as heartbeat:
        assert heartbeat._thread.is_alive()
    assert not heartbeat._thread.is_alive()


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_thread_ends_with_its_block_even_on_an_exception(uploaded, settings):
    settings.IMPORT_HEARTBEAT_SECONDS = 0.05
    with pytest.raises(RuntimeError), Heartbeat(uploaded.pk) as heartbeat:
        raise RuntimeError("the batch failed")
    assert not heartbeat._thread.is_alive()


@pytest.mark.django_db(transaction=True)
def test_a_beat_the_database_refused_does_not_stop_the_next_ones(uploaded, settings, monkeypatch):
    # given a database that refuses the first beat (a moment's lock, a dropped connection)
    settings.IMPORT_HEARTBEAT_SECONDS = 0.05
    beat = heartbeats.beat
    tries: list[int] = []

    def refused_once(*args) -> None:
        tries.append(1)
        if len(tries) == 1:
            raise DatabaseError("database is locked")
        beat(*args)

    monkeypatch.setattr(heartbeats, "beat", refused_once)
    Import.objects.filter(pk=uploaded.pk).update(heartbeat_at=LONG_AGO)
    # when the heartbeat runs, then the next beat is recorded all the same
    with Heartbeat(uploaded.pk):
        wait_until(
            lambda: import_beat_at(uploaded) > LONG_AGO,
            what="a beat after the refusal",
            every_s=0.01,
        )
    assert len(tries) >= 2
