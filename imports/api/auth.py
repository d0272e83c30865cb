"""Authentication and permissions: `Authorization: Bearer <token>`, then Django permissions."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import TokenAuthentication
from rest_framework.permissions import SAFE_METHODS, BasePermission


class BearerTokenAuthentication(TokenAuthentication):
    keyword = "Bearer"


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """The schema's word for the token (drf-spectacular would otherwise call it a JWT)."""

    target_class = BearerTokenAuthentication
    name = "tokenAuth"
    priority = 1

    def get_security_definition(self, auto_schema) -> dict:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The token `manage.py create_import_token USERNAME` prints.",
        }


class CanRunImports(BasePermission):
    """Reading needs `view_import` (or `run_import`); changing anything needs `run_import`."""

    message = "You need the imports.run_import permission for this."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if request.method in SAFE_METHODS and user.has_perm("imports.view_import"):
            return True
        return user.has_perm("imports.run_import")


class CanReadDocuments(BasePermission):
    message = "You need the imports.view_document permission for this."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(
            user
            and user.is_authenticated
            and (user.has_perm("imports.view_document") or user.has_perm("imports.run_import"))
        )
