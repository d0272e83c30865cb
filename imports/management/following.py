"""Following an import from a command: polling it, showing its progress, writing its report.

Shared by import_manifest, import_watch and import_rollback. The import is read from the
database (selectors.import_get) about twice a second, the way the status endpoint reads it; what
is shown is shaped in imports.management.progress.
"""

import shutil
import signal
import sys
import time
from collections.abc import Callable
from typing import NoReturn, TextIO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, DjangoHelpFormatter
from django.http import Http404
from django.utils import timezone
from tqdm import tqdm

from imports.errors import BulkImportError
from imports.models import Import
from imports.outputs import import_link
from imports.selectors import import_get

from . import progress

POLL_SECONDS = 0.5
TICK_SECONDS = 0.1
# A cancelled import's report, or one that ended in error, is written by a task a moment later.
REPORT_WAIT_SECONDS = 60

ENDS = """\
exit codes:
  0    finished, and every row imported or skipped (a dry run: every row valid)
  1    finished, and some rows failed (the report says why)
  2    ended in error, cancelled, or rolled back
"""


class HelpFormatter(DjangoHelpFormatter):
    """Django's (its own options last), keeping the lines of a text written in lines (the exit
    codes) as they are."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" not in text:
            return super()._fill_text(text, width, indent)
        return "".join(indent + line for line in text.splitlines(keepends=True))


class FollowingCommand(BaseCommand):
    """A command that follows an import to its end; says its exit codes in --help."""

    epilog = ENDS + "  3    no such import\n  130  stopped watching at Ctrl-C; the import goes on"

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(
            prog_name, subcommand, formatter_class=HelpFormatter, **kwargs
        )
        parser.epilog = self.epilog
        refused = parser.error

        def usage_error(message: str) -> None:
            # argparse exits 2, which here says an import ended badly: a wrong command line is
            # refused before anything started.
            if parser.called_from_command_line:
                parser.print_usage(sys.stderr)
                parser.exit(progress.EXIT_REFUSED, f"{parser.prog}: error: {message}\n")
            refused(message)

        parser.error = usage_error
        return parser

    def add_every_argument(self, parser) -> None:
        parser.add_argument(
            "--every",
            type=float,
            default=5.0,
            metavar="SECONDS",
            help="When the output is not a terminal: print a line every SECONDS (default 5), "
            "and at each phase change and at the end.",
        )

    def refuse(self, error: BulkImportError) -> NoReturn:
        """Say why, as the API would (its code, detail and extra), and exit 3."""
        self.refuse_with(error.code, error.detail, error.extra)

    def refuse_with(self, code: str, detail: str, extra: dict | None = None) -> NoReturn:
        self.stderr.write(f"Refused ({code}): {detail}")
        for name, value in (extra or {}).items():
            if value in ("", [], (), None):
                continue
            shown = ", ".join(map(str, value)) if isinstance(value, list | tuple) else value
            self.stderr.write(f"  {name}: {shown}")
        raise SystemExit(progress.EXIT_REFUSED)

    def import_found(self, uuid: str) -> Import:
        """The import, or a refusal (exit 3) when there is none with this uuid."""
        try:
            return import_get(uuid)
        except (Http404, ValidationError):
            self.refuse_with("not_found", f"There is no import {uuid}.")

    def watched(self, job: Import, every: float, what: str, stdout: TextIO | None) -> Import:
        """The import once it has ended, its progress shown meanwhile; Ctrl-C stops watching
        (exit 130) and `what` (the import, the rollback) goes on."""
        try:
            ended = follow(job.uuid, display_for(stdout or sys.stdout, every))
        except KeyboardInterrupt:
            self.stderr.write(
                f"\nStopped watching; {what} goes on. Watch it again with "
                f"`python manage.py import_watch {job.uuid}`."
            )
            raise SystemExit(progress.EXIT_INTERRUPTED) from None
        self.stdout.write(progress.ending(ended))
        return ended

    def announce(self, job: Import, what: str) -> None:
        """The import's uuid and status URL, and how to follow it from elsewhere."""
        self.stdout.write(f"{what} {job.uuid}")
        self.stdout.write(f"Status: {status_url(job)}")
        self.stdout.write(f"Follow it: python manage.py import_watch {job.uuid}")


