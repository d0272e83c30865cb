"""What the services announce once it is committed, for whoever acts on it.

The services below imports.tasks cannot import it (the layers in pyproject.toml): they say what
happened, and tasks.py, connected in ImportsConfig.ready(), queues the work that follows.
Each is sent with the import's id once the transaction that made it commits (the functions
below), so that no work is queued for a change that rolled back.
"""

from functools import partial

from django.db import transaction
from django.dispatch import Signal

# An import has work to queue in `phase`: "counting" its manifest, or "importing" its batches
# not yet committed (its report once none is left). Arguments: import_id, phase.
import_work_ready = Signal()

# A batch of an active import is to run again (its last attempt was lost). Arguments:
# import_id, batch_id.
batch_ready = Signal()

# An import ended: `status` is "finished", "error", "cancelled" or "rolled_back". Arguments:
# import_id, status.
import_ended = Signal()


def work_ready_on_commit(import_id, phase: str) -> None:
    """Send import_work_ready once the current transaction commits."""
    transaction.on_commit(
        partial(import_work_ready.send, sender="imports", import_id=import_id, phase=phase)
    )


def batch_ready_on_commit(import_id, batch_id: int) -> None:
    """Send batch_ready once the current transaction commits."""
    transaction.on_commit(
        partial(batch_ready.send, sender="imports", import_id=import_id, batch_id=batch_id)
    )


def ended_on_commit(import_id, status: str) -> None:
    """Send import_ended once the current transaction commits."""
    transaction.on_commit(
        partial(import_ended.send, sender="imports", import_id=import_id, status=status)
    )
