"""What the services announce once it is committed, for whoever acts on it.

The services below imports.tasks cannot import it (the layers in pyproject.toml): they say what
happened, and tasks.py, connected in ImportsConfig.ready(), queues the work that follows.
Each is sent with `sender=Import` and the import's id, from `transaction.on_commit`, so that no
work is queued for a change that rolled back.
"""

from django.dispatch import Signal

# An import has work to queue in `phase`: "counting" its manifest, or "importing" its batches
# not yet committed (its report once none is left). Arguments: import_id, phase.
import_work_ready = Signal()

# An import ended: `status` is "finished", "error" or "cancelled". Arguments: import_id, status.
import_ended = Signal()
