"""The Celery app: `celery -A imports worker` starts one more worker.

Also the embedded broker's transport: kombu's filesystem transport, with each message written
whole before a worker can see it (settings.CELERY_BROKER_TRANSPORT names it).
"""

import os
import tempfile
import uuid
from contextlib import suppress
from time import monotonic

from celery import Celery
from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imports.settings")
# A worker does not run Django's system checks as it starts (`manage.py migrate` and `check`
# run them): their URL check loads every view, and with them DRF, drf-spectacular and Django's
# test client, about 20 MiB in each worker process, for pages a worker never serves.
os.environ.setdefault("CELERY_SKIP_CHECKS", "1")

app = Celery("imports")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class FilesystemChannel(filesystem.Channel):
    """kombu's filesystem channel, whose message files appear only once written whole.

    kombu creates a message's file, then writes it; a worker listing the folder in between
    moves the empty file away, fails to decode it and stops ("Unrecoverable error:
    JSONDecodeError", kombu issue #1551), and the message is gone: seen in CI, a batch that
    then waited for the recovery. Here the message is written under a name no queue reads (its
    part after the first dot is not `<queue>.msg`) and renamed into place, which is atomic.
    """

    def _put(self, queue, payload, **kwargs) -> None:
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        body = str_to_bytes(dumps(payload))
        descriptor, partial = tempfile.mkstemp(
            prefix=".", suffix=".partial", dir=self.data_folder_out
        )
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(body)
            os.replace(partial, os.path.join(self.data_folder_out, name))
        except OSError as exc:
            with suppress(OSError):
                os.unlink(partial)
            raise ChannelError("A message could not be added to the broker's folder.") from exc


class FilesystemTransport(filesystem.Transport):
    Channel = FilesystemChannel