def status_url(job: Import) -> str:
    return import_link(settings.PUBLIC_URL, "import-status", job.uuid)


class LineDisplay:
    """For a terminal that is not a TTY (CI, nohup): one plain line every `every` seconds, one
    at each change of phase, and one at the end."""

    def __init__(self, out: TextIO, every: float) -> None:
        self.out = out
        self.every = every
        self.shown_at: float | None = None
        self.shown_stage = ""

    def show(self, job: Import) -> None:
        stage = progress.stage(job)
        due = self.shown_at is None or time.monotonic() - self.shown_at >= self.every
        if due or stage != self.shown_stage or not job.is_open:
            self.write(progress.progress_line(job, timezone.now()))
            self.shown_at = time.monotonic()
            self.shown_stage = stage

    def write(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def close(self) -> None:
        pass


class BarDisplay:
    """On a TTY: a live bar, redrawn at each poll with the import's own figures."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.bar: tqdm | None = None

    def show(self, job: Import) -> None:
        label, done, total, postfix = progress.bar_parts(job, timezone.now())
        if self.bar is None:  # made with its first figures, so that no empty bar is drawn
            self.bar = tqdm(
                file=self.out,
                bar_format=progress.BAR_FORMAT,
                dynamic_ncols=True,
                desc=label,
                initial=done,
                total=total,
                postfix=postfix,
            )
            return
        self.bar.total = total
        self.bar.n = done
        self.bar.set_description_str(label, refresh=False)
        self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.refresh()

    def write(self, text: str) -> None:
        if self.bar is None:
            self.out.write(text + "\n")
        else:
            self.bar.write(text, file=self.out)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def display_for(out: TextIO, every: float) -> LineDisplay | BarDisplay:
    return BarDisplay(out) if out.isatty() else LineDisplay(out, every)


def follow(
    uuid, display: LineDisplay | BarDisplay, each: Callable[[Import], None] | None = None
) -> Import:
    """Show the import's progress until it has ended; the import as it ended.

    `each` is called with the import as last read every TICK_SECONDS (import_manifest cancels
    from there), so that it acts at once rather than at the next poll.
    """
    try:
        while True:
            job = import_get(uuid)
            display.show(job)
            if not job.is_open:
                return job
            next_poll = time.monotonic() + POLL_SECONDS
            while time.monotonic() < next_poll:
                if each:
                    each(job)
                time.sleep(TICK_SECONDS)
    finally:
        display.close()


def report_write(job: Import, path: str, write: Callable[[str], None]) -> bool:
    """Copy the ended import's report to `path`, waiting a while for one being written; say so
    if there is none yet. Whether it was written."""
    if not job.manifest:
        write("No report: the import never received a manifest.")
        return False
    deadline = time.monotonic() + REPORT_WAIT_SECONDS
    if not job.report and not job.report_error:
        write("Waiting for the report to be written...")
    while not job.report and not job.report_error and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        job = import_get(job.uuid)
    if not job.report:
        write(
            "The report is not written yet; get it later with "
            f"`python manage.py import_watch {job.uuid} --report {path}`"
            + (f" ({job.report_error})." if job.report_error else ".")
        )
        return False
    try:
        with job.report.open("rb") as stored, open(path, "wb") as copy:
            shutil.copyfileobj(stored, copy)
    except OSError:
        write(
            f"The report could not be written to {path}: check that its folder exists and "
            "can be written to."
        )
        return False
    write(f"Report written to {path}")
    return True


class Interrupts:
    """Ctrl-C while import_manifest follows an import. The first is counted, for the loop to
    act on (it cancels the import, then sets `leave_now`); once `leave_now` is set, the next
    leaves at once (LeftAtOnce). The cancel is sent from the loop, not from here, as a signal
    may arrive in the middle of a query."""

    def __init__(self) -> None:
        self.count = 0
        self.leave_now = False
        self.previous = None

    def __enter__(self) -> "Interrupts":
        self.previous = signal.signal(signal.SIGINT, self._received)
        return self

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGINT, self.previous)

    def _received(self, signum, frame) -> None:
        self.count += 1
        if self.leave_now:
            raise LeftAtOnce()


class LeftAtOnce(Exception):
    """The operator pressed Ctrl-C a second time: stop following now."""
