import os
import sys
from argparse import ArgumentTypeError
from contextlib import suppress
from pathlib import Path

from django.conf import settings

from imports import lifecycle
from imports.errors import (
    BulkImportError,
    ImportAlreadyEnded,
    ManifestInvalid,
    NoWorkerRunning,
    SourceNotAllowed,
)
from imports.management import progress
from imports.management.following import (
    ENDS,
    FollowingCommand,
    Interrupts,
    LeftAtOnce,
    display_for,
    follow,
    report_write,
)
from imports.models import Import, OnConflict
from imports.tasks import workers_running


class Command(FollowingCommand):
    help = (
        "Import MANIFEST.csv as the API would (the same lock, checks and Celery batches), "
        "showing its progress until it ends, then write its report to --report. Ctrl-C cancels "
        "the import cleanly; a second Ctrl-C leaves at once, the import going on."
    )

    epilog = ENDS + (
        "  3    refused before it started (another import open, a bad manifest, no worker\n"
        "       running)\n"
        "  130  left at Ctrl-C before the import started (nothing imported), or at a second\n"
        "       Ctrl-C while it is being cancelled (the cancel goes on)"
    )

    def add_arguments(self, parser):
        parser.add_argument("manifest", metavar="MANIFEST.csv")
        parser.add_argument(
            "--source",
            metavar="DIR|s3://bucket/prefix",
            help="Where the manifest's file paths resolve. Accepted only when it names the "
            "service's configured IMPORT_SOURCE: the source is a setting of the service.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Check every row; store nothing."
        )
        parser.add_argument(
            "--on-conflict",
            choices=OnConflict.values,
            default=OnConflict.FAIL,
            help="What to do with a row whose identifier is already a document (default: fail).",
        )
        parser.add_argument(
            "--batch-size",
            type=batch_size,
            metavar="N",
            help="Rows per batch, 1 to 10000 (default: IMPORT_BATCH_SIZE).",
        )
        parser.add_argument(
            "--report", metavar="OUT.csv", help="Write the import's report here when it ends."
        )
        parser.add_argument(
            "--detach",
            action="store_true",
            help="Start the import, print its uuid and status URL, and return at once.",
        )
        self.add_every_argument(parser)

    def handle(self, *args, **options) -> None:
        if options["source"] is not None and not same_source(options["source"]):
            self.refuse(
                SourceNotAllowed(
                    "This service reads files only from its configured source (IMPORT_SOURCE); "
                    "--source must name that one. To import from another place, set "
                    "IMPORT_SOURCE for the web server and the workers, and restart them."
                )
            )
        path = Path(options["manifest"])
        if not path.is_file() or not os.access(path, os.R_OK):
            self.refuse(ManifestInvalid(f"{path} is not a file this command can read."))
        try:
            with path.open("rb") as manifest:
                job = self.start(manifest, options)
        except BulkImportError as error:
            self.refuse(error)
        except KeyboardInterrupt:
            self.stderr.write("\nInterrupted before the import started: nothing was imported.")
            raise SystemExit(progress.EXIT_INTERRUPTED) from None
        if options["detach"]:
            self.announce(job, "Started import")
            return
        self.announce(job, "Importing")
        self.follow_to_end(job, options)

    def start(self, manifest, options) -> Import:
        """Open the import and upload the manifest, as the API's create and upload do."""
        if not workers_running():
            raise NoWorkerRunning()
        # Refused, or Ctrl-C while the manifest is read and stored: the import is cancelled.
        return lifecycle.import_start(
            lambda: lifecycle.Upload(manifest=manifest),
            dry_run=options["dry_run"],
            on_conflict=options["on_conflict"],
            batch_size=options["batch_size"],
        )

    def follow_to_end(self, job: Import, options) -> None:
        out = options.get("stdout") or sys.stdout
        display = display_for(out, options["every"])
        ended = None

        def cancel_on_interrupt(current: Import) -> None:
            if not interrupts.count or interrupts.leave_now:
                return
            with suppress(ImportAlreadyEnded):  # it ended by itself meanwhile
                lifecycle.import_cancel(current)
            interrupts.leave_now = True
            if interrupts.count > 1:  # pressed twice before the cancel was sent
                raise LeftAtOnce()
            display.write(
                "Ctrl-C: the import is cancelled; the rows not yet processed stay "
                "not_processed. Ctrl-C again to leave without waiting for its end."
            )

        try:
            with Interrupts() as interrupts:
                ended = follow(job.uuid, display, each=cancel_on_interrupt)
                interrupts.leave_now = True
                self.stdout.write(progress.ending(ended))
                if options["report"]:
                    report_write(ended, options["report"], self.stdout.write)
        except LeftAtOnce:
            if ended is None:
                said = "Left at once; the import was asked to cancel."
            else:
                said = f"Left at once; the import ended ({ended.status}), its report not written."
            how = f"`python manage.py import_watch {job.uuid}"
            how += f" --report {options['report']}`" if options["report"] else "`"
            self.stderr.write(f"\n{said} Follow it with {how}.")
            raise SystemExit(progress.EXIT_INTERRUPTED) from None
        if code := progress.exit_code(ended):
            raise SystemExit(code)


def batch_size(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise ArgumentTypeError("must be a whole number from 1 to 10000")
    return int(text)


def same_source(source: str) -> bool:
    """Whether `source` names the configured IMPORT_SOURCE (a folder however it is spelled,
    an S3 URL with or without its trailing slash)."""
    configured = str(settings.IMPORT_SOURCE)
    if configured.startswith("s3://") or source.startswith("s3://"):
        return source.rstrip("/") == configured.rstrip("/")
    return Path(source).resolve() == Path(configured).resolve()
