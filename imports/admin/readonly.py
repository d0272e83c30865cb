"""What both of the admin's pages share: nothing is ever written through a model form."""

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Nobody adds, changes or deletes through the model form, whatever their permissions: an
    import changes through imports.lifecycle alone, a document only by an import. Reading needs
    one of `view_permissions`, as the API's reading does."""

    view_permissions: tuple[str, ...] = ()

    class Media:
        css = {"all": ["imports/admin.css"]}

    def has_view_permission(self, request, obj=None) -> bool:
        return any(request.user.has_perm(name) for name in self.view_permissions)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
