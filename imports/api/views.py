"""HTTP adapters: each view checks input, calls one service, and shapes the answer."""

from functools import partial

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import lifecycle, selectors
from ..inputs import ImportCreateInput
from ..models import Import, ImportStatus
from ..outputs import (
    ImportOutput,
    document_file_response,
    report_response,
    rollback_report_response,
)
from .auth import CanReadDocuments, CanRunImports
from .renderers import CsvRenderer
from .serializers import DocumentOutput, ErrorOutput, ManifestUploadInput
from .uploads import DIGEST_HEADERS, manifest_upload


def _errors(*codes: int) -> dict:
    return {code: ErrorOutput for code in codes}


def _base_url(request) -> str:
    """The URL the request came by, for the status body's links."""
    return request.build_absolute_uri("/")


class ImportApi(APIView):
    permission_classes = [CanRunImports]

    def get_import(self, uuid) -> Import:
        return selectors.import_get(uuid)

    def respond(self, job: Import, status: int = 200) -> Response:
        body = ImportOutput(job, context={"base_url": _base_url(self.request)}).data
        return Response(body, status=status)


# An import's CSV download; its errors are JSON even for a client that asked for CSV. (Not a
# docstring: drf-spectacular would make it the description of every download it serves.)
class ImportCsvApi(ImportApi):
    renderer_classes = [JSONRenderer, CsvRenderer]

    def handle_exception(self, exc):
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return super().handle_exception(exc)


class ImportCreateApi(ImportApi):
    @extend_schema(
        request=ImportCreateInput,
        responses={201: ImportOutput, **_errors(400, 401, 403, 409)},
        summary="Create an import (only one may be pending or active)",
    )
    def post(self, request):
        options = ImportCreateInput(data=request.data)
        options.is_valid(raise_exception=True)
        job = lifecycle.import_create(user=request.user, **options.validated_data)
        return self.respond(job, status=201)


UPLOAD_PARAMETERS = [
    OpenApiParameter(
        "sha256",
        str,
        description="The manifest's SHA-256 (64 hex digits): a manifest that differs is refused "
        "with 400 manifest_digest_mismatch and nothing is stored.",
    ),
    *(
        OpenApiParameter(
            header,
            str,
            OpenApiParameter.HEADER,
            description="RFC 9530 digest of the body as sent, e.g. `sha-256=:<base64>:` "
            "(sha-256, sha-512): a body that differs is refused with 400 "
            "manifest_digest_mismatch and nothing is stored.",
        )
        for header in DIGEST_HEADERS
    ),
]


class ImportUploadApi(ImportApi):
    """The manifest as the raw body (POST, or PUT as `curl -T m.csv` sends it) or multipart."""

    @extend_schema(
        request={"text/csv": OpenApiTypes.BINARY, "multipart/form-data": ManifestUploadInput},
        parameters=UPLOAD_PARAMETERS,
        responses={202: ImportOutput, **_errors(400, 401, 403, 404, 409, 413, 415)},
        summary="Upload the manifest; rows are then imported in the background",
    )
    def post(self, request, uuid):
        job = lifecycle.import_upload(self.get_import(uuid), partial(manifest_upload, request))
        return self.respond(job, status=202)

    @extend_schema(
        request={"text/csv": OpenApiTypes.BINARY},
        parameters=UPLOAD_PARAMETERS,
        responses={202: ImportOutput, **_errors(400, 401, 403, 404, 409, 413, 415)},
        summary="Upload the manifest as the raw body (curl -T)",
    )
    def put(self, request, uuid):
        return self.post(request, uuid)


class ImportStatusApi(ImportApi):
    @extend_schema(responses={200: ImportOutput, **_errors(401, 403, 404)}, summary="Progress")
    def get(self, request, uuid):
        return self.respond(self.get_import(uuid))


class ImportCancelApi(ImportApi):
    @extend_schema(
        request=None,
        responses={200: ImportOutput, **_errors(401, 403, 404, 409)},
        summary="Cancel a pending or active import",
    )
    def post(self, request, uuid):
        return self.respond(lifecycle.import_cancel(self.get_import(uuid)))


