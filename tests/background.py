"""Background work an API call or a service queues, run in the test's process as a worker would.

pytest-django's transaction never commits, so work queued on commit never runs by itself: a test
runs it here, after checking that the call itself did not do it.
"""

from imports import tasks
from imports.models import Import


def report_task_run(job: Import) -> Import:
    """Run the report task an import that ended in error or was cancelled queued; return it."""
    result = tasks.import_report_task.apply(args=(str(job.pk),))
    assert result.successful(), result.traceback
    job.refresh_from_db()
    return job
