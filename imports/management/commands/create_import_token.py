from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token

READ_PERMISSIONS = ("view_import", "view_document")


class Command(BaseCommand):
    help = (
        "Create USERNAME if needed, grant it the import permissions and print its API token "
        "as the last word of the last line."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--read-only",
            action="store_true",
            help="Only reading imports and documents; no creating, uploading or cancelling.",
        )

    def handle(self, username: str, read_only: bool, **options) -> None:
        user, _ = get_user_model().objects.get_or_create(username=username)
        granted = Permission.objects.filter(
            content_type__app_label="imports",
            codename__in=READ_PERMISSIONS if read_only else (*READ_PERMISSIONS, "run_import"),
        )
        if read_only:
            user.user_permissions.remove(
                *Permission.objects.filter(content_type__app_label="imports", codename="run_import")
            )
        user.user_permissions.add(*granted)
        token, _ = Token.objects.get_or_create(user=user)
        access = "read-only" if read_only else "read and run imports"
        self.stdout.write(f"API token for {username} ({access}): {token.key}")
