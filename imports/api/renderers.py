"""A text/csv renderer, so that `Accept: text/csv` reaches the report view instead of a 406."""

from rest_framework.renderers import BaseRenderer


class CsvRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        # The report view streams its CSV itself and renders its errors as JSON.
        raise NotImplementedError("the report is streamed, not rendered")
