"""Where the archive's files come from: a directory (filesystem) or an S3 bucket (s3).

Each source resolves a row's path safely, tells its size and opens it (base.Source). Problems
are worded with the row's own `file_path`, never with where the source lives.
"""

from django.conf import settings

from .base import Source
from .filesystem import FilesystemSource


def source_from_settings() -> Source:
    """The source IMPORT_SOURCE names: `s3://bucket/prefix`, or else a directory."""
    location = str(settings.IMPORT_SOURCE)
    if location.startswith("s3://"):
        # Imported only here, not to dodge a cycle: boto3 costs every process about 15 MB, and
        # most never use S3.
        from .s3 import S3Source

        return S3Source.from_url(location)
    return FilesystemSource(location)
