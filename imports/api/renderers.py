"""A text/csv renderer, so that `Accept: text/csv` reaches the report view instead of a 406."""

import json

from rest_framework.renderers import BaseRenderer


class CsvRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        # The report view streams its CSV itself and renders its errors as JSON; only
        # framework bodies such as OPTIONS metadata pass through here, as JSON text.
        return b"" if data is None else json.dumps(data).encode()
