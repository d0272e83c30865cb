"""Authentication and permissions: `Authorization: Bearer <token>`, then Django permissions."""

from rest_framework.authentication import TokenAuthentication
from rest_framework.permissions import SAFE_METHODS, BasePermission


class BearerTokenAuthentication(TokenAuthentication):
    keyword = "Bearer"


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
