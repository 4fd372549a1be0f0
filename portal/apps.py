from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal"

    def ready(self):
        from django.db.models.signals import post_migrate

        from integrations.base import register_call_recorder
        from portal import roles
        from portal.vendor import record_vendor_call

        register_call_recorder(record_vendor_call)
        # Model permissions exist only after every app migrated: sync the roles' grants then.
        post_migrate.connect(roles.sync_role_permissions, dispatch_uid="portal.sync_role_permissions")
