"""Rollback of an ended import: the documents it created deleted, one batch per transaction.

(Being written: issue 12.)
"""

from collections.abc import Iterator

from .models import Import


def batch_rollback(batch_id: int) -> None:
    """Roll back the documents of one committed batch's imported rows, in one transaction."""
    raise NotImplementedError


def rollback_finish(import_id) -> None:
    """End a rollback none of whose batches is left: the import is rolled back."""
    raise NotImplementedError


def rollback_report_lines(job: Import) -> Iterator[str]:
    """The rollback report, as CSV lines."""
    raise NotImplementedError
