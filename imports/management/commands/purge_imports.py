from django.conf import settings
from django.core.management.base import BaseCommand

from imports.lifecycle import imports_purge


class Command(BaseCommand):
    help = (
        "Remove imports that ended more than IMPORT_RETENTION_DAYS ago, with their manifest and "
        "report files; their documents stay. The upkeep task does it on Celery beat's schedule; "
        "this command does it now, or with another number of days."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help="Keep imports that ended within this many days (default: IMPORT_RETENTION_DAYS).",
        )

    def handle(self, days: int | None, **options) -> None:
        days = settings.IMPORT_RETENTION_DAYS if days is None else days
        purged = imports_purge(days)
        self.stdout.write(f"Removed {purged} import(s) that ended more than {days} day(s) ago.")