class ImportResumeApi(ImportApi):
    @extend_schema(
        request=None,
        responses={202: ImportOutput, **_errors(401, 403, 404, 409)},
        summary="Resume an import that ended in error, or a stale active one",
    )
    def post(self, request, uuid):
        return self.respond(lifecycle.import_resume(self.get_import(uuid)), status=202)


class ImportRollbackApi(ImportApi):
    @extend_schema(
        request=None,
        responses={
            202: OpenApiResponse(ImportOutput, description="The rollback runs in the background."),
            200: OpenApiResponse(
                ImportOutput, description="Nothing to delete: the import is rolled back already."
            ),
            **_errors(401, 403, 404, 409),
        },
        summary="Roll back an ended import: delete the documents it created, unless changed since",
    )
    def post(self, request, uuid):
        job = lifecycle.import_rollback(self.get_import(uuid))
        return self.respond(job, status=200 if job.status == ImportStatus.ROLLED_BACK else 202)


class ImportRollbackReportApi(ImportCsvApi):
    @extend_schema(
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="One line per imported row: its identifier, the document's uuid, "
                "`deleted` or `kept`, and why it was kept.",
            ),
            **_errors(401, 403, 404, 409),
        },
        summary="What the rollback did with each document",
    )
    def get(self, request, uuid):
        job = self.get_import(uuid)
        return rollback_report_response(job)


class ImportReportApi(ImportCsvApi):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "rows",
                str,
                enum=["failed"],
                description="'failed': only failed and not-processed rows, as a manifest to fix.",
            )
        ],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY, description="The report CSV."),
            **_errors(401, 403, 404, 409),
        },
        summary="Download the report",
    )
    def get(self, request, uuid):
        job = self.get_import(uuid)
        # or why the report cannot be had yet
        return report_response(job, failed_only=request.query_params.get("rows") == "failed")


class ImportListApi(generics.ListAPIView):
    permission_classes = [CanRunImports]
    serializer_class = ImportOutput

    @extend_schema(
        responses={200: ImportOutput(many=True), **_errors(401, 403, 404)},
        summary="List imports, newest first",
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return selectors.imports_list()

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "base_url": _base_url(self.request)}


class ImportDetailApi(ImportApi):
    @extend_schema(responses={200: ImportOutput, **_errors(401, 403, 404)}, summary="An import")
    def get(self, request, uuid):
        return self.respond(self.get_import(uuid))

    @extend_schema(
        responses={204: None, **_errors(401, 403, 404, 409)},
        summary="Remove an ended import with its manifest and report (documents stay)",
    )
    def delete(self, request, uuid):
        lifecycle.import_delete(self.get_import(uuid))
        return Response(status=204)


class DocumentListApi(generics.ListAPIView):
    permission_classes = [CanReadDocuments]
    serializer_class = DocumentOutput

    @extend_schema(
        parameters=[
            OpenApiParameter("identifier", str, description="Exact identifier."),
            OpenApiParameter("import", OpenApiTypes.UUID, description="The import that wrote it."),
        ],
        responses={200: DocumentOutput(many=True), **_errors(400, 401, 403, 404)},
        summary="List imported documents",
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        import_uuid = params.get("import")
        return selectors.documents_filter(
            identifier=params.get("identifier", ""),
            import_id=serializers.UUIDField().run_validation(import_uuid) if import_uuid else None,
        )


class DocumentDetailApi(generics.RetrieveAPIView):
    permission_classes = [CanReadDocuments]
    serializer_class = DocumentOutput
    lookup_field = "uuid"

    @extend_schema(responses={200: DocumentOutput, **_errors(401, 403, 404)}, summary="A document")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return selectors.documents_filter()


class DocumentContentApi(APIView):
    permission_classes = [CanReadDocuments]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "inline",
                OpenApiTypes.BOOL,
                description="Show the file in the browser rather than download it; honoured "
                "only for raster images (PNG, JPEG, GIF, WebP, BMP).",
            )
        ],
        responses={
            (200, "application/octet-stream"): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="The stored file, with its sniffed content type, "
                "Content-Security-Policy: sandbox and nosniff.",
            ),
            **_errors(401, 403, 404),
        },
        summary="The document's file",
    )
    def get(self, request, uuid):
        document = selectors.document_get(uuid)
        return document_file_response(document, request.query_params.get("inline") in ("1", "true"))
