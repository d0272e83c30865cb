"""The embedded broker's transport (imports.celery.FilesystemTransport): a worker never sees a
message before it is written whole."""

import os

import pytest
from kombu import Connection
from kombu.transport.virtual import Empty

from imports import celery


@pytest.fixture
def channel(tmp_path):
    folders = {name: tmp_path / name for name in ("queue", "processed", "control")}
    for folder in folders.values():
        folder.mkdir()
    connection = Connection(
        "filesystem://",
        transport="imports.celery:FilesystemTransport",
        transport_options={
            "data_folder_in": str(folders["queue"]),
            "data_folder_out": str(folders["queue"]),
            "processed_folder": str(folders["processed"]),
            "control_folder": str(folders["control"]),
        },
    )
    with connection:
        yield connection.default_channel


def test_a_message_being_written_is_not_seen_by_a_worker(channel, monkeypatch):
    # given a worker that looks at the queue at the worst moment: the message's bytes are
    # written, and it is not yet in place
    seen_meanwhile = []
    replace = os.replace

    def worker_looks_then_replace(source, target):
        try:
            seen_meanwhile.append(channel._get("batches"))
        except Empty:
            seen_meanwhile.append("nothing")
        replace(source, target)

    monkeypatch.setattr(celery.os, "replace", worker_looks_then_replace)
    # when a message is sent
    channel._put("batches", {"body": "batch 12"})
    # then the worker saw nothing then, and the whole message afterwards
    assert seen_meanwhile == ["nothing"]
    assert channel._get("batches") == {"body": "batch 12"}
    assert os.listdir(channel.data_folder_in) == []


def test_a_message_that_cannot_be_written_leaves_no_file(channel, monkeypatch):
    def full(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(celery.os, "replace", full)
    with pytest.raises(Exception, match="could not be added") as raised:
        channel._put("batches", {"body": "batch 12"})
    assert str(channel.data_folder_in) not in str(raised.value)
    assert os.listdir(channel.data_folder_in) == []
