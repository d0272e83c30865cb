from django.urls import path

from . import views

urlpatterns = [
    path("imports/", views.ImportListApi.as_view(), name="import-list"),
    path("imports/create", views.ImportCreateApi.as_view(), name="import-create"),
    path("imports/<uuid:uuid>", views.ImportDetailApi.as_view(), name="import-detail"),
    path("imports/<uuid:uuid>/upload", views.ImportUploadApi.as_view(), name="import-upload"),
    path("imports/<uuid:uuid>/status", views.ImportStatusApi.as_view(), name="import-status"),
    path("imports/<uuid:uuid>/report", views.ImportReportApi.as_view(), name="import-report"),
    path("imports/<uuid:uuid>/cancel", views.ImportCancelApi.as_view(), name="import-cancel"),
    path("imports/<uuid:uuid>/resume", views.ImportResumeApi.as_view(), name="import-resume"),
    path(
        "imports/<uuid:uuid>/rollback", views.ImportRollbackApi.as_view(), name="import-rollback"
    ),
    path(
        "imports/<uuid:uuid>/rollback-report",
        views.ImportRollbackReportApi.as_view(),
        name="import-rollback-report",
    ),
    path("documents/", views.DocumentListApi.as_view(), name="document-list"),
    path("documents/<uuid:uuid>", views.DocumentDetailApi.as_view(), name="document-detail"),
    path(
        "documents/<uuid:uuid>/content",
        views.DocumentContentApi.as_view(),
        name="document-content",
    ),
]
