from imports import lifecycle
from imports.errors import BulkImportError, NoWorkerRunning
from imports.management import progress
from imports.management.following import FollowingCommand
from imports.tasks import workers_running


class Command(FollowingCommand):
    help = (
        "Roll back an ended import: delete the documents it created (a document changed since "
        "by a later import, or one it only updated, is kept), in background batches, showing "
        "the progress until it ends. Ctrl-C stops watching; the rollback goes on (it cannot be "
        "stopped halfway)."
    )
    epilog = """\
exit codes:
  0    rolled back
  2    the rollback stopped in error (rolling back again goes on from where it stopped)
  3    refused (the import is pending or active, or already rolled back; another import
       is open; no such import; no worker running)
  130  left at Ctrl-C; the rollback goes on"""

    def add_arguments(self, parser):
        parser.add_argument("uuid", metavar="UUID")
        parser.add_argument(
            "--detach",
            action="store_true",
            help="Start the rollback, print the import's uuid and status URL, and return at once.",
        )
        self.add_every_argument(parser)

    def handle(self, *args, **options) -> None:
        job = self.import_found(options["uuid"])
        try:
            if not workers_running():  # else nothing would delete, and the bar stay at 0
                raise NoWorkerRunning()
            job = lifecycle.import_rollback(job)
        except BulkImportError as error:
            self.refuse(error)
        self.announce(job, "Rolling back import")
        if options["detach"]:
            return
        ended = self.watched(job, options["every"], "the rollback", options.get("stdout"))
        if code := progress.rollback_exit_code(ended):
            raise SystemExit(code)
