"""A text/csv renderer, so that `Accept: text/csv` reaches the report view instead of a 406."""

import json

from rest_framework.renderers import BaseRenderer


class CsvRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        # The report itself is streamed by the view; only error bodies pass through here.
        return json.dumps(data).encode() if data is not None else b""
