from imports.management import progress
from imports.management.following import FollowingCommand, report_write


class Command(FollowingCommand):
    help = (
        "Show the progress of an import, whoever started it (this command or the API), until "
        "it ends; then write its report to --report. Ctrl-C stops watching; the import goes on."
    )

    def add_arguments(self, parser):
        parser.add_argument("uuid", metavar="UUID")
        parser.add_argument(
            "--report", metavar="OUT.csv", help="Write the import's report here when it ends."
        )
        self.add_every_argument(parser)

    def handle(self, *args, **options) -> None:
        job = self.import_found(options["uuid"])
        ended = self.watched(job, options["every"], "the import", options.get("stdout"))
        if options["report"]:
            report_write(ended, options["report"], self.stdout.write)
        if code := progress.exit_code(ended):
            raise SystemExit(code)
