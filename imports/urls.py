from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from .metrics import metrics_view

# The admin's pages are found here, when the URLs are, not when Django starts
# (settings: SimpleAdminConfig): the workers never load them.
admin.autodiscover()

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    path("api/v1/", include("imports.api.urls")),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/v1/schema/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]

handler400 = "imports.api.errors.bad_request"
handler403 = "imports.api.errors.permission_denied"
handler404 = "imports.api.errors.not_found"
handler500 = "imports.api.errors.server_error"
