"""Upload parsers: the manifest is copied to a temporary file in chunks, never held in memory."""

import tempfile

from django.conf import settings
from rest_framework.parsers import BaseParser

from ..errors import ManifestTooLarge

CHUNK_BYTES = 1024 * 1024


def too_large() -> ManifestTooLarge:
    return ManifestTooLarge(
        f"The manifest is larger than the {settings.IMPORT_MAX_MANIFEST_BYTES} bytes allowed."
    )


class CsvBodyParser(BaseParser):
    """A raw `text/csv` body (`curl --data-binary @m.csv`), spooled to a temporary file."""

    media_type = "text/csv"

    def parse(self, stream, media_type=None, parser_context=None):
        spooled = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the view, closed with the request
        size = 0
        while stream is not None and (chunk := stream.read(CHUNK_BYTES)):
            size += len(chunk)
            if size > settings.IMPORT_MAX_MANIFEST_BYTES:
                spooled.close()
                raise too_large()
            spooled.write(chunk)
        spooled.seek(0)
        return spooled
