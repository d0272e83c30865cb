"""Celery tasks: thin wrappers that take ids; every decision lives in batches and lifecycle.

Any exception a task cannot handle ends its import in `error` (with the exception's kind, never
its text, which may hold a path), so no crash leaves an import active forever.
"""

import logging

from celery import Task, shared_task

logger = logging.getLogger(__name__)


class ImportTask(Task):
    """A task whose first argument is an import id; failure ends that import in `error`."""

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        from .lifecycle import import_fail

        import_id = args[0]
        logger.error("task %s failed for import %s", self.name, import_id, exc_info=exc)
        import_fail(import_id, f"{self.description} failed ({type(exc).__name__}).")


@shared_task(base=ImportTask, description="counting the manifest's rows")
def import_split_task(import_id: str) -> None:
    from .batches import import_split

    import_split(import_id)


@shared_task(base=ImportTask, description="a batch of rows")
def batch_run_task(import_id: str, batch_id: int) -> None:
    from .batches import batch_run

    batch_run(batch_id)


@shared_task(base=ImportTask, description="writing the report")
def import_finish_task(import_id: str) -> None:
    from .lifecycle import import_finish

    import_finish(import_id)
